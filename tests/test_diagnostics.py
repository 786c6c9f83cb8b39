"""Diagnostics in every table: Conv3d weights, tensors of higher rank, checkpoints in which
nothing can be analysed, and the warning column."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import htsr


def _htsr(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "import sys; from htsr.cli import main; sys.exit(main())", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_conv3d_is_kt_kh_kw_slices_under_paper_and_pooled_under_ww() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(64, 96, (2, 3, 3)))
    paper = htsr.analyze(net, "paper", dtype="float64")
    assert list(paper["layer_type"].unique()) == ["conv3d"] and len(paper) == 2 * 3 * 3
    assert paper["slice"].tolist()[:2] == ["0,0,0", "0,0,1"]
    assert (paper[["N", "M"]].to_numpy() == [96, 64]).all() and (paper["status"] == "ok").all()
    w = net[0].weight.detach().double()
    ref = torch.linalg.svdvals(w[:, :, 1, 2, 0]) ** 2  # tap t=1, i=2, j=0
    row = paper[paper["slice"] == "1,2,0"].iloc[0]
    assert row["lambda_max"] == pytest.approx(float(ref.max()), rel=1e-9)
    by_file = htsr.analyze(dict(net.state_dict()), "paper", dtype="float64")
    np.testing.assert_allclose(by_file["alpha"], paper["alpha"], rtol=1e-12)
    ww = htsr.analyze(net, "ww", dtype="float64")
    assert len(ww) == 1 and ww["num_evals"].iloc[0] == 18 * 64  # one pooled ESD of all taps
    small = htsr.analyze(nn.Sequential(nn.Conv3d(8, 16, 3)), "paper")
    assert set(small["status"]) == {"too_small"} and len(small) == 27


def test_a_higher_rank_weight_gets_a_row_not_silence() -> None:
    state = {"odd.weight": torch.randn(4, 4, 2, 2, 2, 2), "fc.weight": torch.randn(80, 60)}
    with pytest.warns(RuntimeWarning, match="odd"):
        table = htsr.analyze(state)
    assert table.set_index("layer").loc["odd", "status"] == "unsupported"
    assert table.set_index("layer").loc["fc", "status"] == "ok"


def test_nothing_analysable_warns_and_the_cli_fails_in_words(tmp_path: Path) -> None:
    state = {"a.weight": torch.zeros(80, 60), "b.weight": torch.full((70, 60), float("nan"))}
    with pytest.warns(RuntimeWarning, match=r"none of the 2 matrices could be analysed"):
        htsr.analyze(state)
    path = tmp_path / "dead.pth"
    torch.save(state, path)
    out = tmp_path / "dead.tsv"
    res = _htsr("analyze", str(path), "-o", str(out))
    assert res.returncode != 0
    assert "none of its 2 matrices could be analysed (1 zero, 1 nonfinite)" in res.stderr
    assert out.is_file()  # the statuses are kept for the reader
    good = tmp_path / "good.pth"
    torch.save({"fc.weight": torch.randn(80, 60)}, good)
    res = _htsr("analyze", str(good), "-o", str(out))
    assert res.returncode == 0 and "1 of 1 matrices analysed" in res.stdout
