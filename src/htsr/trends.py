"""Trends of published ImageNet accuracy against model-level HT-SR metrics.

Martin & Mahoney (SDM 2020, Nat. Commun. 2021) regress the reported top-1 accuracy of each
architecture family on one metric at a time (weighted alpha α̂, mean log-norm, ...) and report
the quality of the linear fit (RMSE, R²) and rank correlations (Kendall τ, Spearman ρ). This
module holds those computations as small pure functions on pandas/numpy data:

* :func:`fit_trend` – one family, one metric: ``top1 ≈ slope · metric + intercept``.
* :func:`family_trends` – every family × metric of a per-model table.
* :func:`models_table` – the per-model table itself, from per-matrix spectra tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from htsr.predict import loo_rmse

#: Model-level metrics regressed against accuracy, in the order the papers discuss them.
METRICS: tuple[str, ...] = (
    "alpha_weighted",
    "log_norm",
    "log_spectral_norm",
    "log_alpha_norm",
    "alpha",
    "log_mean_spectral_norm",
)

#: Human-readable names with units, for tables and figure axes.
METRIC_LABELS: dict[str, str] = {
    "alpha_weighted": "weighted alpha α̂ (dimensionless)",
    "log_norm": "mean log10 ‖W‖_F (log10 units)",
    "log_spectral_norm": "mean log10 λ_max (log10 units)",
    "log_alpha_norm": "mean log10 ‖X‖_α^α (log10 units)",
    "alpha": "mean alpha ᾱ (dimensionless)",
    "log_mean_spectral_norm": "log10 of the mean λ_max (log10 units)",
}

#: Identity columns of the per-model table, taken from the model table row (``set`` and
#: ``label`` are '' / the model key when the model table lacks them).
MODEL_ID_COLUMNS: tuple[str, ...] = ("model", "set", "family", "label", "source", "top1", "top5")

#: A trend is fitted per (model set, family): a family name such as "VGG" can appear in several
#: sets (the 2019 paper's and the Nat. Commun. paper's VGGs carry different accuracies).
GROUP_COLUMNS: tuple[str, ...] = ("set", "family")

#: Columns of :func:`family_trends` output.
TREND_COLUMNS: tuple[str, ...] = (
    "set",
    "family",
    "metric",
    "n",
    "slope",
    "intercept",
    "rmse",
    "r2",
    "kendall_tau",
    "spearman_rho",
    "loo_rmse",
    "status",
)

MIN_MODELS = 3


@dataclass(frozen=True)
class TrendFit:
    """Least-squares line ``y = slope * x + intercept`` and its quality.

    ``rmse`` is in the units of ``y`` (percentage points of top-1 for accuracy), ``r2`` is the
    coefficient of determination, ``kendall_tau`` and ``spearman_rho`` are rank correlations
    of x and y. ``status`` is ``"ok"`` or why nothing was fitted (then the numbers are NaN).
    """

    n: int
    slope: float
    intercept: float
    rmse: float
    r2: float
    kendall_tau: float
    spearman_rho: float
    status: str = "ok"


def rmse(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Root-mean-square error with ddof 0: ``sqrt(mean((y - y_hat)**2))``, in units of y."""
    y = np.asarray(y, dtype=float)
    y_hat = np.asarray(y_hat, dtype=float)
    return float(np.sqrt(np.mean((y - y_hat) ** 2)))


def r_squared(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (dimensionless).

    ``SS_res = Σ (y - y_hat)²`` and ``SS_tot = Σ (y - mean(y))²``; NaN when y is constant.
    """
    y = np.asarray(y, dtype=float)
    y_hat = np.asarray(y_hat, dtype=float)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return math.nan
    return 1.0 - float(np.sum((y - y_hat) ** 2)) / ss_tot


def _not_fitted(n: int, status: str) -> TrendFit:
    nan = math.nan
    return TrendFit(n, nan, nan, nan, nan, nan, nan, status)


def fit_trend(x: Sequence[float], y: Sequence[float], *, min_n: int = MIN_MODELS) -> TrendFit:
    """Fit ``y ≈ slope·x + intercept`` by ordinary least squares (``scipy.stats.linregress``).

    Pairs where x or y is NaN/inf are dropped first; ``n`` counts the pairs used. With fewer
    than ``min_n`` pairs the status is ``"too_few_models"``; with a constant x it is
    ``"constant_metric"``. Rank correlations are ``scipy.stats.kendalltau`` (τ-b) and
    ``scipy.stats.spearmanr``.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(
            f"fit_trend: x and y must be 1-D of equal length, got {xa.shape}, {ya.shape}"
        )
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    if n < min_n:
        return _not_fitted(n, "too_few_models")
    if np.ptp(xa) == 0.0:
        return _not_fitted(n, "constant_metric")
    lr = stats.linregress(xa, ya)
    y_hat = lr.slope * xa + lr.intercept
    tau = stats.kendalltau(xa, ya).statistic
    rho = stats.spearmanr(xa, ya).statistic
    return TrendFit(
        n=n,
        slope=float(lr.slope),
        intercept=float(lr.intercept),
        rmse=rmse(ya, y_hat),
        r2=r_squared(ya, y_hat),
        kendall_tau=float(tau),
        spearman_rho=float(rho),
    )


def family_trends(
    models: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    target: str = "top1",
    min_n: int = MIN_MODELS,
) -> pd.DataFrame:
    """One :func:`fit_trend` of ``target`` on each metric, per (set, family) of ``models``.

    ``models`` needs a ``family`` column, the ``target`` column and the metric columns (a
    missing metric column counts as all-NaN; a missing ``set`` column as one set ''). Returns
    one row per (set, family, metric) with :data:`TREND_COLUMNS`, groups in order of first
    appearance. ``loo_rmse`` is the leave-one-out prediction error (:func:`htsr.predict.
    loo_rmse`: each model predicted by the line through the others; units of ``target``), NaN
    for fewer than 4 models.
    """
    for col in ("family", target):
        if col not in models.columns:
            raise KeyError(f"family_trends: the models table has no column {col!r}")
    if "set" not in models.columns:
        models = models.assign(set="")
    rows = []
    for (set_name, family), group in models.groupby(list(GROUP_COLUMNS), sort=False):
        for metric in metrics:
            x = group[metric] if metric in group.columns else pd.Series(np.nan, index=group.index)
            xs, ys = x.to_numpy(float), group[target].to_numpy(float)
            fit = fit_trend(xs, ys, min_n=min_n)
            loo = loo_rmse(xs, ys) if fit.status == "ok" else math.nan
            rows.append({"set": set_name, "family": family, "metric": metric, **asdict(fit),
                         "loo_rmse": loo})  # fmt: skip
    return pd.DataFrame(rows, columns=list(TREND_COLUMNS))


def models_table(
    model_rows: pd.DataFrame,
    spectra: Mapping[str, pd.DataFrame],
    summarize: Callable[[pd.DataFrame], pd.Series],
) -> pd.DataFrame:
    """One row per model: its identity columns and the model-level metrics of its spectra.

    ``model_rows`` is the model table (columns ``model, family, source, top1, top5``, and
    optionally ``set`` and ``label``);
    ``spectra`` maps each model key to its per-matrix table; ``summarize`` turns such a table
    into model-level means (``htsr.metrics.summarize``). Columns: :data:`MODEL_ID_COLUMNS`,
    :data:`METRICS`, ``n_matrices``. Raises ``KeyError`` naming a model without spectra.
    """
    missing = [m for m in model_rows["model"] if m not in spectra]
    if missing:
        raise KeyError(f"models_table: no spectra table for model(s) {missing}")
    if "set" not in model_rows.columns:
        model_rows = model_rows.assign(set="")
    if "label" not in model_rows.columns:
        model_rows = model_rows.assign(label=model_rows["model"])
    records = []
    for row in model_rows.itertuples(index=False):
        summary = summarize(spectra[row.model])
        record = {col: getattr(row, col) for col in MODEL_ID_COLUMNS}
        for metric in METRICS:
            record[metric] = summary.get(metric, math.nan)
        record["n_matrices"] = int(summary.get("n_matrices", 0))
        records.append(record)
    return pd.DataFrame(records, columns=[*MODEL_ID_COLUMNS, *METRICS, "n_matrices"])
