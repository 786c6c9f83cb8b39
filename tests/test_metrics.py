"""Per-matrix metric formulas, bad layers, precision, options and summarize."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from torch import nn

import htsr
from htsr.spectral import metrics
from htsr.spectral.eigen import eigenvalues
from htsr.spectral.fit import fit_power_law
from htsr.spectral.matrices import iter_layers, layer_matrices
from htsr.studies import trends


def _heavy_tailed(n: int, m: int, seed: int) -> torch.Tensor:
    """A matrix with Student-t(ν=2.5) entries: its ESD has a power-law tail."""
    g = torch.Generator().manual_seed(seed)
    t = torch.distributions.StudentT(2.5)
    torch.manual_seed(seed)
    return t.sample((n, m)).float() / math.sqrt(n) + 0 * torch.randn(n, m, generator=g)


def test_metric_formulas_match_direct_computation() -> None:
    torch.manual_seed(0)
    w = torch.randn(120, 80, dtype=torch.float64)
    ev = eigenvalues(w[None])[0].numpy()
    fro = float(torch.linalg.matrix_norm(w))
    spec = float(torch.linalg.matrix_norm(w, 2))
    assert metrics.log_norm(ev) == pytest.approx(math.log10(fro))
    assert metrics.log_frobenius_sq(ev) == pytest.approx(math.log10(fro**2))
    assert metrics.log_spectral_norm(ev.max()) == pytest.approx(math.log10(spec**2))
    assert metrics.stable_rank(ev) == pytest.approx(fro**2 / spec**2)
    assert metrics.alpha_weighted(3.0, ev.max()) == pytest.approx(3.0 * math.log10(spec**2))
    assert metrics.log_alpha_norm(ev, 2.5) == pytest.approx(math.log10(np.sum(ev**2.5)))
    # stays finite where the direct sum overflows
    assert math.isfinite(metrics.log_alpha_norm(np.array([1e5, 2e5]), 80.0))


def test_analyze_row_is_consistent_with_fit() -> None:
    w = _heavy_tailed(400, 200, seed=1)
    model = nn.Sequential(nn.Linear(200, 400, bias=False))
    model[0].weight.data = w
    (row,) = htsr.analyze(model, keep_evals=True).to_dict("records")
    ev = row["evals"]
    assert ev.dtype == np.float64 and ev.shape == (200,) and np.all(np.diff(ev) >= 0)
    fit = fit_power_law(ev, xmax=ev.max())
    assert row["status"] == "ok"
    assert row["alpha"] == pytest.approx(fit.alpha)
    assert row["xmin"] == pytest.approx(fit.xmin)
    assert row["n_tail"] == fit.n_tail
    assert row["alpha_weighted"] == pytest.approx(fit.alpha * math.log10(ev.max()))
    untr = htsr.analyze(model, fit="untruncated").iloc[0]
    assert untr["alpha"] == pytest.approx(fit_power_law(ev).alpha)
    assert list(htsr.analyze(model).columns) == list(metrics.COLUMNS)


def _bad_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(100, 120),  # 0: NaN
        nn.Linear(100, 120),  # 1: Inf
        nn.Linear(100, 120),  # 2: all zero
        nn.Linear(100, 120),  # 3: rank 1
        nn.Conv2d(3, 3, 3),  # 4: 3x3 conv
        nn.Linear(3, 3),  # 5: 3x3 linear
        nn.Linear(100, 120),  # 6: fine
        nn.Conv2d(64, 64, 3),  # 7: one NaN tap, the other taps fine
    )
    with torch.no_grad():
        model[0].weight[5, 7] = float("nan")
        model[1].weight[0, 0] = float("inf")
        model[2].weight.zero_()
        model[3].weight.copy_(torch.outer(torch.randn(120), torch.randn(100)))
        model[7].weight[:, :, 1, 2] = float("nan")
    return model


@pytest.mark.parametrize("convention", ["paper", "ww"])
def test_bad_layers_get_a_status_and_the_rest_is_analysed(convention: str) -> None:
    table = htsr.analyze(_bad_model(), convention).set_index("layer")
    status = table.groupby(level=0)["status"].agg(lambda s: sorted(set(s)))
    assert status["0"] == ["nonfinite"] and status["1"] == ["nonfinite"]
    assert status["2"] == ["zero"] and table.loc["2", "lambda_max"] == 0.0
    assert status["3"] not in (["ok"], ["nonfinite"], ["zero"])  # a fit status
    assert table.loc["3", "lambda_max"] > 0  # norms still computed
    assert status["6"] == ["ok"]
    if convention == "paper":
        assert status["4"] == ["too_small"]
        # 3 eigenvalues: the fit decides (powerlaw 1.4.6 fits tails of >= 2 points)
        assert table.loc["5", "num_evals"] == 3 and table.loc["5", "lambda_max"] > 0
        assert status["7"] == ["nonfinite", "ok"]
        assert (table.loc["7"].status == "nonfinite").sum() == 1
    else:
        assert status["4"] == ["ok"]  # WW pools 9 taps x 3 evals = 27 >= 8 evals
        assert status["5"] == ["too_small"]  # 3 evals < WW's min_evals 8
        assert status["7"] == ["nonfinite"]
    assert htsr.summarize(table.reset_index())["n_matrices"] >= 1


def test_below_min_dim_taps_keep_their_own_status() -> None:
    """A conv below ``min_dim`` gets no eigensolve, but each tap still gets its status: the
    whole-stack check settles the usual case; a stack with a NaN or a 0 anywhere is scanned tap
    by tap (a single 0 entry leaves its tap ``too_small``)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 16, 3)
    with torch.no_grad():
        conv.weight[:, :, 0, 0] = 0.0  # a zero matrix
        conv.weight[3, 5, 1, 1] = float("nan")  # one NaN
        conv.weight[2, 2, 2, 2] = 0.0  # one zero entry: still a nonzero matrix
    status = htsr.analyze(nn.Sequential(conv), "paper").set_index("slice")["status"]
    assert status["0,0"] == "zero" and status["1,1"] == "nonfinite"
    assert status.drop(["0,0", "1,1"]).eq("too_small").all() and len(status) == 9
    clean = htsr.analyze(nn.Sequential(nn.Conv2d(32, 16, 3)), "paper")
    assert clean["status"].eq("too_small").all()


@pytest.mark.parametrize("convention", ["paper", "ww"])
def test_extreme_finite_weights_fall_back_to_float64_then_get_a_status(convention: str) -> None:
    """float32 squares overflow above ~1.8e19 and are subnormal or 0 below ~1e-19: such a
    spectrum is redone in float64; one that over/underflows even there gets ``overflow`` /
    ``underflow``, and the other layers are unaffected."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(100, 120), nn.Linear(120, 100), nn.Conv2d(64, 64, 3), nn.Linear(100, 100)
    )
    with torch.no_grad():
        model[0].weight.mul_(1e20)  # finite in float32, its Gram overflows in float32 only
        model[2].weight[:, :, 0, 1].mul_(1e20)  # one overflowing tap of a conv
        model[3].weight.mul_(1e-19)  # λ ~ 1e-38: float32 subnormals
    default = htsr.analyze(model, convention, fit="truncated")  # float32 on CPU
    wide = htsr.analyze(model, convention, fit="truncated", dtype="float64")
    assert (default.status == "ok").all() and (wide.status == "ok").all()
    np.testing.assert_allclose(default.lambda_max, wide.lambda_max, rtol=1e-5)
    np.testing.assert_allclose(default.alpha, wide.alpha, atol=0.01)
    assert default.lambda_max.iloc[0] > 1e38 and default.lambda_max.iloc[-1] < 1e-37

    extreme = nn.Sequential(nn.Linear(100, 120), nn.Linear(120, 100), nn.Linear(50, 60)).double()
    with torch.no_grad():
        extreme[0].weight.mul_(1e200)  # λ ~ 1e400: beyond float64 too
        extreme[2].weight.mul_(1e-170)  # λ ~ 1e-340: below float64's normal range
    table = htsr.analyze(extreme, convention)
    assert table.status.tolist() == ["overflow", "ok", "underflow"]
    assert np.isnan(table.alpha.iloc[0]) and np.isfinite(table.alpha.iloc[1])


@pytest.mark.parametrize("convention", ["paper", "ww"])
def test_empty_unsupported_and_failing_layers_keep_the_rest(
    convention: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(0, 10), nn.Linear(100, 120), nn.Linear(4, 4), nn.Conv2d(0, 8, 3)
    )
    model[2].weight = nn.Parameter(torch.randn(2, 3, 4))  # a Linear with a 3-D weight
    with pytest.warns(RuntimeWarning, match=r"layer 2: a linear weight of shape \(2, 3, 4\)"):
        table = htsr.analyze(model, convention)
    by_layer = table.groupby("layer")["status"].agg(lambda s: sorted(set(s)))
    assert by_layer.to_dict() == {"0": ["empty"], "1": ["ok"], "2": ["unsupported"], "3": ["empty"]}
    assert (table.layer == "3").sum() == (9 if convention == "paper" else 1)

    real_fit = metrics._fit

    def failing_fit(evals: np.ndarray, fit: str):
        if evals.size == 120 - 20:  # only the 100 x 120 layer
            raise FloatingPointError("planted failure")
        return real_fit(evals, fit)

    monkeypatch.setattr(metrics, "_fit", failing_fit)
    good = nn.Sequential(nn.Linear(100, 120), nn.Linear(60, 80))
    with pytest.warns(RuntimeWarning, match="layer 0: FloatingPointError: planted failure"):
        table = htsr.analyze(good, convention)
    assert table.status.tolist() == ["error", "ok"]


def test_float32_alpha_within_0_01_of_float64_on_real_layers() -> None:
    """float32 holds α within 0.01 of float64, so it is the CPU default (both conventions)."""
    torch.manual_seed(0)
    model = torchvision.models.get_model("resnet18", weights=None)
    stacks = [layer_matrices(lw) for lw in iter_layers(model)]
    stacks = [s for s in stacks if s.shape[1] >= 64][-6:]  # layer3/4 convs and fc
    heavy = [_heavy_tailed(1000, 300, seed=s)[None] for s in range(3)]
    mats = [s.matrices for s in stacks] + heavy
    for m in mats:
        for ev64, ev32, evsvd in zip(
            eigenvalues(m, dtype="float64"),
            eigenvalues(m, dtype="float32"),
            eigenvalues(m, dtype="float64", method="svd"),
            strict=True,
        ):
            ref = fit_power_law(evsvd, xmax=float(evsvd.max())).alpha
            assert fit_power_law(ev64, xmax=float(ev64.max())).alpha == pytest.approx(ref, abs=1e-6)
            a32 = fit_power_law(ev32.double(), xmax=float(ev32.max())).alpha
            assert abs(a32 - ref) < 0.01
    assert metrics.analyze.__kwdefaults__["dtype"] is None
    assert metrics.DEFAULT_DTYPE == {"paper": "float32", "ww": "float32", "ww2020": "float32"}


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
@pytest.mark.parametrize("convention", ["paper", "ww"])
def test_float32_default_alpha_within_0_01_through_analyze(name: str, convention: str) -> None:
    """The default (float32) table against float64: same statuses, α within 0.01 on every
    fitted row (pooled ``ww`` ESDs included), λmax within 1e-4 relative."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    a32 = htsr.analyze(model, convention)
    a64 = htsr.analyze(model, convention, dtype="float64")
    assert list(a32.status) == list(a64.status)
    ok = a64.status == "ok"
    assert ok.sum() > 10
    assert (a32.alpha[ok] - a64.alpha[ok]).abs().max() < 0.01
    np.testing.assert_allclose(a32.lambda_max[ok], a64.lambda_max[ok], rtol=1e-4)


def test_dtype_option_changes_precision_not_rows() -> None:
    model = nn.Sequential(nn.Linear(200, 300))
    a64 = htsr.analyze(model, dtype="float64")
    a32 = htsr.analyze(model, dtype="float32")
    assert a32.lambda_max.iloc[0] == pytest.approx(a64.lambda_max.iloc[0], rel=1e-5)
    with pytest.raises(ValueError, match="dtype"):
        htsr.analyze(model, dtype="float16")


def test_min_dim_and_bad_options() -> None:
    model = nn.Sequential(nn.Conv2d(40, 60, 1))
    assert list(htsr.analyze(model).status) == ["too_small"]
    assert list(htsr.analyze(model, min_dim=40).status) == ["ok"]
    with pytest.raises(ValueError, match="convention"):
        htsr.analyze(model, "nope")
    with pytest.raises(ValueError, match="fit"):
        htsr.analyze(model, fit="nope")
    with pytest.raises(TypeError, match="nn.Module"):
        htsr.analyze(42)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the fallback without CUDA")
def test_cuda_request_without_cuda_warns_and_uses_cpu() -> None:
    model = nn.Sequential(nn.Linear(100, 120))
    with pytest.warns(RuntimeWarning, match="falling back to cpu"):
        table = htsr.analyze(model, device="cuda")
    assert table.status.iloc[0] == "ok"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model("resnet18", weights=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gpu = htsr.analyze(model, device="cuda")  # CUDA's default precision is float64
    cpu = htsr.analyze(model, dtype="float64")
    ok = cpu.status == "ok"
    assert (gpu.status == cpu.status).all()
    np.testing.assert_allclose(gpu.alpha[ok], cpu.alpha[ok], rtol=1e-6)
    np.testing.assert_allclose(gpu.lambda_max, cpu.lambda_max, rtol=1e-9)


def test_keep_evals_column_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(60, 70))
    table = htsr.analyze(model, keep_evals=True, progress=True)
    assert table.columns[-1] == "evals"
    assert all(isinstance(e, np.ndarray) for e in table.evals)
    assert table.evals.iloc[-1].shape == (60,)
    assert "layers" in capsys.readouterr().err


def test_summarize_means_over_ok_rows() -> None:
    table = pd.DataFrame(
        {
            **{m: [1.0, 3.0, 100.0] for m in trends.SUMMARY_INPUTS[:-1]},
            "status": ["ok", "ok", "too_small"],
        }
    )
    s = htsr.summarize(table)
    assert s["alpha_weighted"] == 2.0 and s["stable_rank"] == 2.0
    assert s["n_matrices"] == 2 and s["n_rows"] == 3
    assert s["log_spectral_norm"] == 2.0 and s["log_mean_spectral_norm"] == pytest.approx(
        np.log10(2)
    )
    # WW 0.2.7 (ww2020) averaged the spectral norm over the too-small slices too
    ww = htsr.summarize(table, convention="ww2020")
    assert ww["alpha_weighted"] == 2.0 and ww["log_spectral_norm"] == pytest.approx(104 / 3)
    assert ww["log_mean_spectral_norm"] == pytest.approx(np.log10(104 / 3))
    assert list(s.index) == [*trends.SUMMARY_METRICS, "n_matrices", "n_rows"]
    empty = htsr.summarize(table.assign(status="zero"))
    assert math.isnan(empty["alpha"]) and empty["n_matrices"] == 0
    with pytest.raises(ValueError, match="lacks columns"):
        htsr.summarize(table.drop(columns="alpha"))
