"""htsr.compare and the `htsr compare` / `htsr track` commands on small random-init checkpoints."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from htsr.studies import compare
from htsr.weights.analysis import analyze


def _htsr(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "import sys; from htsr.cli import main; sys.exit(main())", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(64, 80, 3), nn.Flatten(), nn.Linear(120, 100), nn.Linear(100, 90)
    )


def test_docstring_examples() -> None:
    assert doctest.testmod(compare).failed == 0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'training run': step 0 random init, later steps with a growing rank-one spike added to
    the Linear layers (heavier tails), saved under names that sort wrongly as strings."""
    tmp = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    net = _net()
    for step in (0, 5, 40, 300):
        gen = torch.Generator().manual_seed(step)
        state = {k: v.clone() for k, v in net.state_dict().items()}
        for key in ("2.weight", "3.weight"):
            w = state[key]
            u = torch.randn(w.shape[0], 1, generator=gen)
            v = torch.randn(1, w.shape[1], generator=gen)
            state[key] = w + step / 300 * 0.5 * (u @ v) / w.shape[1] ** 0.5
        torch.save(state, tmp / f"ckpt-step{step}.pth")
    return tmp


def test_compare_a_model_with_itself_gives_zero_differences(run: Path, tmp_path: Path) -> None:
    a = run / "ckpt-step40.pth"
    out = tmp_path / "self.tsv"
    res = _htsr("compare", str(a), str(a), "-o", str(out), "--delta")
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out, sep="\t", keep_default_na=False, na_values=[""])
    assert (table["present"] == "both").all() and len(table) == len(analyze(a))
    for col in ("alpha_diff", "lambda_max_diff", "log_norm_diff"):
        values = table[col].to_numpy(float)
        assert np.all(values[np.isfinite(values)] == 0.0), col
    assert "0 matrices more heavy-tailed in B (alpha fell), 0 less" in res.stdout
    # W - W = 0: every delta matrix is all zeros
    assert set(table["delta_status"]) == {"zero"}


def test_compare_matches_rows_lists_one_sided_layers_and_draws(run: Path, tmp_path: Path) -> None:
    a, b = run / "ckpt-step0.pth", run / "ckpt-step300.pth"
    extra = tmp_path / "extra.pth"
    state = torch.load(b, weights_only=True)
    state["head.weight"] = torch.randn(70, 90)
    torch.save(state, extra)
    out, fig = tmp_path / "cmp.tsv", tmp_path / "cmp.png"
    res = _htsr("compare", str(a), str(extra), "-o", str(out), "--figure", str(fig), "--delta")
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert table.loc[table["present"] == "only B", "layer"].unique().tolist() == ["head"]
    assert "only in B: head" in res.stdout
    ta, tb = analyze(a), analyze(b).set_index(["layer", "slice"])
    both = table[table["present"] == "both"].set_index(["layer", "slice"])
    assert len(both) == len(ta)
    fc = both.loc[("2", "")]
    fc = fc.replace("", np.nan)
    assert float(fc["alpha_a"]) == pytest.approx(ta.set_index("layer").loc["2", "alpha"])
    assert float(fc["alpha_b"]) == pytest.approx(tb.loc[("2", ""), "alpha"])
    assert float(fc["alpha_diff"]) == pytest.approx(float(fc["alpha_b"]) - float(fc["alpha_a"]))
    # the delta of a Linear layer is the rank-one spike 0.5·u·vᵀ/√M: one eigenvalue, the rest 0
    u_v = (
        torch.load(b, weights_only=True)["2.weight"] - torch.load(a, weights_only=True)["2.weight"]
    )
    spike = float(torch.linalg.matrix_norm(u_v.double(), ord=2) ** 2)
    assert float(fc["delta_lambda_max"]) == pytest.approx(spike, rel=1e-3)
    assert table.loc[table["present"] == "only B", "delta_status"].eq("").all()  # no delta there
    with Image.open(fig) as image:
        assert image.format == "PNG" and min(image.size) > 300


def test_track_orders_checkpoints_by_step(run: Path, tmp_path: Path) -> None:
    out, fig = tmp_path / "track.tsv", tmp_path / "track.png"
    res = _htsr("track", str(run), "-o", str(out), "--figure", str(fig))
    assert res.returncode == 0, res.stderr
    track = pd.read_csv(out, sep="\t")
    assert track["step"].tolist() == [0, 5, 40, 300]  # not the string order 0, 300, 40, 5
    assert [Path(c).name for c in track["checkpoint"]] == [
        "ckpt-step0.pth", "ckpt-step5.pth", "ckpt-step40.pth", "ckpt-step300.pth"]  # fmt: skip
    assert {"alpha_weighted", "log_norm", "alpha", "n_matrices"} <= set(track.columns)
    ref = analyze(run / "ckpt-step300.pth")
    assert track["n_matrices"].iloc[-1] == (ref["status"] == "ok").sum()
    assert "\t{}\t{}\n".format(*track[["n_matrices", "n_rows"]].iloc[-1]) in out.read_text()
    with Image.open(fig) as image:
        assert image.format == "PNG" and min(image.size) > 300
    bad = _htsr("track", str(run / "ckpt-step0.pth"), str(tmp_path / "final.pth"), "-o", str(out))
    assert bad.returncode == 2 and "final.pth: no step number" in bad.stderr


def test_steps_from_names_and_alpha_heatmap_table() -> None:
    assert compare.checkpoint_step("model_epoch12_loss0.3.pt") == 12
    assert compare.checkpoint_step("checkpoint-1500/model.safetensors") is None
    assert compare.checkpoint_step("checkpoint-1500.safetensors") == 1500
    with pytest.raises(ValueError, match="several checkpoints with step 3"):
        compare.order_checkpoints(["a_step3.pt", "b_step3.pt"])
    t = pd.DataFrame({"layer": ["x", "x", "y"], "slice": ["0,0", "0,1", ""],
                      "alpha": [3.0, 9.0, 4.0], "status": ["ok", "too_small", "ok"]})  # fmt: skip
    grid = compare.alpha_by_layer([(1, t), (2, t.assign(alpha=[2.0, 1.0, 5.0]))])
    assert list(grid.index) == ["x[0,0]", "x[0,1]", "y"] and list(grid.columns) == [1, 2]
    assert grid.loc["x[0,0]", 2] == 2.0 and np.isnan(grid.loc["x[0,1]", 1])
