"""The OSMR (pytorchcv) source: store URLs, zipped downloads verified by the store's SHA-1, the
``.pth`` read from inside the zip, and the file route against today's pytorchcv architectures."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from zoo_server import make_weight_files, serve_zoo, served_table

from htsr.spectral.matrices import layer_matrices, layers_from_module, layers_from_state_dict
from htsr.studies.table import ModelTableError, read_model_table, select_models
from htsr.weights import checkpoints, download, osmr, zoo

ROOT = Path(__file__).resolve().parents[1]
TABLES = [
    ROOT / "config" / "studies" / "imagenet.tsv",
    ROOT / "config" / "studies" / "imagenet_paper.tsv",
]
FAST: dict[str, Any] = {"retries": 2, "backoff_s": 0.01}
#: one model per OSMR family of the papers' sets (small members, so the test stays quick)
FAMILY_MODELS = [
    "resnet10", "resnetbc14b", "resnet18_wd4", "preresnet10", "preresnetbc14b", "densenet121",
    "condensenet74_c8_g8", "dpn68", "squeezenet_v1_0", "squeezeresnet_v1_0", "sqnxt23_w1",
    "sqnxt23v5_w1", "shufflenet_g1_wd4", "shufflenetv2_wd2", "menet108_8x1_g3", "mobilenet_wd4",
    "mobilenetv2_wd4", "fdmobilenet_wd4", "seresnet50", "seresnext50_32x4d", "resnext101_32x4d",
    "efficientnet_b0b", "efficientnet_edge_small_b", "dla46c", "hrnet_w18_small_v1", "drnc26",
    "drnd22", "espnetv2_wd2", "igcv3_wd4", "proxylessnas_mobile", "darknet_tiny", "bn_vgg11b",
]  # fmt: skip


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_model_table(TABLES)


def test_store_url_is_what_pytorchcv_builds(table: pd.DataFrame, monkeypatch, tmp_path) -> None:
    """Every pytorchcv row's URL equals the one pytorchcv's own get_model_file requests."""
    from pytorchcv.models.common import model_store

    requested: list[str] = []

    class Stop(Exception):
        pass

    def fake_download(url: str, path: str, overwrite: bool = False) -> str:
        requested.append(url)
        raise Stop

    monkeypatch.setattr(model_store, "_download", fake_download)
    rows = table[table["source"] == "pytorchcv"].drop_duplicates("weights")
    assert len(rows) > 300
    for _, row in rows.iterrows():
        store = osmr.parse_store_url(row["url"])
        suffix = (store.error, row["sha1"], row["weights_tag"])
        monkeypatch.setattr(model_store, "get_model_name_suffix_data", lambda name, s=suffix: s)
        with pytest.raises(Stop):
            model_store.get_model_file(row["model_id"], local_model_store_dir_path=str(tmp_path))
        assert zoo.pytorchcv_url(row) == requested[-1] == row["url"], row["model"]


def test_mirror_replaces_the_repository_url(table: pd.DataFrame, monkeypatch) -> None:
    row = table.set_index("model").loc["paper2019.osmr.resnet10"].to_dict() | {"model": "x"}
    tail = "/releases/download/v0.0.1/resnet10-1585-ef8a3ae3.pth.zip"
    assert zoo.pytorchcv_url(row) == osmr.IMGCLSMOB_REPO_URL + tail
    assert zoo.pytorchcv_url(row, "http://mirror/") == "http://mirror" + tail
    monkeypatch.setenv("HTSR_PYTORCHCV_URL", "http://env")
    src = zoo.weights_source(row)
    assert (src.kind, src.url, src.member) == (
        "pytorchcv", "http://env" + tail, "resnet10-1585-ef8a3ae3.pth"
    )  # fmt: skip
    assert src.sha1 == row["sha1"]
    assert zoo.weights_path(row | {"weights": "resnet10-1585-ef8a3ae3"}, "w") == Path(
        "w/resnet10-1585-ef8a3ae3.pth.zip"
    )


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ({"sha1": ""}, "needs the store's sha1"),
        ({"url": "https://example.org/x.pth"}, "must be its model-store URL"),
        ({"weights_tag": "v0.0.2"}, "is not the store URL of model_id"),
        ({"model_id": "resnet12"}, "is not the store URL of model_id 'resnet12'"),
    ],
)
def test_bad_pytorchcv_rows_are_named(tmp_path: Path, table, cells, message) -> None:
    rows = select_models(table, ["paper2019.tv.vgg11", "paper2019.osmr.resnet10"])
    i = rows.index[rows["source"] == "pytorchcv"][0]
    for column, value in cells.items():
        rows.loc[i, column] = value
    path = tmp_path / "t.tsv"
    rows.to_csv(path, sep="\t", index=False)
    with pytest.raises(ModelTableError, match=f"model 'paper2019.osmr.resnet10'.*{message}"):
        read_model_table(path)


def test_rows_sharing_weights_must_agree(tmp_path: Path, table: pd.DataFrame) -> None:
    rows = table[table["weights"] == "vgg11-bbd30ac9"].copy()
    assert list(rows["set"]) == ["paper2019", "natcomm2021"]  # one file, two papers' accuracies
    rows.iloc[1, rows.columns.get_loc("url")] = "https://download.pytorch.org/models/v-0123abcd.pth"
    path = tmp_path / "t.tsv"
    rows.to_csv(path, sep="\t", index=False)
    with pytest.raises(ModelTableError, match="shares weights 'vgg11-bbd30ac9'.*differs in url"):
        read_model_table(path)


# ------------------------------------------------------------------------------ downloads


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, table: pd.DataFrame):
    torch.set_num_threads(1)
    rows = select_models(table, ["paper2019.osmr.resnet10", "paper2019.osmr.menet108_8x1_g3"])
    rows.loc[rows["model_id"] == "resnet10", "note"] = "legacy format, as in 2018"
    files = make_weight_files(rows, tmp_path_factory.mktemp("served"))
    return served_table(rows, files).set_index("model", drop=False), files


def _fetch(row: pd.Series, dest: Path, base: str, **kwargs: Any) -> dict[str, Any]:
    return zoo.download_weights(row, dest, pytorchcv_base_url=base, **{**FAST, **kwargs})


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("HTSR_OFFLINE", "HTSR_PYTORCHCV_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("model", ["paper2019.osmr.resnet10", "paper2019.osmr.menet108_8x1_g3"])
def test_zip_download_is_verified_kept_zipped_and_read_in_place(served, tmp_path, model) -> None:
    rows, files = served
    row = rows.loc[model]
    dest = zoo.weights_path(row, tmp_path)
    with serve_zoo(files) as base:
        result = _fetch(row, dest, base)
        assert base.downloads(model) == 1
        again = _fetch(row, dest, base)
        assert base.downloads(model) == 1  # present and verified: not fetched again
    assert result["fetched"] and not again["fetched"]
    assert dest.name.endswith(".pth.zip") and zipfile.is_zipfile(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name, dest.name + ".sha256"]
    side = download.read_sidecar(dest)
    assert (side["sha1"], side["member"]) == (row["sha1"], osmr.parse_store_url(row["url"]).member)
    assert side["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    state = zoo.load_weights(row, dest)
    with zipfile.ZipFile(files[model]) as zf:
        served_state = torch.load(
            __import__("io").BytesIO(zf.read(side["member"])), weights_only=True
        )
    assert state.keys() == served_state.keys()
    assert all(torch.equal(state[k], served_state[k]) for k in state)


def test_corrupt_zip_fails_leaves_nothing_and_a_rerun_fetches_it(served, tmp_path) -> None:
    rows, files = served
    model = "paper2019.osmr.resnet10"
    row = rows.loc[model]
    dest = zoo.weights_path(row, tmp_path)
    faults = {model: "corrupt"}
    with serve_zoo(files, faults=faults) as base:
        with pytest.raises(
            zoo.DownloadError, match=f"{model}: .*arrived corrupt.*nothing was written"
        ):
            _fetch(row, dest, base)
        assert list(tmp_path.iterdir()) == []
        faults.clear()
        assert _fetch(row, dest, base)["fetched"]
        assert base.downloads(model) == 2


def test_wrong_sha1_is_corrupt(served, tmp_path) -> None:
    rows, files = served
    row = rows.loc["paper2019.osmr.menet108_8x1_g3"].copy()
    row["sha1"] = row["sha1"][:8] + "0" * 32  # same file name, another checksum
    dest = zoo.weights_path(row, tmp_path)
    with serve_zoo(files) as base, pytest.raises(zoo.DownloadError, match="inside has sha1"):
        _fetch(row, dest, base)
    assert not dest.exists()


def test_present_corrupt_and_offline(served, tmp_path, monkeypatch) -> None:
    rows, files = served
    model = "paper2019.osmr.menet108_8x1_g3"
    row = rows.loc[model]
    dest = zoo.weights_path(row, tmp_path)
    with serve_zoo(files) as base:
        _fetch(row, dest, base)
        monkeypatch.setenv("HTSR_OFFLINE", "1")
        assert not _fetch(row, dest, "http://127.0.0.1:9")["fetched"]  # verified from disk
        data = bytearray(dest.read_bytes())
        data[len(data) // 2] ^= 0xFF
        dest.write_bytes(bytes(data))  # new mtime: the sidecar no longer vouches for it
        with pytest.raises(zoo.DownloadError, match=f"{model}: offline, and .* was corrupt"):
            _fetch(row, dest, "http://127.0.0.1:9")
        assert not dest.exists()
        monkeypatch.delenv("HTSR_OFFLINE")
        assert _fetch(row, dest, base)["fetched"]


def test_zip_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.pth.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(
        checkpoints.CheckpointError, match="x.pth.zip: not a readable checkpoint zip"
    ):
        checkpoints.load_state_dict(bad)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a.pth", b"1")
        zf.writestr("b.pth", b"2")
    with pytest.raises(checkpoints.CheckpointError, match="exactly one checkpoint file"):
        checkpoints.load_state_dict(two)


# ------------------------------------------------------------------------------ file route


def _matrices(layers) -> list[tuple[str, str, tuple[str, ...], tuple[int, ...]]]:
    out = []
    for layer in layers:
        stack = layer_matrices(layer)
        out.append((layer.name, layer.layer_type, stack.slices, tuple(stack.matrices.shape)))
    return out


@pytest.mark.parametrize("model_id", FAMILY_MODELS)
def test_file_route_finds_the_module_route_matrices(model_id: str) -> None:
    """A state_dict analysed from its tensors yields the matrices of the built architecture."""
    from pytorchcv.model_provider import get_model

    torch.manual_seed(0)
    net = get_model(model_id, pretrained=False)
    by_module = _matrices(layers_from_module(net))
    by_file = _matrices(layers_from_state_dict(net.state_dict()))
    assert by_module, model_id
    assert by_file == by_module, model_id
