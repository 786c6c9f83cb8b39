"""htsr.trends against hand-computed values and numpy/scipy references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from htsr.studies import trends


def test_exact_line_has_r2_one_and_rmse_zero() -> None:
    x = np.array([2.0, 2.5, 3.1, 4.0, 5.5])
    y = -3.0 * x + 80.0
    fit = trends.fit_trend(x, y)
    assert fit.status == "ok"
    assert fit.n == 5
    assert fit.slope == pytest.approx(-3.0)
    assert fit.intercept == pytest.approx(80.0)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.rmse == pytest.approx(0.0, abs=1e-12)
    assert fit.kendall_tau == pytest.approx(-1.0)
    assert fit.spearman_rho == pytest.approx(-1.0)


def test_small_example_computed_by_hand() -> None:
    # x = (1, 2, 3), y = (1, 2, 2): Sxy = 1, Sxx = 2 -> slope 1/2, intercept 5/3 - 1 = 2/3.
    # residuals (-1/6, 1/3, -1/6): SS_res = 1/6, RMSE = sqrt(1/18); SS_tot = 2/3 -> R² = 3/4.
    # Kendall tau-b: 2 concordant pairs, 1 pair tied in y -> 2 / sqrt(3 * 2).
    # Spearman: ranks (1, 2, 3) vs (1, 2.5, 2.5) -> 1.5 / sqrt(2 * 1.5).
    fit = trends.fit_trend([1.0, 2.0, 3.0], [1.0, 2.0, 2.0])
    assert fit.slope == pytest.approx(0.5)
    assert fit.intercept == pytest.approx(2.0 / 3.0)
    assert fit.rmse == pytest.approx(math.sqrt(1.0 / 18.0))
    assert fit.r2 == pytest.approx(0.75)
    assert fit.kendall_tau == pytest.approx(2.0 / math.sqrt(6.0))
    assert fit.spearman_rho == pytest.approx(1.5 / math.sqrt(3.0))


def test_matches_numpy_and_scipy_on_noisy_data() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(1.0, 6.0, size=12)
    y = 70.0 + 1.7 * x + rng.normal(0.0, 0.8, size=12)
    fit = trends.fit_trend(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    y_hat = slope * x + intercept
    assert fit.slope == pytest.approx(slope)
    assert fit.intercept == pytest.approx(intercept)
    assert fit.rmse == pytest.approx(np.sqrt(np.mean((y - y_hat) ** 2)))
    assert fit.r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2)
    assert fit.kendall_tau == pytest.approx(stats.kendalltau(x, y).statistic)
    assert fit.spearman_rho == pytest.approx(stats.spearmanr(x, y).statistic)


def test_nan_pairs_are_dropped_and_too_few_models_not_fitted() -> None:
    fit = trends.fit_trend([1.0, np.nan, 3.0, 4.0], [1.0, 2.0, np.nan, 5.0])
    assert fit.status == "too_few_models"
    assert fit.n == 2
    assert math.isnan(fit.slope) and math.isnan(fit.r2)
    ok = trends.fit_trend([1.0, np.nan, 3.0, 4.0, 6.0], [1.0, 2.0, 3.0, 4.0, 6.0])
    assert ok.status == "ok" and ok.n == 4 and ok.r2 == pytest.approx(1.0)


def test_constant_metric_is_reported_not_raised() -> None:
    fit = trends.fit_trend([2.0, 2.0, 2.0], [70.0, 71.0, 72.0])
    assert fit.status == "constant_metric"
    assert math.isnan(fit.slope)


def test_family_trends_one_row_per_family_and_metric() -> None:
    models = pd.DataFrame(
        {
            "family": ["A", "A", "A", "B", "B"],
            "top1": [70.0, 72.0, 74.0, 60.0, 65.0],
            "alpha_weighted": [3.0, 2.0, 1.0, 1.0, 2.0],
            "log_norm": [1.0, 1.5, 2.5, 0.5, 0.7],
        }
    )
    table = trends.family_trends(models, metrics=("alpha_weighted", "log_norm", "alpha"))
    assert list(table.columns) == list(trends.TREND_COLUMNS)
    assert len(table) == 6
    a = table.set_index(["family", "metric"])
    assert a.loc[("A", "alpha_weighted"), "status"] == "ok"
    assert a.loc[("A", "alpha_weighted"), "slope"] == pytest.approx(-2.0)
    assert a.loc[("A", "alpha_weighted"), "r2"] == pytest.approx(1.0)
    ref = stats.linregress([1.0, 1.5, 2.5], [70.0, 72.0, 74.0])
    assert a.loc[("A", "log_norm"), "r2"] == pytest.approx(ref.rvalue**2)
    # a metric missing from the table is all-NaN -> too few models, not a crash
    assert a.loc[("A", "alpha"), "status"] == "too_few_models"
    assert a.loc[("A", "alpha"), "n"] == 0
    assert set(a.loc["B", "status"]) == {"too_few_models"}


def test_a_family_in_two_sets_gets_one_trend_per_set() -> None:
    models = pd.DataFrame(
        {
            "set": ["p", "p", "p", "q", "q", "q"],
            "family": ["VGG"] * 6,
            "top1": [70.0, 72.0, 74.0, 60.0, 65.0, 70.0],
            "alpha_weighted": [3.0, 2.0, 1.0, 1.0, 2.0, 3.0],
        }
    )
    table = trends.family_trends(models, metrics=("alpha_weighted",)).set_index("set")
    assert table.loc["p", "slope"] == pytest.approx(-2.0)
    assert table.loc["q", "slope"] == pytest.approx(5.0)
    assert (table["n"] == 3).all()


def test_models_table_uses_summarize_per_model() -> None:
    rows = pd.DataFrame(
        {
            "model": ["m1", "m2"],
            "family": ["F", "F"],
            "source": ["torchvision", "timm"],
            "top1": [70.0, 71.0],
            "top5": [90.0, 91.0],
            "num_params": [10, 20],
        }
    )
    spectra = {
        "m1": pd.DataFrame({"alpha": [2.0, 4.0], "status": ["ok", "ok"]}),
        "m2": pd.DataFrame({"alpha": [3.0, 9.0], "status": ["ok", "too_small"]}),
    }

    def summarize(table: pd.DataFrame) -> pd.Series:
        ok = table[table["status"] == "ok"]
        return pd.Series({"alpha": ok["alpha"].mean(), "n_matrices": len(ok)})

    out = trends.models_table(rows, spectra, summarize)
    assert list(out.columns) == [
        *trends.MODEL_ID_COLUMNS,
        *trends.METRICS,
        "n_matrices",
        *trends.ALL_LAYER_METRICS,
        "lambda_max_below_1",
    ]
    assert out["lambda_max_below_1"].isna().all()  # these spectra have no lambda_max column
    assert out["alpha"].tolist() == [3.0, 3.0]
    assert out["n_matrices"].tolist() == [2, 1]
    assert out["alpha_weighted"].isna().all()
    with pytest.raises(KeyError, match="m3"):
        trends.models_table(pd.concat([rows, rows.assign(model="m3")]), spectra, summarize)
