"""Predict a model's quality from one weight metric, with a prediction interval.

Within a family, the papers regress published quality (top-1, %) on a metric read from the
weights (α̂ by default). Given such a family's models table and the metric of a new checkpoint,
:func:`predict_quality` returns the least-squares prediction and the t-based 95 % interval for a
*new observation*:

    ŷ0 = b0 + b1·x0,   ŷ0 ± t(0.975; n-2) · s · sqrt(1 + 1/n + (x0 - x̄)² / Σ(xi - x̄)²),

with s² = Σ(yi - ŷi)² / (n - 2) (the residual variance; units of the quality squared). This is
the interval statsmodels reports as ``obs_ci_lower/upper`` of
``OLS(...).get_prediction(...).summary_frame(alpha=0.05)``, wider than the interval of the mean
(``mean_ci_*``), which omits the leading 1. :func:`leave_one_out` predicts each model from the
others: how well the metric predicts a model it has not seen, which in-sample R² does not say.

Example
-------
>>> p = prediction_interval([1.0, 2.0, 3.0, 4.0], [80.0, 78.0, 75.0, 73.0], 2.5)
>>> round(p.predicted, 2), round(p.low, 2), round(p.high, 2)
(76.5, 74.98, 78.02)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from htsr.studies.regression import MIN_MODELS, _finite_pairs, _line, loo_rmse, quality_values

__all__ = ["Prediction", "leave_one_out", "loo_rmse", "predict_quality", "prediction_interval"]


@dataclass(frozen=True)
class Prediction:
    """A predicted quality and its prediction interval (units of the quality).

    ``n`` models fitted, ``r2`` of their fit; ``value`` is the metric the prediction is for and
    ``x_min``/``x_max`` the family's range of it: ``extrapolation`` is true when ``value`` lies
    outside that range.
    """

    predicted: float
    low: float
    high: float
    n: int
    r2: float
    value: float
    x_min: float
    x_max: float
    extrapolation: bool
    metric: str = ""
    quality: str = ""
    family: str = ""


def prediction_interval(
    x: Sequence[float], y: Sequence[float], x0: float, *, confidence: float = 0.95
) -> Prediction:
    """Least-squares fit of y on x and the t-based prediction interval for a new y at ``x0``
    (formula in the module docstring). Pairs with a NaN are dropped; ``ValueError`` with fewer
    than 3 pairs or a constant x."""
    xa, ya = _finite_pairs(x, y)
    n = int(xa.size)
    if n < MIN_MODELS:
        raise ValueError(f"a prediction interval needs at least {MIN_MODELS} models, got {n}")
    line = _line(xa, ya)
    if line is None:
        raise ValueError("the metric is the same for every model: no line can be fitted")
    slope, intercept, sxx = line
    resid = ya - (intercept + slope * xa)
    ss_res = float(np.sum(resid**2))
    ss_tot = float(np.sum((ya - ya.mean()) ** 2))
    s = math.sqrt(ss_res / (n - 2)) if n > 2 else math.nan
    t = float(stats.t.ppf(0.5 + confidence / 2.0, n - 2))
    half = t * s * math.sqrt(1.0 + 1.0 / n + (x0 - xa.mean()) ** 2 / sxx)
    predicted = intercept + slope * float(x0)
    lo, hi = float(xa.min()), float(xa.max())
    return Prediction(
        predicted=predicted,
        low=predicted - half,
        high=predicted + half,
        n=n,
        r2=1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan,
        value=float(x0),
        x_min=lo,
        x_max=hi,
        extrapolation=not lo <= float(x0) <= hi,
    )


def _family_rows(models: pd.DataFrame, family: str, set_name: str | None) -> pd.DataFrame:
    rows = models[models["family"] == family]
    if set_name is not None and "set" in models.columns:
        rows = rows[rows["set"] == set_name]
    if rows.empty:
        known = ", ".join(sorted(map(str, models["family"].unique())))
        raise ValueError(f"no models of family {family!r} in the table (families: {known})")
    if "set" in rows.columns and rows["set"].nunique() > 1:
        raise ValueError(
            f"family {family!r} occurs in several model sets ({', '.join(rows['set'].unique())});"
            " name one"
        )
    return rows


def predict_quality(
    models: pd.DataFrame,
    family: str,
    value: float,
    *,
    metric: str = "alpha_weighted",
    quality: str = "top1",
    set_name: str | None = None,
    confidence: float = 0.95,
) -> Prediction:
    """Predict ``quality`` of a model of ``family`` whose ``metric`` is ``value``, from the
    family's rows of a models table (``results/models.tsv``), with the prediction interval.

    ``ValueError`` naming the problem for an unknown family or column, fewer than 3 models, or
    a family in several model sets without ``set_name``.
    """
    for column in (metric, quality, "family"):
        if column not in models.columns:
            raise ValueError(f"the models table has no column {column!r}")
    rows = _family_rows(models, family, set_name)
    p = prediction_interval(rows[metric], rows[quality], value, confidence=confidence)
    return Prediction(**{**p.__dict__, "metric": metric, "quality": quality, "family": family})


def leave_one_out(
    models: pd.DataFrame,
    *,
    metric: str = "alpha_weighted",
    quality: str = "top1",
    confidence: float = 0.95,
    group_by: Sequence[str] = ("set", "family"),
    transform: str = "",
) -> pd.DataFrame:
    """Each model's quality predicted from the other models of its group (``group_by``:
    (set, family) by default; a study whose sets split a family by cost groups by family).
    ``transform="log10"`` predicts log10 of the quality (perplexities), as the trends regress it.

    Returns one row per model with a finite metric and quality in a group of at least
    ``MIN_MODELS + 1`` such models: ``model, set, family, metric, quality, value, observed,
    predicted, low, high, error`` (``predicted - observed``), ``inside`` (observed within the
    interval) and ``extrapolation``.
    """
    out = []
    table = models if "set" in models.columns else models.assign(set="")
    for _, group in table.groupby(list(group_by), sort=False):
        set_name = "+".join(dict.fromkeys(group["set"].astype(str)))
        family = group["family"].iloc[0]
        values = pd.Series(quality_values(group[quality], transform), index=group.index)
        ok = group[np.isfinite(group[metric].astype(float)) & np.isfinite(values)]
        if len(ok) < MIN_MODELS + 1:
            continue
        x, y = ok[metric].to_numpy(float), values[ok.index].to_numpy(float)
        for i, model in enumerate(ok["model"]):
            mask = np.arange(len(ok)) != i
            try:
                p = prediction_interval(x[mask], y[mask], x[i], confidence=confidence)
            except ValueError:
                continue
            out.append({
                "model": model, "set": set_name, "family": family, "metric": metric,
                "quality": quality, "value": x[i], "observed": y[i], "predicted": p.predicted,
                "low": p.low, "high": p.high, "error": p.predicted - y[i],
                "inside": bool(p.low <= y[i] <= p.high), "extrapolation": p.extrapolation,
            })  # fmt: skip
    columns = ["model", "set", "family", "metric", "quality", "value", "observed", "predicted",
               "low", "high", "error", "inside", "extrapolation"]  # fmt: skip
    return pd.DataFrame(out, columns=columns)
