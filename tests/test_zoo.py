"""The model table (config/studies/imagenet.tsv), its validation and selection, and the
architectures."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import torch

from htsr.studies.table import ModelTableError, read_model_table, select_models
from htsr.weights import zoo

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "config" / "studies" / "imagenet.tsv"
SHARED = ROOT.parent / "shared" / "zoo" / "imagenet_models.tsv"


@pytest.fixture(scope="session")
def table() -> pd.DataFrame:
    return read_model_table(TABLE)


def _raw_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def test_table_size_families_and_core_set(table: pd.DataFrame) -> None:
    assert len(table) == 116
    assert table["family"].nunique() == 27
    core = table[table["set"] == "core"]
    assert len(core) == 69
    assert core["family"].nunique() == 15
    assert table["model"].is_unique


def test_table_is_the_shared_table_plus_model_key_and_url() -> None:
    ours, shared = _raw_rows(TABLE), _raw_rows(SHARED)
    assert ours[0] == ["model", *shared[0], "url"]
    assert [row[1:-1] for row in ours] == shared  # every shared value kept verbatim


def test_model_keys_follow_the_convention(table: pd.DataFrame) -> None:
    tv = table[table["source"] == "torchvision"]
    tm = table[table["source"] == "timm"]
    assert (tv["model"] == tv["model_id"]).all()
    assert (tm["model"] == tm["model_id"] + "." + tm["weights_tag"]).all()


def test_torchvision_rows_match_torchvision_weight_metadata(table: pd.DataFrame) -> None:
    import torchvision.models

    tv = table[table["source"] == "torchvision"]
    assert len(tv) == 69
    for _, row in tv.iterrows():
        meta = torchvision.models.get_weight(row["weights_tag"]).meta
        metrics = meta["_metrics"]["ImageNet-1K"]
        assert (row["top1"], row["top5"], row["num_params"]) == (
            metrics["acc@1"],
            metrics["acc@5"],
            meta["num_params"],
        ), row["model"]
        assert row["url"] == ""


def test_timm_rows_name_pretrained_models_and_their_weight_source(table: pd.DataFrame) -> None:
    import timm

    known = set(timm.list_models(pretrained=True))
    tm = table[table["source"] == "timm"]
    assert len(tm) == 47
    for _, row in tm.iterrows():
        assert row["model"] in known
        cfg = timm.models.get_pretrained_cfg(row["model"])
        # timm loads from the hub when it has a hub id, else from its URL: the url column says so
        assert row["url"] == ("" if cfg.hf_hub_id else cfg.url), row["model"]
    assert (tm["url"] != "").sum() == 9  # the legacy SE-ResNet(X)t and Xception weights


def test_timm_parameter_counts_match_the_architectures(table: pd.DataFrame) -> None:
    import timm

    for _, row in table[table["source"] == "timm"].iterrows():
        with torch.device("meta"):  # shapes only, no memory or init cost
            net = timm.create_model(row["model"], pretrained=False)
        assert sum(p.numel() for p in net.parameters()) == row["num_params"], row["model"]


def test_build_model_is_random_init_architecture(table: pd.DataFrame) -> None:
    row = table.set_index("model", drop=False).loc["squeezenet1_1"]
    net = zoo.build_model(row)
    assert sum(p.numel() for p in net.parameters()) == row["num_params"]
    assert not net.training
    with pytest.raises(ValueError, match="nope_net"):
        zoo.build_model({**row.to_dict(), "model": "nope_net", "model_id": "nope_net"})


def test_dtypes_and_optional_columns(table: pd.DataFrame) -> None:
    assert table["top1"].dtype == float and table["num_params"].dtype == "Int64"
    assert {"url", "sha256", "revision"} <= set(table.columns)
    assert (table["sha256"] == "").all() and (table["revision"] == "").all()


# ------------------------------------------------------------------------------ validation


def _write_table(tmp_path: Path, edit: dict[int, dict[str, str]]) -> Path:
    """The first three rows of the real table, with cells replaced per row index."""
    rows = _raw_rows(TABLE)
    header, body = rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:4]]
    for i, cells in edit.items():
        body[i].update(cells)
        header += [c for c in cells if c not in header]
    body = [{c: r.get(c, "") for c in header} for r in body]
    path = tmp_path / "models.tsv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[r[c] for c in header] for r in body])
    return path


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ({"model": "vgg11"}, "duplicate model key"),
        ({"source": "keras"}, "unknown source 'keras'"),
        ({"top1": ""}, "top1 is missing or not a number"),
        ({"top5": "n/a"}, "top5 is missing or not a number"),
        ({"num_params": "1.3M"}, "num_params is missing or not a positive integer"),
        ({"top1": "0"}, r"top1 = 0.0 is outside \(0, 100\]"),
        ({"top1": "100.5"}, r"top1 = 100.5 is outside \(0, 100\]"),
        ({"set": "Core"}, "unknown set 'Core'"),
        ({"sha256": "abc"}, "sha256 must be 64"),
        ({"url": "some/dir/file.pth"}, "url 'some/dir/file.pth' must be an absolute URL"),
    ],
)
def test_bad_rows_are_named_by_line_and_model(
    tmp_path: Path, cells: dict[str, str], message: str
) -> None:
    path = _write_table(tmp_path, {1: cells})  # data row 1 is on line 3
    key = cells.get("model", "vgg13")
    with pytest.raises(ModelTableError, match=rf"line 3 \(model '{key}'\): {message}"):
        read_model_table(path, sets=("core", "extended"))


def test_all_bad_rows_are_reported_at_once(tmp_path: Path) -> None:
    path = _write_table(tmp_path, {0: {"top1": "x"}, 2: {"source": "keras"}})
    with pytest.raises(ModelTableError) as info:
        read_model_table(path)
    assert "line 2 (model 'vgg11')" in str(info.value)
    assert "line 4 (model 'vgg16')" in str(info.value)


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "models.tsv"
    path.write_text("model\tfamily\nx\ty\n")
    with pytest.raises(
        ModelTableError,
        match="missing column.*source, set, quality_source, top1, top5",
    ):
        read_model_table(path)


def test_good_small_table_reads(tmp_path: Path) -> None:
    table = read_model_table(_write_table(tmp_path, {}))
    assert list(table["model"]) == ["vgg11", "vgg13", "vgg16"]


# ------------------------------------------------------------------------------ selection


def test_select_core_and_all(table: pd.DataFrame) -> None:
    assert len(select_models(table)) == 69
    assert len(select_models(table, "core")) == 69
    assert len(select_models(table, "all")) == 116


def test_select_mixes_keys_families_and_ids_in_table_order(table: pd.DataFrame) -> None:
    chosen = select_models(table, ["DPN", "resnet18.gluon_in1k", "resnet18", "mobilenetv2_050"])
    assert list(chosen["model"]) == [
        "resnet18",
        "resnet18.gluon_in1k",
        "mobilenetv2_050.lamb_in1k",
        "dpn68.mx_in1k",
        "dpn68b.mx_in1k",
        "dpn92.mx_in1k",
        "dpn98.mx_in1k",
        "dpn107.mx_in1k",
        "dpn131.mx_in1k",
    ]
    assert list(select_models(table, "SqueezeNet")["model"]) == [
        "squeezenet1_0",
        "squeezenet1_1",
    ]


def test_select_unknown_name_is_named(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'resnet19'.*'NoFamily'"):
        select_models(table, ["resnet18", "resnet19", "NoFamily"])
    with pytest.raises(ValueError, match="empty"):
        select_models(table, [])


# ------------------------------------------------------------------------------ locations


def test_weights_path_by_source(table: pd.DataFrame) -> None:
    rows = table.set_index("model", drop=False)
    assert zoo.weights_path(rows.loc["resnet18"], "w") == Path("w/resnet18.pth")
    assert zoo.weights_path(rows.loc["resnet18.gluon_in1k"], "w") == Path(
        "w/resnet18.gluon_in1k.safetensors"
    )
    # timm weights that timm serves as a torch.save file from a URL stay .pth
    assert zoo.weights_path(rows.loc["legacy_seresnet18.in1k"], "w") == Path(
        "w/legacy_seresnet18.in1k.pth"
    )


def test_weights_url_mirror_and_relative_names(table: pd.DataFrame, monkeypatch) -> None:
    monkeypatch.delenv("HTSR_TORCHVISION_URL", raising=False)
    row = table.set_index("model", drop=False).loc["resnet18"].to_dict()
    real = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert zoo.weights_url(row) == real
    assert zoo.weights_url(row, "http://mirror/m") == "http://mirror/m/resnet18-f37072fd.pth"
    monkeypatch.setenv("HTSR_TORCHVISION_URL", "http://env-mirror/")
    assert zoo.weights_url(row) == "http://env-mirror/resnet18-f37072fd.pth"
    monkeypatch.delenv("HTSR_TORCHVISION_URL")
    mine = {**row, "url": "mine-0123abcd.pth"}
    assert zoo.weights_url(mine) == "https://download.pytorch.org/models/mine-0123abcd.pth"
    assert zoo.weights_url(mine, "http://m/") == "http://m/mine-0123abcd.pth"
    elsewhere = {**row, "url": "https://example.org/w/mine-0123abcd.pth"}
    assert zoo.weights_url(elsewhere, "http://m/") == elsewhere["url"]
    src = zoo.weights_source(mine)
    assert (src.kind, src.hash_prefix) == ("url", "0123abcd")


def test_weights_source_for_timm_rows(table: pd.DataFrame) -> None:
    rows = table.set_index("model", drop=False)
    hub = zoo.weights_source(rows.loc["mobilenetv2_050.lamb_in1k"], hf_endpoint="http://hub")
    assert (hub.kind, hub.repo_id, hub.filename, hub.revision) == (
        "hub",
        "timm/mobilenetv2_050.lamb_in1k",
        "model.safetensors",
        "main",
    )
    assert hub.url == "http://hub/timm/mobilenetv2_050.lamb_in1k/resolve/main/model.safetensors"
    legacy = zoo.weights_source(rows.loc["legacy_seresnext26_32x4d.in1k"])
    assert (legacy.kind, legacy.hash_prefix) == ("url", "65ebdb501")
    no_url = {**rows.loc["legacy_seresnet18.in1k"].to_dict(), "url": ""}
    with pytest.raises(zoo.DownloadError, match="legacy_seresnet18.in1k.*seresnet18-4bb0ce65"):
        zoo.weights_source(no_url)
