"""Model-level metrics, and the trends of published quality against them.

Martin & Mahoney (SDM 2020, Nat. Commun. 2021) regress the reported top-1 accuracy of each
architecture family on one metric at a time (weighted alpha α̂, mean log-norm, ...) and report
the quality of the linear fit (RMSE, R²) and rank correlations (Kendall τ, Spearman ρ). A study
does the same for each of its quality metrics (:class:`htsr.studies.table.Quality`). This module
holds those computations as small pure functions on pandas/numpy data:

* :func:`summarize` – one model's per-matrix table → its model-level means.
* :func:`models_table` – the per-model table, from per-matrix spectra tables.
* :func:`fit_trend` – one family, one metric: ``quality ≈ slope · metric + intercept``, with a
  bootstrap interval and p-value for Kendall τ (:func:`kendall_tau_interval`).
* :func:`family_trends` – every family × quality × metric of a per-model table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from htsr.studies.regression import loo_rmse, quality_values
from htsr.studies.table import Quality, select_layers

#: The conventions of :func:`htsr.analyze` (``htsr.spectral.metrics.CONVENTIONS``; not imported, so
#: that tables and figures need no torch).
CONVENTIONS: tuple[str, ...] = ("paper", "ww", "ww2020")

#: Model-level means reported by :func:`summarize` (over rows with status ``ok``; the two
#: spectral-norm metrics also over ``too_small`` rows that carry a ``lambda_max``, which only
#: ``ww2020`` records). ``log_mean_spectral_norm`` is log10 of the mean λmax, the quantity whose
#: natural log the Nat. Commun. SI tables regressed as "log spectral norm".
_ROW_MEANS: tuple[str, ...] = (
    "alpha_weighted",
    "log_norm",
    "log_spectral_norm",
    "log_alpha_norm",
    "alpha",
    "log_frobenius_sq",
    "stable_rank",
)
SUMMARY_METRICS: tuple[str, ...] = (*_ROW_MEANS, "log_mean_spectral_norm")
#: The per-row columns :func:`summarize` reads.
SUMMARY_INPUTS: tuple[str, ...] = (*_ROW_MEANS, "lambda_max", "status")

#: Model-level metrics regressed against accuracy, in the order the papers discuss them.
METRICS: tuple[str, ...] = (
    "alpha_weighted",
    "log_norm",
    "log_spectral_norm",
    "log_alpha_norm",
    "alpha",
    "log_mean_spectral_norm",
)

#: The model-level metrics also computed over *all* of a model's matrices when its row keeps a
#: part (``layers``), as ``{metric}{ALL_LAYERS}``: a family's declared choice of layers is then
#: reported beside the answer over every layer, so the choice cannot hide it.
ALL_LAYERS = "_all_layers"
ALL_LAYER_METRICS: tuple[str, ...] = tuple(
    f"{m}{ALL_LAYERS}" for m in ("alpha_weighted", "alpha", "log_norm")
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
#: Identity columns every per-model table has; the quality columns follow them.
BASE_ID_COLUMNS: tuple[str, ...] = ("model", "set", "family", "label", "source")

#: A trend is fitted per (model set, family): a family name such as "VGG" can appear in several
#: sets (the 2019 paper's and the Nat. Commun. paper's VGGs carry different accuracies).
GROUP_COLUMNS: tuple[str, ...] = ("set", "family")

#: Columns of :func:`family_trends` output.
TREND_COLUMNS: tuple[str, ...] = (
    "set", "family", "quality", "transform", "metric", "n", "slope", "intercept", "rmse", "r2",
    "kendall_tau", "kendall_tau_low", "kendall_tau_high", "kendall_p", "spearman_rho",
    "loo_rmse", "status",
)  # fmt: skip

#: Bootstrap resamples of the Kendall τ interval, and its seed.
TAU_BOOTSTRAP = 2000
TAU_SEED = 0

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
    kendall_tau_low: float = math.nan
    kendall_tau_high: float = math.nan
    kendall_p: float = math.nan


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


def kendall_tau_interval(
    x: Sequence[float], y: Sequence[float], *, n_boot: int = TAU_BOOTSTRAP, seed: int = TAU_SEED,
    level: float = 0.95,
) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap interval of Kendall's τ-b, resampling the (x, y) pairs (the models).

    Each of ``n_boot`` resamples (``numpy.random.default_rng(seed)``, all at once) draws n pairs
    with replacement and computes τ-b = Σ sgn(Δx)·sgn(Δy) / √(Σ sgn(Δx)² · Σ sgn(Δy)²) over
    all ordered pairs (what ``scipy.stats.kendalltau`` computes); resamples where x or y is
    constant are dropped. Returns the (1 − level)/2 and (1 + level)/2 quantiles (NaN when no
    resample is usable). With 4–27 models per family the interval is wide: that is the point.

    >>> x = np.arange(12.0); y = x + np.random.default_rng(0).normal(0, 2, 12)
    >>> lo, hi = kendall_tau_interval(x, y)
    >>> bool(lo < stats.kendalltau(x, y).statistic < hi)
    True
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = xa.size
    if n < 2:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    xs, ys = xa[idx], ya[idx]
    sx = np.sign(xs[:, :, None] - xs[:, None, :])
    sy = np.sign(ys[:, :, None] - ys[:, None, :])
    den = np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))
    ok = den > 0
    if not ok.any():
        return math.nan, math.nan
    tau = (sx * sy).sum(axis=(1, 2))[ok] / den[ok]
    q = (1.0 - level) / 2.0
    return float(np.quantile(tau, q)), float(np.quantile(tau, 1.0 - q))


def _not_fitted(n: int, status: str) -> TrendFit:
    nan = math.nan
    return TrendFit(n, nan, nan, nan, nan, nan, nan, status)


def fit_trend(
    x: Sequence[float], y: Sequence[float], *, min_n: int = MIN_MODELS, n_boot: int = 0,
    seed: int = TAU_SEED,
) -> TrendFit:  # fmt: skip
    """Fit ``y ≈ slope·x + intercept`` by ordinary least squares (``scipy.stats.linregress``).

    Pairs where x or y is NaN/inf are dropped first; ``n`` counts the pairs used. With fewer
    than ``min_n`` pairs the status is ``"too_few_models"``; with a constant x it is
    ``"constant_metric"``. Rank correlations are ``scipy.stats.kendalltau`` (τ-b, with its
    two-sided p-value ``kendall_p`` for τ = 0: exact for small n without ties) and
    ``scipy.stats.spearmanr``; with ``n_boot`` > 0 also the 95 % bootstrap interval of τ
    (:func:`kendall_tau_interval`, ``seed``).
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
    kt = stats.kendalltau(xa, ya)
    tau = kt.statistic
    rho = stats.spearmanr(xa, ya).statistic
    low, high = (
        kendall_tau_interval(xa, ya, n_boot=n_boot, seed=seed) if n_boot else (math.nan,) * 2
    )
    return TrendFit(
        n=n,
        slope=float(lr.slope),
        intercept=float(lr.intercept),
        rmse=rmse(ya, y_hat),
        r2=r_squared(ya, y_hat),
        kendall_tau=float(tau),
        spearman_rho=float(rho),
        kendall_tau_low=low,
        kendall_tau_high=high,
        kendall_p=float(kt.pvalue),
    )


def family_trends(
    models: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    target: str = "top1",
    quality: Sequence[Any] | None = None,
    group_by: Sequence[str] = GROUP_COLUMNS,
    min_n: int = MIN_MODELS,
    n_boot: int = 0,
    seed: int = TAU_SEED,
) -> pd.DataFrame:
    """One :func:`fit_trend` of each quality on each metric, per group of ``models``.

    ``quality`` lists the study's quality metrics (:class:`htsr.studies.table.Quality`: ``name`` and
    ``transform``; a ``log10`` quality is regressed as its log); default: ``target`` alone, as
    published. Groups are ``group_by`` (default (set, family): the papers' sets carry different
    accuracies for one family; a study whose sets only split a family by cost groups by family
    alone, and the ``set`` column then lists the sets joined by '+'). ``models`` needs a
    ``family`` column, the quality columns and the metric columns (a missing metric counts as
    all-NaN; a missing ``set`` as one set ''). Returns one row per (group, quality, metric) with
    :data:`TREND_COLUMNS`, groups in order of first appearance; a group without any value of a
    quality (a family not evaluated on that benchmark) has no rows for it. ``loo_rmse`` is the
    leave-one-out prediction error (:func:`htsr.studies.predict.loo_rmse`, units of the regressed
    quality), NaN for fewer than 4 models. ``n_boot`` > 0 adds the bootstrap interval of τ.
    """
    specs = list(quality) if quality is not None else [Quality(target)]
    for col in ("family", *(q.name for q in specs)):
        if col not in models.columns:
            raise KeyError(f"family_trends: the models table has no column {col!r}")
    if "set" not in models.columns:
        models = models.assign(set="")
    rows = []
    for _, group in models.groupby(list(group_by), sort=False):
        family = group["family"].iloc[0]
        set_name = "+".join(dict.fromkeys(group["set"].astype(str)))
        for q in specs:
            ys = quality_values(group[q.name], q.transform)
            if quality is not None and not np.isfinite(ys).any():
                continue  # the family was not evaluated on this quality (GPT-2's on PIQA)
            for metric in metrics:
                x = group[metric] if metric in group.columns else pd.Series(np.nan, group.index)
                xs = x.to_numpy(float)
                fit = fit_trend(xs, ys, min_n=min_n, n_boot=n_boot, seed=seed)
                loo = loo_rmse(xs, ys) if fit.status == "ok" else math.nan
                rows.append({"set": set_name, "family": family, "quality": q.name,
                             "transform": q.transform, "metric": metric, **asdict(fit),
                             "loo_rmse": loo})  # fmt: skip
    return pd.DataFrame(rows, columns=list(TREND_COLUMNS))


def with_more_families(models: pd.DataFrame, columns: Sequence[str] = ()) -> pd.DataFrame:
    """``models`` plus, for each column in ``columns``, a copy of every row whose value there is
    set, with that value as its ``family``: a model in several families at once (a CompressAI
    codec is in its architecture's family across quality levels, and in its level's family
    across architectures). Rows keep their other columns; the copies follow the originals.

    >>> m = pd.DataFrame({"model": ["a", "b"], "family": ["f", "f"], "level": ["q1", ""]})
    >>> with_more_families(m, ["level"])[["model", "family"]].values.tolist()
    [['a', 'f'], ['b', 'f'], ['a', 'q1']]
    """
    frames = [models]
    for column in columns:
        if column not in models.columns:
            raise KeyError(f"with_more_families: the models table has no column {column!r}")
        values = models[column]
        named = values.notna() & (values.astype(str).str.strip() != "")
        frames.append(models[named].assign(family=values[named].astype(str)))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else models


def models_table(
    model_rows: pd.DataFrame,
    spectra: Mapping[str, pd.DataFrame],
    summarize: Callable[[pd.DataFrame], pd.Series],
    *,
    quality: Sequence[str] = ("top1", "top5"),
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per model: its identity columns and the model-level metrics of its spectra.

    ``model_rows`` is the model table (columns ``model, family, source, top1, top5``, and
    optionally ``set``, ``label`` and ``layers``: a row with a ``layers`` pattern is summarised
    from the matrices whose layer it matches, :func:`htsr.studies.table.select_layers`);
    ``spectra`` maps each model key to its per-matrix table; ``summarize`` turns such a table
    into model-level means (:func:`summarize`). Columns: :data:`BASE_ID_COLUMNS`, the
    ``quality`` columns, the ``extra`` columns of the model table (e.g. ``step``),
    :data:`METRICS`, ``n_matrices``, then :data:`ALL_LAYER_METRICS` (the same over every
    matrix, whatever ``layers`` says) and ``lambda_max_below_1``: the fraction of the used
    fitted matrices whose λmax < 1, where log10 λmax < 0 turns α·log10 λmax negative, so a
    heavier tail (smaller α) *raises* α̂. Raises ``KeyError`` naming a model without spectra.
    """
    missing = [m for m in model_rows["model"] if m not in spectra]
    if missing:
        raise KeyError(f"models_table: no spectra table for model(s) {missing}")
    if "set" not in model_rows.columns:
        model_rows = model_rows.assign(set="")
    if "label" not in model_rows.columns:
        model_rows = model_rows.assign(label=model_rows["model"])
    id_columns = [*BASE_ID_COLUMNS, *quality, *extra]
    records = []
    for row in model_rows.to_dict("records"):
        chosen = select_layers(spectra[row["model"]], row.get("layers"))
        summary = summarize(chosen)
        whole = summarize(spectra[row["model"]]) if row.get("layers") else summary
        record = {col: row.get(col, math.nan) for col in id_columns}
        for metric in METRICS:
            record[metric] = summary.get(metric, math.nan)
        record["n_matrices"] = int(summary.get("n_matrices", 0))
        for metric in ALL_LAYER_METRICS:
            record[metric] = whole.get(metric.removesuffix(ALL_LAYERS), math.nan)
        ok = chosen[chosen["status"] == "ok"]
        has = len(ok) and "lambda_max" in ok.columns  # a table without λmax: NaN, not an error
        lam = pd.to_numeric(ok["lambda_max"], errors="coerce") if has else pd.Series([])
        record["lambda_max_below_1"] = float((lam < 1).mean()) if len(lam) else math.nan
        records.append(record)
    columns = [*id_columns, *METRICS, "n_matrices", *ALL_LAYER_METRICS, "lambda_max_below_1"]
    return pd.DataFrame(records, columns=columns)


def summarize(
    table: pd.DataFrame, *, convention: str = "paper", min_evals: int | None = None
) -> pd.Series:
    """Model-level means over the rows with status ``ok``.

    Returns ``alpha_weighted`` (α̂ = mean of α·log10 λmax), ``log_norm``,
    ``log_spectral_norm`` (mean log10 λmax), ``log_alpha_norm``, ``alpha`` (ᾱ),
    ``log_frobenius_sq``, ``stable_rank``, ``log_mean_spectral_norm`` (log10 of the mean λmax;
    NaN when no row is ok), plus ``n_matrices`` (ok rows used) and ``n_rows`` (all rows).
    ``convention`` is the one ``table`` was made with: under ``ww2020`` the two spectral-norm
    metrics also take the ``too_small`` rows (WeightWatcher 0.2.7 averaged the spectral norm
    over every slice, small ones included; the 2019 notebooks and WW 0.7.7 did not).
    ``min_evals``: leave out the rows whose ESD has fewer eigenvalues (``num_evals``) than
    this, as if they were not ``ok`` (they carry a ``few eigenvalues`` warning in
    :func:`htsr.analyze`); default None keeps every row, as each convention's papers did.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    missing = [c for c in SUMMARY_INPUTS if c not in table.columns]
    if missing:
        raise ValueError(f"summarize: table lacks columns {missing}")
    if min_evals is not None:
        if "num_evals" not in table.columns:
            raise ValueError("summarize: min_evals needs the table's num_evals column")
        few = table["num_evals"].astype(float) < min_evals
        table = table.assign(status=table["status"].where(~few, "few_evals"))
    ok = table[table["status"] == "ok"]
    lam = table["lambda_max"].astype(float)
    small = (table["status"] == "too_small") & (lam > 0) & (convention == "ww2020")
    normed = table[(table["status"] == "ok") | small]
    nan = float("nan")
    out = {m: float(ok[m].mean()) if len(ok) else nan for m in _ROW_MEANS}
    if len(ok):
        out["log_spectral_norm"] = float(normed["log_spectral_norm"].mean())
        out["log_mean_spectral_norm"] = float(np.log10(normed["lambda_max"].astype(float).mean()))
    else:
        out["log_mean_spectral_norm"] = nan
    out["n_matrices"] = len(ok)
    out["n_rows"] = len(table)
    return pd.Series(out, dtype="float64")
