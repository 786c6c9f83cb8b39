"""The bootstrap interval of α: the same estimator as the reference package, fixed seed, sane
coverage, and the analyze/CLI columns."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import htsr
from htsr.spectral.metrics import bootstrap_alpha_interval


def test_each_resample_is_powerlaws_mle_at_that_xmin() -> None:
    """Recompute the interval with powerlaw 2.0's own fit at the fixed xmin on the same
    resamples (default_rng(seed).integers(0, n, (B, n))): identical quantiles."""
    powerlaw = pytest.importorskip("powerlaw")
    x = (1.0 - np.random.default_rng(4).random(300)) ** (-1 / 2.5) * 0.1
    xmin, n_boot = float(np.quantile(x, 0.6)), 40
    idx = np.random.default_rng(7).integers(0, x.size, size=(n_boot, x.size))
    ref = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in idx:
            fit = powerlaw.Fit(x[row], xmin=xmin, parameter_ranges={"alpha": [1.0, 100.0]},
                               verbose=False)  # fmt: skip
            ref.append(fit.power_law.alpha)
    lo, hi = bootstrap_alpha_interval(x, xmin, n_boot=n_boot, seed=7)
    assert lo == pytest.approx(np.quantile(ref, 0.025), rel=1e-9)
    assert hi == pytest.approx(np.quantile(ref, 0.975), rel=1e-9)


def test_interval_covers_the_true_alpha_about_95_percent() -> None:
    hits = 0
    for rep in range(60):
        x = (1.0 - np.random.default_rng(100 + rep).random(400)) ** (-1 / 2.0)  # α = 3
        lo, hi = bootstrap_alpha_interval(x, 1.0, n_boot=400, seed=rep)
        hits += lo < 3.0 < hi
    assert 50 <= hits <= 60  # 95 % nominal; binomial(60, 0.95) lies in [52, 60] 99 % of the time


def test_analyze_columns_fixed_seed_and_cli() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(600, 400), nn.Linear(400, 300))
    a = htsr.analyze(net, bootstrap=300)
    b = htsr.analyze(net, bootstrap=300)
    assert {"alpha_low", "alpha_high"} <= set(a.columns) and "alpha_low" not in htsr.analyze(net)
    pd.testing.assert_frame_equal(a, b)
    ok = a[a["status"] == "ok"]
    assert (ok["alpha_low"] < ok["alpha"]).all() and (ok["alpha"] < ok["alpha_high"]).all()
    other = htsr.analyze(net, bootstrap=300, bootstrap_seed=1)
    assert not np.allclose(other["alpha_low"], a["alpha_low"])
    with pytest.raises(ValueError, match="bootstrap must be >= 0"):
        htsr.analyze(net, bootstrap=-1)


def test_cli_bootstrap(tmp_path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "m.pth"
    torch.save(nn.Sequential(nn.Linear(600, 400)).state_dict(), path)
    out = tmp_path / "t.tsv"
    cmd = [sys.executable, "-c", "import sys; from htsr.cli import main; sys.exit(main())",
           "analyze", str(path), "-o", str(out), "--bootstrap", "200"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out, sep="\t")
    assert np.isfinite(table[["alpha_low", "alpha_high"]].to_numpy(float)).all()
