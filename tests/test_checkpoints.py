"""Reading checkpoints: good files of each kind, and bad files that must name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import htsr
from htsr.weights.checkpoints import CheckpointError, load_state_dict


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
    with pytest.raises(CheckpointError, match=r"weights\.npz: unsupported checkpoint suffix"):
        load_state_dict(q)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_state_dict(tmp_path)
    assert issubclass(CheckpointError, ValueError)
