"""Reading checkpoints: good files of each kind, and bad files that must name themselves."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import htsr
from htsr.weights.checkpoints import (
    CheckpointError,
    detect_format,
    load_state_dict,
    open_checkpoint,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(60, 80), nn.BatchNorm1d(80), nn.Linear(80, 70))


@pytest.fixture()
def pth(tmp_path: Path) -> Path:
    p = tmp_path / "m.pth"
    torch.save(_model().state_dict(), p)
    return p


def test_pth_and_safetensors_round_trip(tmp_path: Path, pth: Path) -> None:
    sd = _model().state_dict()
    st = tmp_path / "m.safetensors"
    save_file(sd, str(st))
    for path in (pth, st):
        loaded = load_state_dict(path)
        assert set(loaded) == set(sd)
        assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    a, b = htsr.analyze(pth), htsr.analyze(st)
    assert list(a.layer) == ["0", "2"] and list(b.layer) == ["0", "2"]
    assert a.alpha.tolist() == pytest.approx(b.alpha.tolist())


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_nested_state_dict(tmp_path: Path, key: str) -> None:
    p = tmp_path / "ckpt.pt"
    torch.save({key: _model().state_dict(), "epoch": 3}, p)
    assert list(htsr.analyze(p).layer) == ["0", "2"]


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match=r"nope\.pth: file not found"):
        htsr.analyze(p)


def test_truncated_pth(tmp_path: Path, pth: Path) -> None:
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(pth.read_bytes()[: pth.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pth: not a readable PyTorch"):
        htsr.analyze(bad)


def test_truncated_safetensors(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_file(_model().state_dict(), str(good))
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: not a readable safetensors"):
        load_state_dict(bad)


@pytest.mark.parametrize("name", ["text.pth", "text.safetensors"])
def test_not_a_checkpoint(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_state_dict(p)


def test_checkpoint_without_tensors_and_bad_suffix(tmp_path: Path) -> None:
    p = tmp_path / "empty.pth"
    torch.save({"epoch": 1}, p)
    with pytest.raises(CheckpointError, match=r"empty\.pth: contains no tensors"):
        load_state_dict(p)
    q = tmp_path / "weights.npz"
    q.write_bytes(b"x")
    with pytest.raises(
        CheckpointError,
        match=r"weights\.npz: not a readable checkpoint: "
        r"first bytes b'x' \(recognised: a safetensors",
    ):
        load_state_dict(q)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_state_dict(tmp_path)
    assert issubclass(CheckpointError, ValueError)


# ------------------------------------------------ formats by content, whatever the suffix


def _same(loaded, expected) -> None:
    assert list(loaded) == list(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def _write(path: Path, fmt: str, state: dict) -> Path:
    """``state`` saved in ``fmt`` at ``path`` (whatever its name)."""
    if fmt == "torch-zip":
        torch.save(state, path)
    elif fmt == "torch-legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    elif fmt == "safetensors":
        save_file(state, str(path))
    else:  # zip: a zip holding a torch.save file and a README
        inner = path.with_name(path.name + ".inner")
        torch.save(state, inner)
        with zipfile.ZipFile(path, "w") as zf:
            zf.write(inner, "weights/model.ckpt")
            zf.writestr("README.txt", "not a checkpoint")
        inner.unlink()
    return path


@pytest.mark.parametrize("name", ["m.th", "m.pt.tar", "m.model", "m", "m.safetensors"])
@pytest.mark.parametrize("fmt", ["torch-zip", "torch-legacy", "safetensors", "zip"])
def test_format_from_content_whatever_the_suffix(tmp_path: Path, fmt: str, name: str) -> None:
    sd = _model().state_dict()
    path = _write(tmp_path / name, fmt, sd)
    assert detect_format(path) == fmt
    loaded = load_state_dict(path)
    if fmt == "safetensors":
        assert dict(loaded).keys() == sd.keys()  # the format sorts its keys
        loaded = {k: loaded[k] for k in sd}
    _same(loaded, sd)
    lazy = open_checkpoint(path)
    assert sorted(lazy) == sorted(sd) and all(torch.equal(lazy[k], sd[k]) for k in sd)
    assert list(htsr.analyze(path).layer) == ["0", "2"]


def test_zip_member_chosen_by_content(tmp_path: Path) -> None:
    sd = _model().state_dict()
    st = _write(tmp_path / "st", "safetensors", sd)
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(st, "model/weights.data")  # a safetensors file, named nothing like one
        zf.writestr("model/config.json", "{}")
        zf.writestr("notes.pth", "a text file named like a checkpoint")
    assert detect_format(path) == "zip"
    _same({k: load_state_dict(path)[k] for k in sd}, sd)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.write(st, "a")
        zf.write(st, "b")
        zf.writestr("c.txt", "text")
    with pytest.raises(
        CheckpointError,
        match=r"two\.zip: a zip archive, expected exactly one "
        r"checkpoint file in it, found 2 \(a, b, c\.txt\)",
    ):
        load_state_dict(two)


@pytest.mark.parametrize("key", ["state_dict", "model", "model_state_dict", "ema",
                                 "state_dict_ema", "model_ema", "net"])  # fmt: skip
def test_wrappers_and_dataparallel_prefix(tmp_path: Path, key: str) -> None:
    sd = _model().state_dict()
    wrapped = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / "ckpt"
    torch.save({key: wrapped, "epoch": 3, "optimizer": {"state": {}, "lr": 0.1}}, path)
    _same(load_state_dict(path), sd)
    _same(dict(open_checkpoint(path)), sd)
    assert list(htsr.analyze(path).layer) == ["0", "2"]


def test_wrapper_order_nesting_and_partial_prefix(tmp_path: Path) -> None:
    sd = _model().state_dict()
    ema = {k: v + 1 for k, v in sd.items()}
    path = tmp_path / "timm.pth.tar"
    torch.save({"state_dict_ema": ema, "state_dict": sd, "arch": "mlp"}, path)
    _same(load_state_dict(path), sd)  # the trained weights before their moving average
    nested = tmp_path / "nested.pt"
    torch.save({"model": {"state_dict": ema}, "epoch": 1}, nested)
    _same(load_state_dict(nested), ema)
    mixed = {"module.a": torch.ones(2, 2), "b": torch.ones(2, 2)}
    path = tmp_path / "mixed.pt"
    torch.save(mixed, path)
    assert list(load_state_dict(path)) == ["module.a", "b"]  # not every key: kept as is
    st = tmp_path / "dp.safetensors"
    save_file({f"module.{k}": v for k, v in sd.items()}, str(st))
    assert sorted(open_checkpoint(st)) == sorted(sd)


def test_no_state_dict_names_the_top_level_keys(tmp_path: Path) -> None:
    path = tmp_path / "run.model"
    torch.save({"epoch": 3, "config": {"lr": 0.1}, "model": {"name": "mlp"}}, path)
    with pytest.raises(
        CheckpointError,
        match=r"run\.model: contains no tensors \(top-level keys:"
        r" epoch, config, model; looked for a state_dict "
        r"under state_dict, model_state_dict, model",
    ):
        load_state_dict(path)
    listed = tmp_path / "list.th"
    torch.save([torch.ones(2)], listed)
    with pytest.raises(CheckpointError, match=r"list\.th: holds a list, not a state_dict"):
        load_state_dict(listed)


@pytest.mark.parametrize(("content", "found"), [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "a Git LFS pointer"),
    (b"<!DOCTYPE html><html>Access denied</html>", "an HTML page"),
    (pickle.dumps({"w": [1.0, 2.0]}, protocol=2), "a Python pickle without torch.save's header"),
    (b"", "an empty file"),
    (bytes(range(7, 40)), r"first bytes b'\\x07\\x08"),
])  # fmt: skip
def test_unrecognised_content_is_named(tmp_path: Path, content: bytes, found: str) -> None:
    path = tmp_path / "weights"
    path.write_bytes(content)
    message = rf"weights: not a readable checkpoint: .*{found}"
    for read in (detect_format, load_state_dict, open_checkpoint):
        with pytest.raises(CheckpointError, match=message):
            read(path)


def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(4, 3)), str(path))
    assert detect_format(path) == "torchscript"
    with pytest.raises(CheckpointError, match=r"scripted\.pt: a TorchScript archive"):
        load_state_dict(path)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - what a malicious checkpoint does
        import os

        return (os.system, (f"touch {self.marker}",))


def test_legacy_pickle_without_suffix_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil"
    sd = _model().state_dict()
    torch.save({"state_dict": sd, "hook": _Evil(marker)}, path,
               _use_new_zipfile_serialization=False)  # fmt: skip
    assert detect_format(path) == "torch-legacy"
    _same(load_state_dict(path), sd)
    _same(dict(open_checkpoint(path)), sd)
    assert not marker.exists()


def test_docstring_examples() -> None:
    import doctest

    from htsr.weights import checkpoints

    assert doctest.testmod(checkpoints).failed == 0
