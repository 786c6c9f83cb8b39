"""Weight downloads through the real code path (torch.hub, huggingface_hub) against a loopback
server (tests/zoo_server.py): verification, retries, corruption, skipping, offline mode."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import safetensors.torch
import torch
from zoo_server import make_weight_files, serve_zoo, served_table

from htsr.studies.table import read_model_table, select_models
from htsr.weights import zoo

ROOT = Path(__file__).resolve().parents[1]
TV = "squeezenet1_1"  # torchvision, torch.hub URL
HUB = "mobilenetv2_050.lamb_in1k"  # timm, Hugging Face hub
URL = "legacy_seresnet18.in1k"  # timm, torch.hub URL (timm has no hub copy)
FAST: dict[str, Any] = {"retries": 3, "backoff_s": 0.01}


@pytest.fixture(scope="session")
def zoo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict[str, Path]]:
    torch.set_num_threads(1)
    table = read_model_table(ROOT / "config" / "studies" / "imagenet.tsv")
    rows = select_models(table, [TV, HUB, URL])
    files = make_weight_files(rows, tmp_path_factory.mktemp("served"))
    return served_table(rows, files).set_index("model", drop=False), files


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("HTSR_OFFLINE", "HTSR_TORCHVISION_URL", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def _fetch(row: pd.Series, dest: Path, base: str, **kwargs: Any) -> dict[str, Any]:
    return zoo.download_weights(
        row, dest, torchvision_base_url=base, hf_endpoint=base, **{**FAST, **kwargs}
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _served_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return safetensors.torch.load_file(path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("model", [TV, HUB, URL])
def test_clean_download_verifies_records_and_loads(zoo_files, tmp_path: Path, model: str) -> None:
    rows, files = zoo_files
    row = rows.loc[model]
    dest = zoo.weights_path(row, tmp_path)
    with serve_zoo(files) as base:
        result = _fetch(row, dest, base)
        assert base.downloads(model) == 1
    assert result["fetched"] is True
    assert result["path"] == str(dest)
    assert result["sha256"] == _sha(files[model]) == _sha(dest)
    assert result["size"] == dest.stat().st_size == files[model].stat().st_size
    assert result["url"].startswith(base)
    if model == HUB:
        assert len(result["commit"]) == 40 and result["commit"] in result["url"]
        assert result["revision"] == "main"
    else:
        assert result["commit"] is None
    sidecar = json.loads(dest.with_name(dest.name + ".sha256").read_text())
    assert sidecar["sha256"] == result["sha256"] and sidecar["model"] == model
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name, dest.name + ".sha256"]

    net = zoo.load_model(row, dest)
    served = _served_state(files[model])
    loaded = net.state_dict()
    assert served.keys() == loaded.keys()
    assert all(torch.equal(served[k], loaded[k]) for k in served)


@pytest.mark.parametrize("model", [TV, HUB])
def test_server_error_is_retried(zoo_files, tmp_path: Path, model: str, caplog) -> None:
    rows, files = zoo_files
    dest = zoo.weights_path(rows.loc[model], tmp_path)
    caplog.set_level(logging.WARNING, logger="htsr.zoo")
    with serve_zoo(files, faults={model: "error_once"}) as base:
        result = _fetch(rows.loc[model], dest, base)
        gets = [s for m, _, s, mod in base.requests if m == "GET" and mod == model]
    assert result["fetched"] and result["sha256"] == _sha(files[model])
    assert gets[-2:] == [500, 200]
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 1
    assert model in retries[0] and base in retries[0]


def test_persistent_server_error_gives_up(zoo_files, tmp_path: Path) -> None:
    rows, files = zoo_files
    dest = zoo.weights_path(rows.loc[TV], tmp_path)
    with serve_zoo(files, faults={TV: "error"}) as base:
        with pytest.raises(
            zoo.DownloadError, match=rf"{TV}: download of {base}.* after 3 attempts"
        ):
            _fetch(rows.loc[TV], dest, base, retries=2)
        assert len(base.requests) == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model", [TV, HUB])
def test_corrupt_download_raises_leaves_nothing_and_refetches(
    zoo_files, tmp_path: Path, model: str
) -> None:
    rows, files = zoo_files
    dest = zoo.weights_path(rows.loc[model], tmp_path)
    faults = {model: "corrupt"}
    with serve_zoo(files, faults=faults) as base:
        with pytest.raises(zoo.DownloadError, match="arrived corrupt") as info:
            _fetch(rows.loc[model], dest, base)
        assert model in str(info.value) and str(dest) in str(info.value)
        assert base.downloads(model) == 1  # a corrupt file is not fetched again in a loop
        assert list(tmp_path.iterdir()) == []  # no file, sidecar, staging or partial
        faults.clear()  # the server is fixed
        result = _fetch(rows.loc[model], dest, base)
    assert result["fetched"] and _sha(dest) == _sha(files[model])


@pytest.mark.parametrize("model", [TV, HUB])
def test_present_good_file_is_not_fetched_again(zoo_files, tmp_path: Path, model: str) -> None:
    rows, files = zoo_files
    row = rows.loc[model]
    dest = zoo.weights_path(row, tmp_path)
    sidecar = dest.with_name(dest.name + ".sha256")
    with serve_zoo(files) as base:
        first = _fetch(row, dest, base)
        served = len(base.requests)
        again = _fetch(row, dest, base)
        assert again["fetched"] is False and again["sha256"] == first["sha256"]
        assert again["url"] == first["url"] and again["commit"] == first["commit"]
        assert len(base.requests) == served  # the sidecar answers: no request at all
        sidecar.unlink()  # without it the file is rehashed, and still not fetched
        third = _fetch(row, dest, base)
        assert third["fetched"] is False and third["sha256"] == first["sha256"]
        assert base.downloads(model) == 1
        new = base.requests[served:]
        # a timm hub file is checked against the hash the hub reports (model info, no download)
        assert [m for m, *_ in new] == (["GET"] if model == HUB else [])
        assert all("/api/models/" in p for _, p, *_ in new)
    assert json.loads(sidecar.read_text())["sha256"] == first["sha256"]


@pytest.mark.parametrize("model", [TV, HUB])
def test_corrupt_present_file_is_fetched_again(zoo_files, tmp_path: Path, model: str) -> None:
    rows, files = zoo_files
    dest = zoo.weights_path(rows.loc[model], tmp_path)
    with serve_zoo(files) as base:
        _fetch(rows.loc[model], dest, base)
        data = bytearray(dest.read_bytes())
        data[-1] ^= 0xFF  # same size; the mtime changes so the sidecar no longer vouches
        dest.write_bytes(bytes(data))
        os.utime(dest, ns=(0, 0))
        result = _fetch(rows.loc[model], dest, base)
        assert base.downloads(model) == 2
    assert result["fetched"] is True and _sha(dest) == _sha(files[model])


def test_offline_uses_only_what_is_on_disk(zoo_files, tmp_path: Path, monkeypatch) -> None:
    rows, files = zoo_files
    dests = {m: zoo.weights_path(rows.loc[m], tmp_path) for m in (TV, HUB)}
    with serve_zoo(files) as base:
        for model, dest in dests.items():
            with pytest.raises(zoo.DownloadError, match="offline") as info:
                _fetch(rows.loc[model], dest, base, offline=True)
            assert model in str(info.value) and str(dest) in str(info.value)
        assert base.requests == []
        for model, dest in dests.items():
            _fetch(rows.loc[model], dest, base)
        served = len(base.requests)
        monkeypatch.setenv("HTSR_OFFLINE", "1")
        for model, dest in dests.items():
            result = _fetch(rows.loc[model], dest, base)
            assert result["fetched"] is False and result["sha256"] == _sha(files[model])
        assert len(base.requests) == served
    # a hub file without the sidecar of a verified download cannot be checked offline
    dests[HUB].with_name(dests[HUB].name + ".sha256").unlink()
    with pytest.raises(zoo.DownloadError, match=f"{HUB}: offline.*cannot be verified"):
        _fetch(rows.loc[HUB], dests[HUB], "http://127.0.0.1:9")
    # a torch.hub file is checked against the hash in its name, which needs no network
    dests[TV].with_name(dests[TV].name + ".sha256").unlink()
    assert _fetch(rows.loc[TV], dests[TV], "http://127.0.0.1:9")["fetched"] is False


@pytest.mark.parametrize("model", [TV, HUB])
def test_killed_download_does_not_count_as_present(zoo_files, tmp_path: Path, model: str) -> None:
    rows, files = zoo_files
    dest = zoo.weights_path(rows.loc[model], tmp_path)
    staging = tmp_path / f".{dest.name}.staging"  # where a killed download leaves its pieces
    staging.mkdir()
    (staging / f"{dest.name}.0123abcd.partial").write_bytes(b"half a file")
    with pytest.raises(zoo.DownloadError, match="missing"):
        zoo.download_weights(rows.loc[model], dest, offline=True)
    with serve_zoo(files) as base:
        result = _fetch(rows.loc[model], dest, base)
    assert result["fetched"] and _sha(dest) == _sha(files[model])
    assert not staging.exists()


def test_missing_file_is_not_retried(zoo_files, tmp_path: Path) -> None:
    rows, files = zoo_files
    row = {**rows.loc[TV].to_dict(), "url": "squeezenet1_1-00000000.pth"}
    with serve_zoo(files) as base:
        with pytest.raises(zoo.DownloadError, match=rf"{TV}: .*not retried.*404"):
            _fetch(row, tmp_path / "w.pth", base)
        assert len(base.requests) == 1


def test_pinned_hub_revision(zoo_files, tmp_path: Path) -> None:
    rows, files = zoo_files
    with serve_zoo(files) as base:
        commit = _fetch(rows.loc[HUB], tmp_path / "a.safetensors", base)["commit"]
        pinned = {**rows.loc[HUB].to_dict(), "revision": commit}
        result = _fetch(pinned, tmp_path / "b.safetensors", base)
        assert (result["revision"], result["commit"]) == (commit, commit)
        unknown = {**pinned, "revision": "f" * 40}
        with pytest.raises(zoo.DownloadError, match=f"{HUB}: model info .*not retried"):
            _fetch(unknown, tmp_path / "c.safetensors", base)


def test_file_without_hash_in_name_needs_the_sha256_column(zoo_files, tmp_path: Path) -> None:
    rows, files = zoo_files
    plain = tmp_path / "srv" / "models" / "my_squeezenet.pth"
    plain.parent.mkdir(parents=True)
    shutil.copy(files[TV], plain)
    row = {**rows.loc[TV].to_dict(), "url": plain.name}
    with serve_zoo({TV: plain}) as base:
        with pytest.raises(zoo.DownloadError, match="unverified"):
            _fetch(row, tmp_path / "a.pth", base)
        assert base.requests == []
        result = _fetch({**row, "sha256": _sha(plain)}, tmp_path / "a.pth", base)
        assert result["fetched"] and result["sha256"] == _sha(plain)
        wrong = {**row, "sha256": "0" * 64}
        with pytest.raises(zoo.DownloadError, match="arrived corrupt"):
            _fetch(wrong, tmp_path / "b.pth", base)
        assert not (tmp_path / "b.pth").exists()


def test_load_model_mismatch_names_model_and_file(zoo_files, tmp_path: Path) -> None:
    rows, files = zoo_files
    other = tmp_path / "squeezenet1_0.pth"
    torch.save(
        zoo.build_model(
            {"model": "x", "source": "torchvision", "model_id": "squeezenet1_0"}
        ).state_dict(),
        other,
    )
    for model in (TV, HUB):
        with pytest.raises(zoo.WeightsLoadError) as info:
            zoo.load_model(rows.loc[model], other)
        assert model in str(info.value) and str(other) in str(info.value)
    with pytest.raises(FileNotFoundError, match=TV):
        zoo.load_model(rows.loc[TV], tmp_path / "absent.pth")


def test_unreachable_server_is_retried_then_named(zoo_files, tmp_path: Path, caplog) -> None:
    rows, _ = zoo_files
    with socket.socket() as s:  # a port nothing listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    caplog.set_level(logging.WARNING, logger="htsr.zoo")
    for model, what in ((TV, "download of"), (HUB, "model info for")):
        caplog.clear()
        dest = zoo.weights_path(rows.loc[model], tmp_path)
        with pytest.raises(zoo.DownloadError, match=rf"{model}: {what} {dead}.* after 2 attempts"):
            _fetch(rows.loc[model], dest, dead, retries=1)
        assert sum("retrying" in r.getMessage() for r in caplog.records) == 1
    assert list(tmp_path.iterdir()) == []


def test_row_can_point_at_a_local_checkpoint(zoo_files, tmp_path: Path) -> None:
    rows, files = zoo_files
    row = {**rows.loc[TV].to_dict(), "url": files[TV].as_uri()}  # file:///.../name-<sha8>.pth
    result = zoo.download_weights(row, tmp_path / "mine.pth", **FAST)
    assert result["fetched"] and result["sha256"] == _sha(files[TV])
    assert isinstance(zoo.load_model(row, tmp_path / "mine.pth"), torch.nn.Module)


def test_torchvision_files_load_through_torchvision_own_pretrained_path(tmp_path: Path) -> None:
    table = read_model_table(ROOT / "config" / "studies" / "imagenet.tsv").set_index(
        "model", drop=False
    )
    row = table.loc["densenet121"]
    state = zoo.build_model(row).state_dict()
    # torchvision's DenseNet files predate num_batches_tracked and use legacy names ("norm.1"),
    # which its loader renames
    legacy = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])", r"\1.\2", k): v
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    assert legacy.keys() != state.keys()
    torch.save(legacy, tmp_path / "densenet121.pth")
    loaded = zoo.load_model(row, tmp_path / "densenet121.pth").state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    before = torch.hub.get_dir()
    row = table.loc["googlenet"]
    torch.save(zoo.build_model(row).state_dict(), tmp_path / "googlenet.pth")
    net = zoo.load_model(row, tmp_path / "googlenet.pth")
    assert net.aux1 is None and net.aux2 is None  # as torchvision ships it pretrained
    assert torch.hub.get_dir() == before  # the temporary hub directory is undone
