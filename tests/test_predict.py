"""htsr.predict: the prediction interval against statsmodels, leave-one-out, and `htsr predict`."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from torch import nn

from htsr.studies import predict
from htsr.studies.trends import summarize
from htsr.weights.analysis import analyze


def test_docstring_example() -> None:
    assert doctest.testmod(predict).failed == 0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("x0_shift", [0.0, 0.7, 3.0])  # inside, near the edge, far outside
def test_interval_is_statsmodels_obs_ci(seed: int, x0_shift: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 20))
    x = rng.uniform(1.0, 4.0, n)
    y = 80.0 - 3.0 * x + rng.normal(0.0, 1.0, n)
    x0 = float(x.max() + x0_shift if x0_shift else x.mean())
    ours = predict.prediction_interval(x, y, x0)
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    frame = fit.get_prediction(np.array([[1.0, x0]])).summary_frame(alpha=0.05)
    assert ours.predicted == pytest.approx(frame["mean"].iloc[0], rel=1e-12)
    assert ours.low == pytest.approx(frame["obs_ci_lower"].iloc[0], rel=1e-10)
    assert ours.high == pytest.approx(frame["obs_ci_upper"].iloc[0], rel=1e-10)
    assert ours.r2 == pytest.approx(fit.rsquared, rel=1e-10)
    assert ours.n == n and ours.extrapolation == (x0_shift > 0)
    # the interval of a new observation is wider than the interval of the mean
    assert ours.low < frame["mean_ci_lower"].iloc[0] < frame["mean_ci_upper"].iloc[0] < ours.high


def test_too_few_or_constant_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 3 models, got 2"):
        predict.prediction_interval([1.0, 2.0], [3.0, 4.0], 1.5)
    with pytest.raises(ValueError, match="the same for every model"):
        predict.prediction_interval([1.0, 1.0, 1.0], [3.0, 4.0, 5.0], 1.0)


def _models() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    x = np.linspace(1.0, 4.0, 7)
    return pd.DataFrame({
        "model": [f"m{i}" for i in range(7)] + ["o1", "o2"], "set": "s",
        "family": ["F"] * 7 + ["G", "G"], "top1": list(80 - 3 * x + rng.normal(0, 0.5, 7)) +
        [70.0, 71.0], "alpha_weighted": list(x) + [1.0, 2.0],
    })  # fmt: skip


def test_leave_one_out_refits_without_each_model() -> None:
    models = _models()
    loo = predict.leave_one_out(models)
    assert list(loo["model"]) == [f"m{i}" for i in range(7)]  # G has too few models
    fam = models[models["family"] == "F"]
    for rec in loo.itertuples():
        rest = fam[fam["model"] != rec.model]
        fit = sm.OLS(rest["top1"], sm.add_constant(rest["alpha_weighted"])).fit()
        frame = fit.get_prediction(np.array([[1.0, rec.value]])).summary_frame(alpha=0.05)
        assert rec.predicted == pytest.approx(frame["mean"].iloc[0])
        assert rec.low == pytest.approx(frame["obs_ci_lower"].iloc[0])
    assert predict.loo_rmse(fam["alpha_weighted"], fam["top1"]) == pytest.approx(
        float(np.sqrt(np.mean(loo["error"] ** 2)))
    )
    assert loo["extrapolation"].tolist() == [True, False, False, False, False, False, True]


def test_predict_quality_names_bad_input() -> None:
    models = _models()
    with pytest.raises(ValueError, match="no models of family 'X'.*F, G"):
        predict.predict_quality(models, "X", 2.0)
    with pytest.raises(ValueError, match="no column 'top5'"):
        predict.predict_quality(models, "F", 2.0, quality="top5")
    both = pd.concat([models, models.assign(set="t")])
    with pytest.raises(ValueError, match="several model sets"):
        predict.predict_quality(both, "F", 2.0)
    assert predict.predict_quality(both, "F", 2.0, set_name="t").n == 7


def _htsr(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "import sys; from htsr.cli import main; sys.exit(main())", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, list[Path]]:
    """Five small random-init MLPs of growing width, their α̂ in a models table with made-up
    accuracies, and their checkpoints."""
    tmp = tmp_path_factory.mktemp("predict")
    rows, paths = [], []
    for i, width in enumerate((120, 160, 200, 240, 280)):
        torch.manual_seed(i)
        net = nn.Sequential(nn.Linear(width, 100), nn.ReLU(), nn.Linear(100, 100))
        path = tmp / f"mlp{width}.pth"
        torch.save(net.state_dict(), path)
        s = summarize(analyze(path, "paper"))
        rows.append({"model": f"mlp{width}", "set": "s", "family": "MLP", "top1": 60.0 + i,
                     "alpha_weighted": s["alpha_weighted"], "convention": "paper",
                     "evals": "exact"})  # fmt: skip
        paths.append(path)
    table = pd.DataFrame(rows)
    table.to_csv(tmp / "models.tsv", sep="\t", index=False)
    return tmp / "models.tsv", table, paths


def test_cli_predict_json_matches_the_library(family) -> None:
    models_path, table, paths = family
    res = _htsr("predict", str(paths[2]), "--models", str(models_path), "--family", "MLP", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert {"predicted", "low", "high", "n", "r2", "metric", "quality", "family"} <= set(out)
    value = table["alpha_weighted"].iloc[2]
    ref = predict.predict_quality(table, "MLP", value)
    assert out["value"] == pytest.approx(value)
    assert out["predicted"] == pytest.approx(ref.predicted)
    assert (out["low"], out["high"]) == pytest.approx((ref.low, ref.high))
    assert out["n"] == 5 and out["family"] == "MLP" and out["metric"] == "alpha_weighted"


def test_cli_predict_text_and_extrapolation_warning(family, tmp_path: Path) -> None:
    models_path, table, _ = family
    torch.manual_seed(9)
    wide = tmp_path / "wide.pth"
    torch.save(nn.Sequential(nn.Linear(2000, 1500)).state_dict(), wide)
    res = _htsr("predict", str(wide), "--models", str(models_path), "--family", "MLP")
    assert res.returncode == 0, res.stderr
    assert "95% prediction interval" in res.stdout and "n = 5" in res.stdout
    value = summarize(analyze(wide, "paper"))["alpha_weighted"]
    outside = not table["alpha_weighted"].min() <= value <= table["alpha_weighted"].max()
    assert ("extrapolation" in res.stdout) == outside
    bad = _htsr("predict", str(wide), "--models", str(models_path), "--family", "Nope")
    assert bad.returncode == 2 and "no models of family 'Nope'" in bad.stderr
