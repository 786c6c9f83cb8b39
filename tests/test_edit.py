"""SVD smoothing and sharpening (``htsr smooth``/``sharpen``) against WeightWatcher 0.7.7's
``SVDSmoothing`` and ``SVDSharpness``, and distances against its ``distances``."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from htsr.cli import main
from htsr.weights.distances import distances
from htsr.weights.edit import detx_num, svd_sharpen, svd_smooth


def _model() -> nn.Sequential:
    """Two convs (3 and 16 input channels) and two linears, with a mean shift and a block of
    large entries that make correlation traps (spikes of the permuted ESD) for sharpening."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.Flatten(),
                      nn.Linear(128, 100), nn.ReLU(), nn.Linear(100, 60))  # fmt: skip
    with torch.no_grad():
        m[2].weight += 0.1
        m[4].weight += 0.05
        m[6].weight[:3, :3] += 2.0
    return m


@pytest.fixture(scope="module")
def watcher():
    import weightwatcher

    return weightwatcher.WeightWatcher(log_level=logging.ERROR)


def test_detx_num_matches_weightwatcher() -> None:
    from weightwatcher.RMT_Util import detX_constraint

    rng = np.random.default_rng(0)
    for n in (2, 5, 50, 400):
        ev = np.sort(rng.pareto(2.5, n) + 0.01)
        assert detx_num(ev) == detX_constraint(ev)[0]


@pytest.mark.parametrize(("method", "ww_method"), [("detX", "detX"), ("percent", "svd")])
def test_smooth_matches_weightwatcher(watcher, method: str, ww_method: str) -> None:
    m = _model()
    ref = watcher.SVDSmoothing(model=copy.deepcopy(m), method=ww_method, percent=0.3).state_dict()
    edits, report = svd_smooth(m, method=method, percent=0.3)
    assert list(report["layer"]) == ["0", "2", "4", "6"] and (report["status"] == "ok").all()
    for key, new in edits.items():
        w, r = m.state_dict()[key], ref[key]
        # WW's randomized TruncatedSVD (n_iter=7) vs an exact SVD: equal to ~1e-6 where few
        # components are kept (the conv taps), within 3 % where half a flat spectrum is
        rel = float((new - r).norm() / r.norm())
        assert rel < (1e-5 if w.ndim == 4 else 3e-2), (key, rel)
        # and the exact truncation is the best of that rank (Eckart–Young)
        assert float((w - new).norm()) <= float((w - r).norm()) + 1e-6
    same, _ = svd_smooth(m, method=method, percent=0.3, svd="randomized")  # WW's own SVD
    for key, new in same.items():
        torch.testing.assert_close(new, ref[key], rtol=0, atol=1e-5)
    for key, value in m.state_dict().items():
        if key not in edits:
            assert torch.equal(value, ref[key])
    row = report.set_index("layer").loc["4"]
    assert row["kept"] + row["removed"] == 100 and 0 < row["energy_removed"] < 1


def test_sharpen_matches_weightwatcher(watcher) -> None:
    m = _model()[2:]  # the conv with a mean shift and the two linears
    ref = copy.deepcopy(m)
    np.random.seed(5)  # noqa: NPY002 (WW permutes with numpy's global random state)
    watcher.SVDSharpness(model=ref)
    edits, report = svd_sharpen(m, seed=5)
    assert list(report["removed"]) == [1, 1, 9]  # traps: 9 (one per tap), 1, 9
    for key, value in ref.state_dict().items():
        ours = edits.get(key, m.state_dict()[key])
        torch.testing.assert_close(ours, value.float(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["raw", "euclidean", "cka"])
def test_distances_match_weightwatcher(watcher, method: str) -> None:
    a = _model()
    b = copy.deepcopy(a)
    with torch.no_grad():
        for p in b.parameters():
            p += 0.01 * torch.randn_like(p)
    _, _, ref = watcher.distances(a, b, method=method)
    ours = distances(a, b, method)
    assert list(ours["layer"]) == list(ref["name"])
    np.testing.assert_allclose(ours["delta_W"], ref["delta_W"], rtol=1e-6)
    if method == "raw":  # WW reports 0 for conv biases; the linears' agree
        np.testing.assert_allclose(ours["delta_b"][2:], ref["delta_b"][2:], rtol=1e-6)
        assert (ours["delta_b"][:2] > 0).all()


def test_smooth_and_sharpen_commands_keep_the_format(tmp_path: Path, capsys) -> None:
    m = _model()
    nested = tmp_path / "m.pth"
    torch.save({"state_dict": m.state_dict(), "epoch": 3}, nested)
    st = tmp_path / "m.safetensors"
    save_file(m.state_dict(), str(st), metadata={"source": "test"})
    assert main(["smooth", str(nested), "-o", str(tmp_path / "s.pth"), "--report",
                 str(tmp_path / "r.csv")]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["layer", "layer_type", "N", "M"]
    assert out[-1].startswith(f"{tmp_path / 's.pth'}: 3 of 4 layers changed")
    smoothed = torch.load(tmp_path / "s.pth", weights_only=True)
    assert smoothed["epoch"] == 3
    edits, _ = svd_smooth(m)
    torch.testing.assert_close(smoothed["state_dict"]["4.weight"], edits["4.weight"])
    assert main(["sharpen", str(st), "-o", str(tmp_path / "h.safetensors")]) == 0
    sharp = load_file(str(tmp_path / "h.safetensors"))
    assert sorted(sharp) == sorted(m.state_dict())
    from safetensors import safe_open

    with safe_open(str(tmp_path / "h.safetensors"), "pt") as f:
        assert f.metadata() == {"source": "test"}
    assert main(["smooth", str(st), "-o", str(tmp_path / "x.pth")]) == 2
    assert "must have the input's suffix" in capsys.readouterr().err
    a, b = tmp_path / "m2.pth", tmp_path / "cmp.tsv"
    torch.save(m.state_dict(), a)
    assert main(["compare", str(a), str(tmp_path / "s.pth"), "-o", str(b), "--distances"]) == 0
    assert "distances (mean over layers): raw" in capsys.readouterr().out


def test_docstring_examples() -> None:
    import doctest

    from htsr.weights import describe as describe_mod
    from htsr.weights import distances as distances_mod
    from htsr.weights import edit, lora

    for module in (describe_mod, distances_mod, edit, lora):
        assert doctest.testmod(module).failed == 0, module.__name__
