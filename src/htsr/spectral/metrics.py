"""Per-matrix HT-SR metrics, :func:`analyze` (a model → one row per matrix) and :func:`summarize`.

Two conventions, selected by name:

``paper`` (default)
    Martin & Mahoney (SDM 2020). Every conv2d/conv1d kernel tap ``W[:, :, i, j]`` is its own
    matrix, kept when ``min(N, M) ≥ min_dim`` (default 50); linear, attention (q/k/v) and
    embedding matrices are always kept. Eigenvalues are raw squared singular values. The tail is
    fitted truncated at the matrix's λmax (``fit_power_law(evals, xmax=λmax)``).
``ww``
    WeightWatcher 0.7.7's ``WeightWatcher(model=m).analyze()`` defaults: one pooled ESD per layer
    from all its matrices; conv2d eigenvalues scaled by ½ (WW multiplies each slice by
    √(1/2)); layers with ``M·rf < 8`` or ``M·rf > 15000`` eigenvalues or ``N > 50000`` skipped;
    eigenvalues ≤ 1e-5 dropped before the (untruncated) WW fit; ``log_norm`` is WW's
    ``log10 Σλ`` = log10 of the *squared* (and for conv2d halved) Frobenius norm.
``ww2020``
    WeightWatcher 0.2.7 as the Nat. Commun. 2021 tables ran it (``analyze(alphas=True,
    spectralnorms=True, normalize=False, glorot_fix=False)``): per slice like ``paper``, but
    every matrix of a layer with ``count`` slices (kh·kw for a conv, 1 for a Linear) is scaled by
    √(count/2) first, so its eigenvalues are ``λ·count/2``; a slice of any layer type with
    ``min(N, M) < 50`` gets no fit (status ``too_small``) but keeps its ``lambda_max`` and
    ``log_spectral_norm``, which :func:`summarize` averages over every slice, as WW 0.2.7 did;
    a layer whose matrices have fewer than 2 columns (``W.shape[1] < 2``: depthwise convs) is
    skipped outright; ``log_norm`` is log10 ‖W'‖_F of the scaled matrix.

Eigenvalues are exact by default (``evals="exact"``: the Gram matrix's symmetric eigensolve);
``evals="tsvd"`` reproduces the 2019 notebooks and WeightWatcher 0.2.7, which took the largest M - 1
of them from scikit-learn's randomized ``TruncatedSVD(n_components=M-1)``. That sampled
``n_components + n_oversamples = M + 9 >= M = rank(W)`` random vectors, so its range finder spans
W's whole column space and the values it returned are W's exact top M - 1 to round-off
(docs/paper.md, "TruncatedSVD with M − 1 components is exact here"): ``tsvd`` computes them so, the
exact float64 spectrum less its smallest eigenvalue. ``evals="tsvd_sklearn"`` runs scikit-learn's
TruncatedSVD itself (:func:`htsr.spectral.eigen.tsvd_eigenvalues`, ``random_state`` 42 under
``paper``, 10 under ``ww2020``), the reference ``tsvd`` is tested against, 10-30x slower.

The metric formulas are the small pure functions below; all logarithms are base 10.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from htsr.spectral import fit as fitmod
from htsr.spectral import ww
from htsr.spectral.eigen import eigenvalues, torch_dtype, tsvd_eigenvalues
from htsr.spectral.matrices import LayerWeight, MatrixStack, iter_layers, layer_matrices
from htsr.spectral.ww import WW_CONV2D_EVAL_SCALE, WW_MAX_EVALS, WW_MAX_N, ww_dims

CONVENTIONS = ("paper", "ww", "ww2020")
#: Conventions with one row per matrix (kernel tap); ``ww`` pools a layer into one row.
PER_SLICE = ("paper", "ww2020")
EVALS = ("exact", "tsvd", "tsvd_sklearn")
#: The ``evals`` that drop the smallest eigenvalue, as ``TruncatedSVD(n_components=M-1)`` did.
TSVD_EVALS = ("tsvd", "tsvd_sklearn")
#: ``random_state`` of ``TruncatedSVD`` for ``evals="tsvd_sklearn"``: the 2019 notebooks' 42,
#: WeightWatcher 0.2.7's 10.
TSVD_SEEDS = {"paper": 42, "ww2020": 10}

#: ``analyze``'s precision per convention when ``dtype`` is not given, on CPU: float32 holds α
#: within 0.01 of a float64 SVD under both conventions (tested; 0.0085 at most on seven
#: torchvision models) and is 2-3× faster there; ``dtype="float64"`` reproduces WeightWatcher's
#: float64 SVD to ~1e-12. On CUDA the default is always float64 (cheap on a GPU, and two float32
#: implementations — CPU LAPACK vs cuSOLVER — were measured to differ by up to 0.018 in α on an
#: H200).
DEFAULT_DTYPE = {"paper": "float32", "ww": "float32", "ww2020": "float32"}
FITS = ("truncated", "untruncated", "ww")

#: Output columns of :func:`analyze`, in order (``evals`` is appended with ``keep_evals``).
COLUMNS: tuple[str, ...] = (
    "layer",
    "layer_type",
    "slice",
    "N",
    "M",
    "num_evals",
    "lambda_max",
    "alpha",
    "xmin",
    "D",
    "n_tail",
    "alpha_weighted",
    "log_norm",
    "log_frobenius_sq",
    "log_spectral_norm",
    "log_alpha_norm",
    "stable_rank",
    "status",
    "warning",
)

#: WeightWatcher 0.7.7's thresholds (``constants.py``: ``OVER_TRAINED_THRESH = 2.0``,
#: ``UNDER_TRAINED_THRESH = 6.0``) and its words for the ``warning`` column.
ALPHA_OVER_TRAINED = 2.0
ALPHA_UNDER_TRAINED = 6.0


#: Default of ``analyze``'s ``min_evals``: a fitted row with fewer eigenvalues gets a warning.
#: WeightWatcher 0.7.7's ``DEFAULT_MIN_EVALS`` (``htsr.ww.WW_MIN_EVALS``).
MIN_EVALS = 8

#: Paper default for the smaller side of a conv slice to be analysed.
PAPER_MIN_DIM = 50


# --------------------------------------------------------------------------- metric formulas


def alpha_weighted(alpha: float, lambda_max: float) -> float:
    """Weighted alpha of one matrix, ``α · log10 λmax`` (dimensionless)."""
    return float(alpha * np.log10(lambda_max))


def log_norm(evals: np.ndarray) -> float:
    """Paper log-norm, ``log10 ‖W‖_F = ½ · log10 Σᵢ λᵢ`` (λ = σ², log10 of weight units)."""
    return float(0.5 * np.log10(np.sum(evals)))


def log_frobenius_sq(evals: np.ndarray) -> float:
    """``log10 ‖W‖²_F = log10 Σᵢ λᵢ`` (log10 of squared weight units)."""
    return float(np.log10(np.sum(evals)))


def log_spectral_norm(lambda_max: float) -> float:
    """``log10 λmax = log10 ‖W‖²₂`` (the squared spectral norm, as in WeightWatcher)."""
    return float(np.log10(lambda_max))


def log_alpha_norm(evals: np.ndarray, alpha: float) -> float:
    """Log α-norm (Schatten), ``log10 Σᵢ λᵢ^α``.

    Evaluated as ``α·log10 λmax + log10 Σᵢ (λᵢ/λmax)^α`` so that it stays finite where the
    direct sum would overflow float64 (large α and λ).
    """
    lam_max = float(np.max(evals))
    return float(alpha * np.log10(lam_max) + np.log10(np.sum((evals / lam_max) ** alpha)))


def stable_rank(evals: np.ndarray) -> float:
    """Stable rank ``‖W‖²_F / ‖W‖²₂ = Σᵢ λᵢ / λmax`` (dimensionless, between 1 and M)."""
    return float(np.sum(evals) / np.max(evals))


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class _Options:
    convention: str
    min_dim: int
    fit: str
    dtype: torch.dtype
    device: torch.device
    keep_evals: bool
    evals: str = "exact"
    tsvd_seed: int = 42
    bootstrap: int = 0
    bootstrap_seed: int = 0
    diag: Any = None  # htsr.spectral.diagnostics.Diagnostics, when any is asked for
    num_components: int = 0  # keep the largest this many eigenvalues of each matrix (0: all)


def _blank_row(
    layer: str, layer_type: str, label: str, shape: tuple[int, int], status: str
) -> dict[str, Any]:
    """A row with its identity, shape and status; every metric NaN, no eigenvalues."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS, np.nan)
    row.update(layer=layer, layer_type=layer_type, slice=label, N=shape[0], M=shape[1])
    row.update(num_evals=0, n_tail=0, status=status)
    return row


def _empty_row(stack: MatrixStack, label: str, status: str) -> dict[str, Any]:
    return _blank_row(stack.layer, stack.layer_type, label, stack.shape, status)


def _fit(evals: np.ndarray, fit: str) -> Any:
    """Run the configured power-law fit of :mod:`htsr.spectral.fit` on the eigenvalues.

    ``ww``: ``fit_power_law_ww`` (drops λ ≤ 1e-5 itself); ``truncated``: ``fit_power_law`` on
    ``[xmin, λmax]``; ``untruncated``: ``fit_power_law`` with ``xmax=None``.
    """
    if fit == "ww":
        return fitmod.fit_power_law_ww(evals)
    xmax = float(evals.max()) if fit == "truncated" else None
    return fitmod.fit_power_law(evals, xmax=xmax)


def _fill_row(
    row: dict[str, Any], evals: np.ndarray, opts: _Options, frob_sq: float | None = None
) -> None:
    """Add norms (always computable for a nonzero ESD), then the fit and α-metrics if it works.

    ``frob_sq`` is ‖W‖²_F when ``evals`` are not the whole spectrum (``evals="tsvd"`` drops the
    smallest eigenvalue; the 2019 notebooks and WW 0.2.7 took the norm of W itself)."""
    lam_max = float(evals.max())
    norm_evals = evals if frob_sq is None else np.array([frob_sq])
    row.update(
        num_evals=int(evals.size),
        lambda_max=lam_max,
        log_norm=ww.ww_log_norm(norm_evals) if opts.convention == "ww" else log_norm(norm_evals),
        log_frobenius_sq=log_frobenius_sq(norm_evals),
        log_spectral_norm=log_spectral_norm(lam_max),
        stable_rank=float(np.sum(norm_evals) / lam_max),
    )
    if row["status"] != "ok":
        return
    result = _fit(evals, opts.fit)
    row.update(xmin=result.xmin, D=result.D, n_tail=result.n_tail)
    if result.status != "ok" or not np.isfinite(result.alpha):
        row["status"] = result.status if result.status != "ok" else "fit_failed"
        return
    row.update(
        alpha=float(result.alpha),
        alpha_weighted=alpha_weighted(result.alpha, lam_max),
        log_alpha_norm=log_alpha_norm(evals, result.alpha),
    )
    if opts.bootstrap > 0:
        used = evals[evals > 1e-5] if opts.fit == "ww" else evals  # the values the fit saw
        row["alpha_low"], row["alpha_high"] = bootstrap_alpha_interval(
            used, float(result.xmin), n_boot=opts.bootstrap, seed=opts.bootstrap_seed
        )


def bootstrap_alpha_interval(
    evals: np.ndarray, xmin: float, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the power-law exponent α, xmin held at its fit.

    Each of ``n_boot`` resamples draws the eigenvalues with replacement (all resamples at once,
    one ``(n_boot, n)`` index array from ``numpy.random.default_rng(seed)``) and recomputes the
    maximum-likelihood α = 1 + k / Σ ln(λ/xmin) over its k values λ ≥ xmin (Clauset, Shalizi &
    Newman 2009, eq. 3.1; the estimator of every fit here once xmin is chosen). The interval is
    the (1 − level)/2 and (1 + level)/2 quantiles of those α. It is conditional on xmin: it
    shows the sampling spread of α for the chosen tail, not the uncertainty of choosing xmin.
    Resamples with fewer than 2 tail values are dropped; NaNs when none is left.

    >>> x = (1.0 - np.random.default_rng(1).random(2000)) ** (-1 / 2.0)   # Pareto, α = 3
    >>> lo, hi = bootstrap_alpha_interval(x, 1.0, n_boot=500)
    >>> bool(lo < 3.0 < hi), bool(hi - lo < 0.3)
    (True, True)
    """
    x = np.asarray(evals, dtype=float)
    rng = np.random.default_rng(seed)
    sample = x[rng.integers(0, x.size, size=(n_boot, x.size))]
    tail = sample >= xmin
    logs = np.where(tail, np.log(np.where(tail, sample, xmin) / xmin), 0.0).sum(axis=1)
    k = tail.sum(axis=1)
    ok = (k >= 2) & (logs > 0)
    if not ok.any():
        return float("nan"), float("nan")
    alphas = 1.0 + k[ok] / logs[ok]
    q = (1.0 - level) / 2.0
    return float(np.quantile(alphas, q)), float(np.quantile(alphas, 1.0 - q))


def _slice_status(matrices: torch.Tensor) -> list[str]:
    """Per matrix: ``nonfinite`` if any NaN/Inf entry, ``zero`` if all entries are 0, else ok.

    On the CPU the scan runs in numpy (single-threaded): torch's intra-op threads contend with
    the BLAS threads that the eigensolves of neighbouring layers leave spinning, which made the
    same scan 20x slower than the eigensolves it stands in for. The common case, every entry
    finite and nonzero, is settled by two whole-stack reductions; only a stack with a NaN, Inf
    or 0 somewhere is scanned matrix by matrix (per-matrix reductions over a strided conv view
    cost 15x more)."""
    m = matrices.detach()
    if m.device.type == "cpu":
        arr = (m.float() if m.dtype == torch.bfloat16 else m).numpy()
        if np.isfinite(arr).all() and arr.all():
            return ["ok"] * m.shape[0]
        flat = arr.reshape(m.shape[0], -1)
        finite, nonzero = np.isfinite(flat).all(axis=1), (flat != 0).any(axis=1)
    else:
        flat = m.reshape(m.shape[0], -1)
        finite, nonzero = torch.isfinite(flat).all(dim=1), (flat != 0).any(dim=1)
    return [
        ("ok" if nz else "zero") if f else "nonfinite"
        for f, nz in zip(finite.tolist(), nonzero.tolist(), strict=True)
    ]


def _screened_status(matrices: torch.Tensor, evals: list[np.ndarray], opts: _Options) -> list[str]:
    """:func:`_slice_status` of every matrix, reading the weights only where the spectrum hints.

    A NaN/Inf weight makes its spectrum NaN (:func:`htsr.spectral.eigen.eigenvalues`) and an
    all-zero matrix has ``λmax = 0``, so only matrices whose eigenvalues are not all finite or whose
    ``λmax`` is 0 (or below the floor below) are checked entry by entry; the others are
    ``ok``. Scanning every weight of vgg16 twice cost 0.9 s of its 6.8 s ``analyze``.

    A matrix with finite, nonzero weights whose spectrum is not finite or whose ``λmax`` is
    below :func:`_normal_floor` of ``opts.dtype`` over- or underflowed there (float32 Gram
    entries overflow from weights of ~1e18 on; below a λmax of ~1e-31 the kept eigenvalues are
    float32 subnormals or 0): its eigenvalues are recomputed in float64 and replace its entry of
    ``evals``; if they still are not finite its status is ``overflow``, if ``λmax`` is still
    below the float64 floor (~1e-292) ``underflow``.
    """
    floor = _normal_floor(opts.dtype)
    statuses = ["ok"] * len(evals)
    suspect = [i for i, ev in enumerate(evals) if not (np.isfinite(ev).all() and ev[-1] > floor)]
    if suspect:
        for i, st in zip(suspect, _slice_status(matrices[suspect]), strict=True):
            statuses[i] = st
    redo = [i for i in suspect if statuses[i] == "ok"]
    if redo and opts.dtype != torch.float64:
        wide = eigenvalues(matrices[redo], dtype=torch.float64, device=opts.device)
        for i, ev in zip(redo, wide.cpu().numpy(), strict=True):
            evals[i] = ev
    for i in redo:
        if not np.isfinite(evals[i]).all():
            statuses[i] = "overflow"
        elif not evals[i][-1] > _normal_floor(torch.float64):
            statuses[i] = "underflow"
    return statuses


def _normal_floor(dtype: torch.dtype) -> float:
    """``tiny / eps`` of ``dtype``: with ``λmax`` above it, every eigenvalue kept above the
    rank tolerance ``M·eps·λmax`` (:func:`htsr.spectral.eigen.eigenvalues`) is a normal float."""
    info = torch.finfo(dtype)
    return float(info.tiny / info.eps)


#: The eigenvalues shared by the analyses of one model inside :func:`analyze_methods`: the
#: stack's key (layer, slice labels, shape), dtype, device and ``num_components`` → its
#: eigenvalues. None outside it (every call computes its own).
_SHARED_EVALS: ContextVar[dict[tuple[Any, ...], list[np.ndarray]] | None] = ContextVar(
    "htsr_shared_evals", default=None
)


def _stack_evals(
    matrices: torch.Tensor, opts: _Options, key: tuple[Any, ...] | None = None
) -> list[np.ndarray]:
    """Eigenvalues (float64 numpy, ascending; NaN rows for non-finite matrices) of every matrix
    of the stack, in one batched call; inside :func:`analyze_methods`, a stack of the same
    ``key`` already decomposed at the same dtype and device is not decomposed again."""
    shared = _SHARED_EVALS.get()
    if shared is not None and key is not None:
        key = (*key, tuple(matrices.shape), opts.dtype, str(opts.device), opts.num_components)
        if key in shared:
            return [ev.copy() for ev in shared[key]]
    ev = eigenvalues(matrices, dtype=opts.dtype, device=opts.device)
    if 0 < opts.num_components < ev.shape[-1]:  # a low-rank matrix: its nonzero eigenvalues
        ev = ev[..., -opts.num_components :]
    out = list(ev.to(device="cpu", dtype=torch.float64).numpy())
    if shared is not None and key is not None:
        shared[key] = [e.copy() for e in out]
    return out


def _stack_key(stack: MatrixStack) -> tuple[Any, ...]:
    """What identifies a stack's matrices within one model (:func:`_stack_evals`)."""
    return (stack.layer, stack.layer_type, stack.slices)


def _tsvd_evals(stack: MatrixStack, opts: _Options) -> tuple[list[np.ndarray], list[str]]:
    """``evals="tsvd"``: the M - 1 largest eigenvalues of each matrix, exact, in float64.

    What ``TruncatedSVD(n_components=M-1)`` returned to round-off (module docstring): the
    stack's exact float64 eigenvalues (:func:`htsr.spectral.eigen.eigenvalues`, whatever
    ``opts.dtype``) less the smallest, with the exact route's statuses; W or Wᵀ have the same
    singular values, so the notebooks' orientation does not change them."""
    wide = replace(opts, dtype=torch.float64)
    evals = _stack_evals(stack.matrices, wide, _stack_key(stack))
    statuses = _screened_status(stack.matrices, evals, wide)
    return [ev[1:] for ev in evals], statuses


def _tsvd_sklearn_evals(stack: MatrixStack, opts: _Options) -> tuple[list[np.ndarray], list[str]]:
    """``evals="tsvd_sklearn"``: the 2019 notebooks' TruncatedSVD of each finite, nonzero matrix
    (:func:`htsr.spectral.eigen.tsvd_eigenvalues`); the others get NaN and their status."""
    statuses = _slice_status(stack.matrices)
    orient = "stored" if stack.layer_type == "linear" else "long"
    nan = np.full(stack.shape[1] - 1, np.nan)
    evals = [
        tsvd_eigenvalues(w, orient=orient, random_state=opts.tsvd_seed) if st == "ok" else nan
        for w, st in zip(stack.matrices, statuses, strict=True)
    ]
    return evals, statuses


def _frobenius_sq(stack: MatrixStack) -> list[float]:
    """‖W‖²_F of each matrix of the stack, in float64."""
    return stack.matrices.detach().to(torch.float64).square().sum(dim=(-2, -1)).tolist()


def _slice_rows(stack: MatrixStack, opts: _Options) -> list[dict[str, Any]]:
    """One row per matrix of the stack (``paper`` and ``ww2020`` conventions)."""
    m = stack.shape[1]
    scale = 1.0
    norms = True  # a too-small slice still gets its norms, just no fit
    if opts.convention == "ww2020":
        scale = len(stack.slices) / 2.0  # WW 0.2.7: W * sqrt(count / 2)
        tiny = m < opts.min_dim
        cols = stack.matrices.shape[-1] if stack.layer_type == "linear" else m
        norms = cols >= 2  # WW 0.2.7 skips a layer with W.shape[1] < 2 outright
    else:
        tiny = stack.layer_type in ("conv1d", "conv2d", "conv3d", "capsule") and m < opts.min_dim
        if tiny:  # no eigensolve: the row keeps its shape and status, nothing else is used
            return [
                _empty_row(stack, label, "too_small" if st == "ok" else st)
                for label, st in zip(stack.slices, _slice_status(stack.matrices), strict=True)
            ]
    frob: list[float | None] = [None] * len(stack.slices)
    if opts.evals in TSVD_EVALS and not tiny:
        route = _tsvd_evals if opts.evals == "tsvd" else _tsvd_sklearn_evals
        all_evals, statuses = route(stack, opts)
        frob = [f * scale for f in _frobenius_sq(stack)]
    else:
        all_evals = _stack_evals(stack.matrices, opts, _stack_key(stack))
        statuses = _screened_status(stack.matrices, all_evals, opts)
    rows = []
    for label, st, evals, frob_sq in zip(stack.slices, statuses, all_evals, frob, strict=True):
        row = _empty_row(stack, label, "too_small" if tiny and st == "ok" else st)
        rows.append(row)
        if st == "zero":
            row.update(num_evals=m, lambda_max=0.0)
        if st != "ok":
            continue
        if scale != 1.0:
            evals = evals * scale
        if tiny and not norms:
            continue
        _fill_row(row, evals, opts, frob_sq)  # norms for every row; a fit only for ok rows
        if opts.diag is not None and row["status"] == "ok":
            from htsr.spectral.diagnostics import diagnostic_columns, ww_matrices

            w = ww_matrices(stack.matrices[len(rows) - 1 : len(rows)], "conv2d")  # long side first
            n, m = stack.shape
            diagnostic_columns(row, np.sort(evals), w, opts.diag, N=n, M=m, rf=1, scale=scale)
            _refresh_alpha_metrics(row, evals)
        if opts.keep_evals:
            row["evals"] = evals
    return rows


def ww_row(stack: MatrixStack, opts: Any) -> dict[str, Any]:
    """One pooled row for the whole layer (WeightWatcher convention)."""
    row = _empty_row(stack, "", "ok")
    ww_n, ww_m, rf = ww_dims(stack)
    if ww_m * rf < opts.min_dim:
        row["status"] = "too_small"
    elif ww_m * rf > WW_MAX_EVALS or ww_n > WW_MAX_N:
        row["status"] = "too_large"
    all_evals: list[np.ndarray] = []
    if row["status"] == "ok":  # too_small/too_large layers get no spectrum
        all_evals = _stack_evals(stack.matrices, opts, _stack_key(stack))
        statuses = _screened_status(stack.matrices, all_evals, opts)
    else:
        statuses = _slice_status(stack.matrices)
    bad = [st for st in statuses if st != "ok"]
    for worst in ("nonfinite", "overflow", "underflow"):  # one such matrix spoils the pooled ESD
        if worst in bad:
            row["status"] = worst
            return row
    if len(bad) == len(statuses):
        row.update(status="zero", num_evals=rf * min(ww_n, ww_m), lambda_max=0.0)
        return row
    if row["status"] != "ok":
        return row
    evals = np.sort(np.concatenate(all_evals))
    if stack.layer_type == "conv2d":
        evals = evals * WW_CONV2D_EVAL_SCALE
    _fill_row(row, evals, opts)
    if opts.diag is not None and row["status"] == "ok":
        from htsr.spectral.diagnostics import diagnostic_columns, ww_matrices

        scale = WW_CONV2D_EVAL_SCALE if stack.layer_type == "conv2d" else 1.0
        mats = ww_matrices(stack.matrices, stack.layer_type)
        diagnostic_columns(row, evals, mats, opts.diag, N=ww_n, M=ww_m, rf=rf, scale=scale)
        _refresh_alpha_metrics(row, evals)
    if opts.keep_evals:
        row["evals"] = evals
    return row


def _refresh_alpha_metrics(row: dict[str, Any], evals: np.ndarray) -> None:
    """``alpha_weighted`` and ``log_alpha_norm`` of the row's (possibly replaced) α."""
    a = row["alpha"]
    ok = row["status"] == "ok" and np.isfinite(a)
    row["alpha_weighted"] = alpha_weighted(a, row["lambda_max"]) if ok else np.nan
    row["log_alpha_norm"] = log_alpha_norm(evals, a) if ok else np.nan


#: Statuses of layers that WeightWatcher does not analyse (its filters and unusable weights).
_NOT_ANALYSED = ("too_small", "too_large", "empty", "unsupported", "non_float", "error")


class IntraPairs:
    """``analyze(intra=True)``: one row per pair of consecutive analysed layers
    (:mod:`htsr.spectral.intra`), as WeightWatcher's ``WWIntraLayerIterator`` forms them."""

    def __init__(self, opts: _Options, *, sparsify: bool, seed: int) -> None:
        self.opts, self.sparsify = opts, sparsify
        self.rng = np.random.RandomState(seed)
        self.prev: tuple[str, np.ndarray] | None = None

    def add(self, layer: LayerWeight, layer_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The pair row of ``layer`` with the previous analysed layer (none for the first, for
        a layer WW skips, or for two matrices that share no dimension)."""
        from htsr.spectral.diagnostics import ww_matrices
        from htsr.spectral.intra import intra_matrix

        if len(layer_rows) != 1 or layer_rows[0]["status"] in _NOT_ANALYSED:
            return []
        stack = layer_matrices(layer)
        w = ww_matrices(stack.matrices[:1], stack.layer_type)[0]
        prev, self.prev = self.prev, (layer.name, w)
        if prev is None:
            return []
        x = intra_matrix(prev[1], w, self.rng, sparsify=self.sparsify)
        if x is None:
            return []
        _, ww_m, rf = ww_dims(stack)
        n_comp = ww_m * rf if stack.layer_type == "conv2d" else ww_m
        sv = np.sort(np.linalg.svd(x, compute_uv=False))[-n_comp:]
        if stack.layer_type == "conv2d":  # WW scales the conv2d "layer" by √(1/2)
            sv = sv * np.sqrt(WW_CONV2D_EVAL_SCALE)
        shape = (max(x.shape), min(x.shape))
        row = _blank_row(f"{prev[0]} X {layer.name}", "intra", "", shape, "ok")
        _fill_row(row, sv, self.opts)  # WW analyses the singular values as its "evals"
        return [row]


# --------------------------------------------------------------------------- analyze


def _layer_rows(layer: LayerWeight, opts: _Options) -> list[dict[str, Any]]:
    """The layer's rows under ``opts.convention``, never raising: a weight that cannot be cut into
    matrices gets one ``unsupported`` row, a matrix with a zero-length side ``empty`` rows, and
    any other failure ``error`` rows plus a ``RuntimeWarning`` naming the layer and the error; a
    layer that carries a status (``non_float``) one row with that status."""
    if layer.status:
        w = layer.weight
        shape = (
            tuple(sorted((int(w.shape[-2]), int(w.shape[-1])), reverse=True))
            if w.ndim >= 2
            else (0, 0)
        )
        stored = layer.stored_type or str(w.dtype).removeprefix("torch.")
        warnings.warn(
            f"analyze: layer {layer.name}: stored as {stored}, not floating point; status"
            f" {layer.status!r}", RuntimeWarning, stacklevel=3,
        )  # fmt: skip
        row = _blank_row(layer.name, layer.layer_type, "", shape, layer.status)
        row["warning"] = f"stored as {stored}"
        return [row]
    try:
        stack = layer_matrices(layer)
    except ValueError as err:
        warnings.warn(f"analyze: {err}; status 'unsupported'", RuntimeWarning, stacklevel=3)
        return [_blank_row(layer.name, layer.layer_type, "", (0, 0), "unsupported")]
    if layer.num_components:
        opts = replace(opts, num_components=layer.num_components)
    per_slice = opts.convention in PER_SLICE
    labels = stack.slices if per_slice else ("",)
    if stack.shape[1] == 0:
        return [_empty_row(stack, label, "empty") for label in labels]
    try:
        return _slice_rows(stack, opts) if per_slice else [ww_row(stack, opts)]
    except Exception as err:  # one bad layer must not sink the model's table
        warnings.warn(
            f"analyze: layer {layer.name}: {type(err).__name__}: {err}; status 'error'",
            RuntimeWarning,
            stacklevel=3,
        )
        return [_empty_row(stack, label, "error") for label in labels]


def _resolve_device(device: str | torch.device) -> torch.device:
    """The torch device to compute on; a CUDA request without CUDA warns and falls back to CPU."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"device={str(device)!r} requested but CUDA is not available; falling back to cpu",
            RuntimeWarning,
            stacklevel=3,
        )
        return torch.device("cpu")
    return dev


def _source(model: Any) -> nn.Module | Mapping[str, torch.Tensor]:
    if isinstance(model, (nn.Module, Mapping)):
        return model
    raise TypeError(
        "htsr.spectral.metrics.analyze() takes an nn.Module or a state_dict, not "
        f"{type(model).__name__} (a checkpoint path or address: htsr.analyze)"
    )


def analyze(
    model: nn.Module | Mapping[str, torch.Tensor],
    convention: str = "paper",
    *,
    min_dim: int | None = None,
    fit: str | None = None,
    dtype: str | None = None,
    device: str | torch.device = "cpu",
    include_embeddings: bool = False,
    keep_evals: bool = False,
    progress: bool = False,
    evals: str = "exact",
    tsvd_seed: int | None = None,
    bootstrap: int = 0,
    bootstrap_seed: int = 0,
    randomize: bool = False,
    mp_fit: bool = False,
    detX: bool = False,
    fix_fingers: str | None = None,
    vectors: bool = False,
    distribution_compare: bool = False,
    intra: bool = False,
    sparsify: bool = True,
    xmin_max: float | None = None,
    max_fingers: int = 10,
    finger_thresh: float = 1.0,
    seed: int = 0,
    min_evals: int = MIN_EVALS,
) -> pd.DataFrame:
    """Spectral metrics of every weight matrix of a model, one row per matrix (see ``COLUMNS``).

    Parameters
    ----------
    model
        An ``nn.Module`` or a state_dict (a mapping of name → tensor, such as the lazy store
        of :func:`htsr.weights.checkpoints.open_checkpoint`, read one tensor at a time). A
        checkpoint path or an ``hf://`` address is read one stage up, by :func:`htsr.analyze`
        (:func:`htsr.weights.analysis.analyze`), which then calls this function.
    convention
        ``"paper"`` (one row per matrix / kernel tap), ``"ww"`` (one pooled row per layer,
        matching WeightWatcher 0.7.7's defaults) or ``"ww2020"`` (per slice, WeightWatcher
        0.2.7 as Nat. Commun. 2021 ran it). See the module docstring.
    min_dim
        ``paper``: smallest ``min(N, M)`` of a conv matrix to analyse (default 50).
        ``ww2020``: the same for every matrix (WW 0.2.7's ``min_size``, default 50).
        ``ww``: WeightWatcher's ``min_evals``, smallest pooled eigenvalue count (default 8).
    fit
        ``"truncated"`` (xmax = λmax, the ``paper`` and ``ww2020`` default: powerlaw 1.4.6's
        ``Fit(evals, xmax=max(evals))``), ``"untruncated"``, or ``"ww"`` (WeightWatcher
        0.7.7's fit, the ``ww`` default). WeightWatcher's names: ``"PL"`` (the convention's
        power law), ``"TPL"`` (a truncated power law ``x^-α e^-Λx`` fitted on the power law's
        tail: ``alpha`` becomes its α, column ``Lambda``), ``"E_TPL"`` (the same with
        ``fix_fingers="xmin_peak"``), see :mod:`htsr.spectral.altfits`.
    dtype
        ``"float32"`` or ``"float64"``: precision of the Gram matrix and eigenvalues. Default
        (None): ``"float32"`` on CPU (2-3× faster; α stays within 0.01 of a float64 SVD in the
        tests, under both conventions), ``"float64"`` on CUDA. ``"float64"`` under ``ww``
        reproduces WeightWatcher's float64 SVD to ~1e-12.
    device
        ``"cpu"`` or ``"cuda"`` (falls back to CPU with a warning when CUDA is absent).
    include_embeddings
        Also analyse ``nn.Embedding`` weights and ``*embed*`` parameters.
    keep_evals
        Append a column ``evals`` with each row's eigenvalues (float64, ascending).
    progress
        Show a tqdm progress bar on stderr.
    evals
        ``"exact"`` (default), ``"tsvd"``: the 2019 method, the M - 1 largest eigenvalues,
        which scikit-learn's ``TruncatedSVD(n_components=M-1, n_iter=7)`` returned exactly to
        round-off, computed exactly in float64 (``paper`` and ``ww2020`` only; ignores
        ``dtype``), or ``"tsvd_sklearn"``: the same from that TruncatedSVD itself, on the CPU
        (the reference, 10-30x slower).
    tsvd_seed
        ``random_state`` of that TruncatedSVD (``tsvd_sklearn``); default 42 (the 2019
        notebooks) under ``paper``, 10 (WeightWatcher 0.2.7) under ``ww2020``.
    bootstrap
        With N > 0, add columns ``alpha_low`` and ``alpha_high``: a 95 % percentile bootstrap
        interval of each fitted α from N resamples of its eigenvalues, xmin held at its fit
        (:func:`bootstrap_alpha_interval`, seed ``bootstrap_seed``).
    randomize, mp_fit, detX, fix_fingers, vectors, xmin_max, max_fingers, finger_thresh
        WeightWatcher 0.7.7's diagnostics, under its keyword names; each adds WW's columns
        under WW's names (``docs/weightwatcher.md``; :mod:`htsr.spectral.diagnostics`):
        ``randomize`` correlation traps (``rand_distance``, ``num_traps``, ...), ``mp_fit``
        the Marchenko-Pastur fit (``num_spikes``, ``sigma_mp``, ...), ``detX`` the det X = 1
        tail (``detX_num``, ``ERG_gap``, ...), ``fix_fingers`` ``"xmin_peak"`` or
        ``"clip_xmax"`` (``num_fingers``, ``raw_alpha``; replaces the fit), ``vectors``
        eigenvector localization (``bulk_mean_vec_entropy``, ...).
    distribution_compare
        Likelihood-ratio tests of the fitted power law against the lognormal and the
        exponential on its tail (columns ``R_lognormal``, ``p_lognormal``, ``R_exponential``,
        ``p_exponential``; Clauset, Shalizi & Newman 2009, as ``powerlaw``'s
        ``distribution_compare``).
    intra, sparsify
        WeightWatcher's ``intra``: instead of the layers, rows for each pair of consecutive
        analysed layers (``layer`` = ``"A X B"``), the singular values of
        ``W_A S W_B / (‖W_A‖‖W_B‖ + √‖S‖)`` with S a random 0/1 matrix (``sparsify``) or I;
        ``convention="ww"`` only (:mod:`htsr.spectral.intra`).
    seed
        Seed of the ``numpy.random.RandomState`` that ``randomize`` (and ``intra``) draw from
        (one generator for the whole model, layer after layer, as WW draws from ``np.random``).
    min_evals
        A fitted row whose ESD has fewer eigenvalues than this says so in its ``warning``
        (``"few eigenvalues (7 < 8)"``): its α rests on too few values to trust. Default
        WeightWatcher 0.7.7's ``min_evals`` (8); 50 is a stricter choice. Nothing is dropped:
        :func:`htsr.studies.trends.summarize` leaves such rows out only when asked (its
        ``min_evals``).

    A bad layer never stops the run: it gets a row whose ``status`` says why (``nonfinite``,
    ``overflow``/``underflow`` (finite nonzero weights whose spectrum over- or underflows even in
    float64), ``empty`` (a side of length 0), ``unsupported`` (a weight that cannot be cut into
    matrices), ``error`` (any other failure, with a ``RuntimeWarning`` naming layer and error),
    ``zero``, ``too_small``, ``too_large``, or the fit's failure status).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    ww_fit = "PL"
    if fit in ("PL", "TPL", "E_TPL"):  # WeightWatcher's names: on top of the power-law fit
        ww_fit, fit = fit, None
    fit = fit if fit is not None else ("ww" if convention == "ww" else "truncated")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    resolved_device = _resolve_device(device)
    if dtype is None:
        dtype = DEFAULT_DTYPE[convention] if resolved_device.type == "cpu" else "float64"
    if evals not in EVALS:
        raise ValueError(f"evals must be one of {EVALS}, got {evals!r}")
    if evals in TSVD_EVALS and convention not in PER_SLICE:
        raise ValueError(
            f"evals={evals!r} needs a per-slice convention {PER_SLICE}, not {convention!r}"
        )
    if min_dim is None:
        min_dim = ww.WW_MIN_EVALS if convention == "ww" else PAPER_MIN_DIM
    if min_dim < 0:
        raise ValueError(f"min_dim must be >= 0, got {min_dim}")
    opts = _Options(
        convention=convention,
        min_dim=int(min_dim),
        fit=fit,
        dtype=torch_dtype(dtype),
        device=resolved_device,
        keep_evals=keep_evals,
        evals=evals,
        tsvd_seed=int(tsvd_seed if tsvd_seed is not None else TSVD_SEEDS.get(convention, 42)),
        bootstrap=int(bootstrap),
        bootstrap_seed=int(bootstrap_seed),
    )
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    from htsr.spectral.diagnostics import Diagnostics, columns_for

    diag = Diagnostics(
        randomize=randomize, mp_fit=mp_fit, detX=detX, fix_fingers=fix_fingers or None,
        vectors=vectors, fit=ww_fit, distribution_compare=distribution_compare,
        xmin_max=xmin_max, max_fingers=max_fingers,
        finger_thresh=finger_thresh, ww_range=convention == "ww", seed=seed,
    )  # fmt: skip
    if diag.any:
        opts = dataclasses.replace(opts, diag=diag)
    if intra:
        if convention != "ww":
            raise ValueError(f"intra needs convention='ww', not {convention!r}")
        if diag.any:
            raise ValueError("intra cannot be combined with the other diagnostics")
    source = _source(model)
    # WeightWatcher (0.7.7, and 0.2.7) does not see MultiheadAttention's bare in_proj_weight.
    # one tensor at a time: a checkpoint file is read as the layers are analysed
    layers = iter_layers(
        source, include_embeddings=include_embeddings, include_attention=convention == "paper"
    )
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    pairs = IntraPairs(opts, sparsify=sparsify, seed=seed) if intra else None
    with torch.no_grad():
        for layer in tqdm(layers, desc="layers", disable=not progress, file=sys.stderr):
            layer_rows = _layer_rows(layer, opts)
            if pairs is None:
                rows.extend(layer_rows)
            else:
                rows.extend(pairs.add(layer, layer_rows))
    columns = list(COLUMNS) + (["alpha_low", "alpha_high"] if bootstrap else [])
    columns += columns_for(diag)
    columns += ["evals"] if keep_evals else []
    table = pd.DataFrame(rows, columns=columns)
    said = table["warning"].where(table["warning"].map(lambda w: isinstance(w, str)), "")
    fitted = alpha_warnings(
        table["alpha"].to_numpy(float), table["status"], table["num_evals"], min_evals
    )
    table["warning"] = [s or w for s, w in zip(said, fitted, strict=True)]  # non_float: its type
    if len(table) and not (table["status"] == "ok").any():
        warnings.warn(
            f"analyze: none of the {len(table)} matrices could be analysed"
            f" ({status_counts(table)})",
            RuntimeWarning, stacklevel=2,
        )  # fmt: skip
    if keep_evals:
        empty = np.zeros(0, dtype=np.float64)
        table["evals"] = [e if isinstance(e, np.ndarray) else empty for e in table["evals"]]
    return table.astype({"N": "int64", "M": "int64", "num_evals": "int64", "n_tail": "int64"})


def analyze_methods(
    model: Any, methods: Mapping[str, Mapping[str, Any]], **common: Any
) -> dict[str, pd.DataFrame]:
    """Several analyses of one model, each matrix decomposed once: ``{name: analyze(model,
    **common, **methods[name])}``.

    ``methods`` maps a name to the :func:`analyze` keywords that differ between the analyses
    (``convention``, ``evals``, ...), ``common`` holds the others. The analyses run in the order
    given; a stack of matrices (one layer's, cut the same way) that an earlier one decomposed at
    the same dtype on the same device is not decomposed again. The ``paper`` and ``ww2020``
    conventions cut the same per-slice matrices, and ``evals="tsvd"`` takes their exact float64
    eigenvalues, so ``paper`` at ``dtype="float64"``, ``tsvd`` and ``ww2020``/``tsvd`` share one
    eigendecomposition per matrix. The tables are those of separate calls (tested), at about the
    cost of one; the eigenvalues are held until the last analysis ends (M float64 numbers per
    matrix).

    Example
    -------
    >>> import torch
    >>> tables = analyze_methods(
    ...     torch.nn.Linear(300, 200),
    ...     {"main": {"evals": "exact"}, "tsvd": {"evals": "tsvd"}},
    ...     convention="paper", dtype="float64",
    ... )
    >>> [(name, int(t.loc[0, "num_evals"])) for name, t in tables.items()]
    [('main', 200), ('tsvd', 199)]
    """
    token = _SHARED_EVALS.set({})
    try:
        return {name: analyze(model, **{**common, **dict(kw)}) for name, kw in methods.items()}
    finally:
        _SHARED_EVALS.reset(token)


def status_counts(table: pd.DataFrame) -> str:
    """How many rows have each status, most frequent first: ``"3 zero, 1 nonfinite"``."""
    return ", ".join(f"{n} {st}" for st, n in table["status"].value_counts().items())


def alpha_warnings(
    alpha: np.ndarray, status: Any, num_evals: Any = None, min_evals: int = 0
) -> list[str]:
    """The ``warning`` column: ``"over-trained"`` where a fitted α < 2 (a very heavy tail,
    possibly over-fitted), ``"under-trained"`` where α > 6 (a weakly correlated layer, possibly
    under-trained), ``""`` otherwise and for rows without a fit (status other than ``ok``);
    with ``num_evals`` given, a fitted row with fewer than ``min_evals`` eigenvalues adds
    ``"few eigenvalues (n < min_evals)"`` (joined by ``"; "``).

    The thresholds and words are WeightWatcher 0.7.7's (``OVER_TRAINED_THRESH = 2.0``,
    ``UNDER_TRAINED_THRESH = 6.0``), after Martin & Mahoney's heavy-tailed classes: α < 2 is
    beyond the very-heavy-tailed boundary, α > 6 is close to the random (Marchenko–Pastur) bulk.

    >>> alpha_warnings(np.array([1.5, 3.0, 7.0, np.nan]), ["ok", "ok", "ok", "too_small"])
    ['over-trained', '', 'under-trained', '']
    >>> alpha_warnings(np.array([1.5, 3.0]), ["ok", "ok"], [7, 60], min_evals=50)
    ['over-trained; few eigenvalues (7 < 50)', '']
    """
    alpha = np.asarray(alpha, dtype=float)
    counts = np.full(alpha.size, np.iinfo(np.int64).max) if num_evals is None else num_evals
    out = []
    for a, st, n in zip(alpha, status, np.asarray(counts, dtype=np.int64), strict=True):
        words = []
        if st == "ok" and np.isfinite(a):
            if a < ALPHA_OVER_TRAINED:
                words.append("over-trained")
            elif a > ALPHA_UNDER_TRAINED:
                words.append("under-trained")
            if n < min_evals:
                words.append(f"few eigenvalues ({n} < {min_evals})")
        out.append("; ".join(words))
    return out
