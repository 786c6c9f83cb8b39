"""Power-law fits of the tail of an empirical spectral density (Clauset, Shalizi & Newman 2009).

The tail ``x >= xmin`` of the eigenvalues is modelled as ``p(x) = (alpha - 1) / xmin *
(x / xmin) ** -alpha``; ``alpha`` is the maximum-likelihood estimate for each candidate
``xmin`` and ``xmin`` is the candidate that minimises the Kolmogorov-Smirnov distance ``D``
between the fitted and the empirical CDF of the tail. Three conventions are reproduced:

* :func:`fit_power_law` with ``xmax=None``: ``powerlaw.Fit(evals, parameter_ranges={'alpha':
  [1, 100]})`` of powerlaw 2.0.0.
* :func:`fit_power_law` with ``xmax=float``: ``powerlaw.Fit(evals, xmax=xmax)`` of powerlaw
  1.4.6 (the version the SDM 2020 paper used through WeightWatcher).
* :func:`fit_power_law_ww`: the default fit of ``WeightWatcher().analyze()`` 0.7.7 (its own
  ``WWFit``, not the ``powerlaw`` package).

Everything is vectorised over the candidate ``xmin`` values: the MLE from suffix sums of
``ln x``, the KS distance as a chunked (candidate x data point) matrix whose chunks stay under
:data:`CHUNK_ELEMENTS` float64 elements. All arithmetic is float64 (float32/float16 input is
upcast first); for a CUDA torch tensor the KS matrix is computed with torch on its device.
See ``docs/fit.md`` for the exact semantics and where the conventions differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CHUNK_ELEMENTS",
    "PowerLawFit",
    "fit_power_law",
    "fit_power_law_ww",
    "power_law_mle",
    "truncated_power_law_mle",
]

#: Largest number of float64 elements in one block of the KS-distance matrix
#: (2**21 elements = 16 MiB per temporary, a few temporaries per block => < 64 MiB).
CHUNK_ELEMENTS = 2**21

#: The KS search prunes candidates by grid bounds (see ``_ks_distances``) when the full
#: candidate x data matrix would hold more than this many elements.
PRUNE_MIN_ELEMENTS = 2**15

#: Slack (in KS-distance units, which lie in [0, 1]) for round-off in the pruning bounds.
PRUNE_TOL = 1e-12

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class PowerLawFit:
    """Result of a power-law tail fit.

    Attributes
    ----------
    alpha : float
        Exponent of ``p(x) ∝ x**-alpha`` on the tail (dimensionless); NaN when the fit failed.
    xmin : float
        Lower end of the tail, one of the eigenvalues (same units as the eigenvalues); NaN
        when no candidate was fitted.
    xmax : float or None
        Upper truncation of the fitted law (eigenvalue units); None for an untruncated fit.
    D : float
        Kolmogorov-Smirnov distance of the chosen fit (dimensionless, in [0, 1]).
    n_tail : int
        Number of eigenvalues in ``[xmin, xmax]`` that the MLE used (0 when not fitted).
    sigma : float
        Standard error as powerlaw/WeightWatcher report it, ``(alpha - 1) / sqrt(n_tail)``.
    n : int
        Number of eigenvalues that entered the fit (finite, positive, above the threshold).
    status : str
        ``"ok"``, or why the fit failed: ``"nonfinite"``, ``"too_few_evals"``,
        ``"all_equal"``, ``"no_candidates"``, ``"no_valid_xmin"``.
    """

    alpha: float
    xmin: float
    xmax: float | None
    D: float
    n_tail: int
    sigma: float
    n: int
    status: str

    @property
    def ok(self) -> bool:
        """True when ``status == "ok"``."""
        return self.status == "ok"


def _failed(status: str, n: int, xmax: float | None) -> PowerLawFit:
    nan = float("nan")
    return PowerLawFit(nan, nan, xmax, nan, 0, nan, n, status)


def _cuda_device(evals: Any) -> Any:
    """The device of a CUDA torch tensor, else None (without importing torch)."""
    device = getattr(evals, "device", None)
    return device if getattr(device, "type", None) == "cuda" else None


def _as_float64(evals: Any) -> FloatArray:
    """Return ``evals`` as a 1-D float64 numpy array (torch tensors are copied to the CPU)."""
    if hasattr(evals, "detach") and hasattr(evals, "cpu"):  # torch.Tensor, without importing torch
        import torch

        evals = evals.detach().to(dtype=torch.float64).cpu().numpy()
    x = np.asarray(evals, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"fit: eigenvalues must be a 1-D array, got shape {x.shape}")
    return x


def _prepare(evals: Any, threshold: float) -> tuple[FloatArray | None, str, int]:
    """Sorted finite values ``> threshold``; or None and a failure status."""
    x = _as_float64(evals)
    if not np.all(np.isfinite(x)):
        return None, "nonfinite", int(np.count_nonzero(x[np.isfinite(x)] > threshold))
    x = np.sort(x[x > threshold])
    if x.size < 3:
        return None, "too_few_evals", int(x.size)
    if x[0] == x[-1]:
        return None, "all_equal", int(x.size)
    return x, "ok", int(x.size)


def power_law_mle(sum_log_ratio: FloatArray, n_tail: FloatArray) -> FloatArray:
    """Closed-form continuous power-law MLE, ``alpha = 1 + n / sum(ln(x / xmin))``.

    Parameters
    ----------
    sum_log_ratio : array
        ``sum_i ln(x_i / xmin)`` over the tail (dimensionless, >= 0).
    n_tail : array
        Number of tail points ``n``.

    Returns
    -------
    alpha : array
        The exponent (dimensionless); ``inf`` where the sum is 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 + n_tail / sum_log_ratio


def _phi(z: FloatArray) -> FloatArray:
    """Mean of ``t / L`` for the truncated exponential, ``phi(z) = 1/z - 1/(exp(z) - 1)``."""
    small = np.abs(z) < 1e-4
    zs = np.where(small, 1.0, z)
    with np.errstate(over="ignore"):
        full = 1.0 / zs - 1.0 / np.expm1(zs)
    series = 0.5 - z / 12.0 + z**3 / 720.0
    return np.where(small, series, full)


def _dphi(z: FloatArray) -> FloatArray:
    """Derivative ``phi'(z) = -1/z**2 + 1 / (4 sinh(z/2)**2)``."""
    small = np.abs(z) < 1e-3
    zs = np.where(small, 1.0, z)
    with np.errstate(over="ignore"):
        full = -1.0 / zs**2 + 0.25 / np.sinh(0.5 * zs) ** 2
    series = -1.0 / 12.0 + z**2 / 240.0
    return np.where(small, series, full)


def truncated_power_law_mle(
    mean_log_ratio: FloatArray, log_range: FloatArray, *, iterations: int = 60
) -> FloatArray:
    """MLE of a power law truncated to ``[xmin, xmax]``.

    The log-likelihood of ``p(x) = (alpha - 1) x**-alpha / (xmin**(1-alpha) - xmax**(1-alpha))``
    on ``n`` points is, with ``t = ln(x / xmin)``, ``L = ln(xmax / xmin)``, ``r = xmax / xmin``::

        l(alpha) = n ln(alpha - 1) - alpha sum(t) - n ln(1 - r**(1 - alpha)) + const

    and its score equation is ``n/(alpha-1) - sum(t) - n L r**(1-alpha) / (1 - r**(1-alpha)) = 0``.
    With ``z = (alpha - 1) L`` it reads ``phi(z) = mean(t) / L`` where
    ``phi(z) = 1/z - 1/(exp(z) - 1)`` decreases strictly from 1 (z -> -inf) to 0 (z -> inf), so
    the root is unique for ``0 < mean(t) < L`` (alpha may be < 1). It is bracketed by
    ``[-1/(1-m), 1/m]`` (``m = mean(t)/L``) and found by safeguarded Newton steps.

    Parameters
    ----------
    mean_log_ratio : array
        ``mean(ln(x / xmin))`` over the tail (dimensionless).
    log_range : array
        ``ln(xmax / xmin)`` (> 0).
    iterations : int
        Newton/bisection steps (default 60; converges to machine precision in < 10 typically).

    Returns
    -------
    alpha : array
        The exponent; NaN where ``mean_log_ratio`` is not inside ``(0, log_range)``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        m = mean_log_ratio / log_range
    good = (m > 0) & (m < 1) & np.isfinite(m)
    m = np.where(good, m, 0.5)
    lo = -1.0 / (1.0 - m)
    hi = 1.0 / m
    z = np.clip(1.0 / m - 1.0, lo, hi)  # near the untruncated solution when m is small
    for _ in range(iterations):
        f = _phi(z) - m  # decreasing in z
        lo = np.where(f > 0, z, lo)
        hi = np.where(f <= 0, z, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = z - f / _dphi(z)
        inside = np.isfinite(step) & (step > lo) & (step < hi)
        z_new = np.where(inside, step, 0.5 * (lo + hi))
        if np.all(np.abs(z_new - z) <= 1e-15 * np.maximum(1.0, np.abs(z))):
            z = z_new
            break
        z = z_new
    alpha = 1.0 + z / log_range
    return np.where(good, alpha, np.nan)


def _tail_cdfs(
    log_bins: FloatArray,
    counts: FloatArray,
    cols: IntArray,
    c: IntArray,
    a1: FloatArray,
    n_tail: FloatArray,
    log_xmax: float | None,
    t: FloatArray,
    e: FloatArray,
) -> None:
    """Fill ``t`` with ``-T_c(b_k)`` and ``e`` with ``E_c(b_k)`` for rows ``c``, columns ``cols``.

    ``t`` and ``e`` are ``(len(c), len(cols))`` buffers. For ``k < c`` both are 0 (the log
    ratio and the count difference are clipped at 0), so along a row both CDFs are
    non-decreasing in ``k`` over *all* columns. Every element is computed by the same scalar
    operations whichever columns are asked for, so a subset of columns gives a subset of the
    values of the full row.
    """
    lx = log_bins[c][:, None]
    a1c = a1[:, None]
    np.subtract(log_bins[None, cols], lx, out=t)
    np.maximum(t, 0.0, out=t)
    np.multiply(t, a1c, out=t)
    with np.errstate(over="ignore", invalid="ignore"):
        np.expm1(t, out=t)  # -T * norm, T = 1 - (b/xmin)**(1-alpha)
        if log_xmax is not None:
            np.divide(t, -np.expm1((log_xmax - lx) * a1c), out=t)  # -T
    np.subtract(counts[None, cols], counts[c][:, None], out=e)
    np.maximum(e, 0.0, out=e)
    np.divide(e, n_tail[:, None], out=e)  # E


def _ks_rows(
    log_bins: FloatArray,
    counts: FloatArray,
    cand: IntArray,
    a1: FloatArray,
    n_tail: FloatArray,
    log_xmax: float | None,
    spacing: int,
) -> tuple[FloatArray, FloatArray]:
    """Lower and upper bounds of every candidate's KS distance from every ``spacing``-th column.

    On the grid ``g_0 < g_1 < … < g_last = n_bins - 1`` (multiples of ``spacing``, from the
    first candidate's column on) the maximum of ``|E - T|`` is a lower bound ``L_c`` of
    ``D_c``. Since ``E`` and ``T`` are both non-decreasing between grid points, every column
    ``g_j < k < g_{j+1}`` has ``|E_k - T_k| <= max(E_{j+1} - T_j, T_{j+1} - E_j)``, so the
    largest of these (and ``L_c``) is an upper bound ``U_c``. ``spacing=1`` gives the exact
    ``D_c`` as both bounds (there only columns ``k >= cand_c`` are formed).
    """
    n_cand, n_bins = cand.size, log_bins.size
    lower = np.empty(n_cand)
    upper = np.empty(n_cand)
    buf_t = np.empty(max(min(CHUNK_ELEMENTS, n_cand * n_bins), n_bins))  # >= one row
    buf_e = np.empty_like(buf_t)
    start = 0
    while start < n_cand:
        first_col = int(cand[start])
        if spacing == 1:
            cols = np.arange(first_col, n_bins)
        else:
            grid = np.arange(first_col - first_col % spacing, n_bins, spacing)
            cols = grid if grid[-1] == n_bins - 1 else np.append(grid, n_bins - 1)
        width = cols.size
        rows = max(1, min(n_cand - start, CHUNK_ELEMENTS // width))
        stop = start + rows
        t = buf_t[: rows * width].reshape(rows, width)
        e = buf_e[: rows * width].reshape(rows, width)
        _tail_cdfs(log_bins, counts, cols, cand[start:stop], a1[start:stop], n_tail[start:stop],
                   log_xmax, t, e)  # fmt: skip
        if spacing > 1 and width > 1:
            # E_{j+1} - T_j and T_{j+1} - E_j (t holds -T)
            gap = np.maximum(e[:, 1:] + t[:, :-1], -(t[:, 1:] + e[:, :-1])).max(axis=1)
        np.add(t, e, out=t)  # E - T
        np.abs(t, out=t)
        np.max(t, axis=1, out=lower[start:stop])
        if spacing > 1 and width > 1:
            np.maximum(gap, lower[start:stop], out=upper[start:stop])
        else:
            upper[start:stop] = lower[start:stop]
        start = stop
    return lower, upper


def _ks_distances(
    log_bins: FloatArray,
    counts_below: IntArray,
    cand: IntArray,
    alpha: FloatArray,
    n_tail: FloatArray,
    log_xmax: float | None,
    device: Any = None,
    *,
    prune: bool = True,
) -> FloatArray:
    """KS distance of every candidate: ``D_c = max_{k >= cand_c} |T_c(b_k) - E_c(b_k)|``.

    ``T_c(x) = (1 - (x/xmin_c)**(1-alpha_c)) / (1 - (xmax/xmin_c)**(1-alpha_c))`` (the
    denominator is 1 when ``log_xmax`` is None) and ``E_c(b_k) = (counts_below[k] -
    counts_below[cand_c]) / n_tail_c`` is the fraction of the tail strictly below ``b_k``.
    ``cand`` is ascending. Evaluated in row blocks of at most :data:`CHUNK_ELEMENTS` elements.

    ``prune`` (numpy path, when the full matrix would exceed :data:`PRUNE_MIN_ELEMENTS`):
    candidates are first bounded on a coarse column grid (:func:`_ks_rows`, spacing
    ``isqrt(n_bins)``, then 4× finer each round); a candidate whose lower bound exceeds the least
    bound by more than :data:`PRUNE_TOL` cannot be the minimiser and gets ``D = inf``. Only the
    survivors get the exact ``D``, by the same element-wise arithmetic as without pruning, so
    the argmin and its ``D`` are unchanged. ``device``: a CUDA ``torch.device`` to compute on
    (float64, no pruning).
    """
    if device is not None:
        return _ks_distances_torch(log_bins, counts_below, cand, alpha, n_tail, log_xmax, device)
    counts = counts_below.astype(np.float64)
    a1 = np.maximum(1.0 - alpha, -1e300)  # alpha = inf (equal values): T = 0 at 0, not NaN
    n_bins = log_bins.size
    alive = np.arange(cand.size)
    # the bounds need non-decreasing CDFs: T is one for alpha >= 1 or when truncated
    monotone = log_xmax is not None or bool(np.all(a1 <= 0.0))
    spacing = math.isqrt(n_bins) if prune and monotone else 1
    bound = math.inf
    while spacing > 1 and alive.size * (n_bins - float(cand[alive].mean())) > PRUNE_MIN_ELEMENTS:
        lower, upper = _ks_rows(
            log_bins, counts, cand[alive], a1[alive], n_tail[alive], log_xmax, spacing
        )
        # the exact D of the candidate with the smallest upper bound is a tighter bound
        pick = alive[[int(np.argmin(upper))]]
        exact = _ks_rows(log_bins, counts, cand[pick], a1[pick], n_tail[pick], log_xmax, 1)[0]
        bound = min(bound, float(upper.min()), float(exact[0]))
        alive = alive[lower <= bound + PRUNE_TOL]
        spacing //= 4
    out = np.full(cand.size, np.inf)
    out[alive] = _ks_rows(log_bins, counts, cand[alive], a1[alive], n_tail[alive], log_xmax, 1)[0]
    return out


def _ks_distances_torch(
    log_bins: FloatArray,
    counts_below: IntArray,
    cand: IntArray,
    alpha: FloatArray,
    n_tail: FloatArray,
    log_xmax: float | None,
    device: Any,
) -> FloatArray:
    """:func:`_ks_distances` computed with torch (float64) on ``device``, same blocks."""
    import torch

    def put(a: np.ndarray) -> Any:
        return torch.as_tensor(np.ascontiguousarray(a), device=device)

    lb = put(log_bins)
    counts = put(counts_below.astype(np.float64))
    cand_t = put(cand)
    a1_all = put(np.maximum(1.0 - alpha, -1e300))
    nt_all = put(n_tail)
    n_cand, n_bins = cand.size, log_bins.size
    out = torch.empty(n_cand, dtype=torch.float64, device=device)
    start = 0
    while start < n_cand:
        first_col = int(cand[start])
        width = n_bins - first_col
        rows = max(1, min(n_cand - start, CHUNK_ELEMENTS // max(width, 1)))
        stop = start + rows
        c = cand_t[start:stop]
        a1 = a1_all[start:stop, None]
        lx = lb[c][:, None]
        t = (lb[None, first_col:] - lx).clamp_(min=0.0).mul_(a1).expm1_()
        if log_xmax is not None:
            t.div_(-torch.expm1((log_xmax - lx) * a1))
        e = (counts[None, first_col:] - counts[c][:, None]).clamp_(min=0.0)
        e.div_(nt_all[start:stop, None])
        out[start:stop] = t.add_(e).abs_().amax(dim=1)
        start = stop
    return out.cpu().numpy()


def fit_power_law(
    evals: Any,
    *,
    xmax: float | None = None,
    min_tail: int = 2,
    alpha_range: tuple[float, float] = (1.0, 100.0),
    truncated_mle: bool = False,
) -> PowerLawFit:
    """Fit ``p(x) ∝ x**-alpha`` to the tail ``x >= xmin`` of eigenvalues (Clauset et al. 2009).

    ``evals`` (numpy or torch, 1-D; upcast to float64; the KS matrix of a CUDA tensor is
    computed on its device, everything else on the CPU) are
    filtered to finite values ``> 0`` (powerlaw drops non-positive values only when an exact
    0 is present; here always). Candidate ``xmin`` are distinct eigenvalues; for each,
    ``alpha`` is the MLE on the tail and ``D = max_k |T(b_k) - E(b_k)|`` over the distinct tail
    values ``b_k``, with the fitted CDF ``T`` and the empirical CDF ``E(b_k)`` = fraction of
    tail points strictly below ``b_k`` (powerlaw's ``cdf()``; ties count once, at their
    lowest rank). The chosen ``xmin`` is the first candidate of minimal ``D`` among valid ones.

    Parameters
    ----------
    evals : array-like or torch.Tensor
        Eigenvalues ``lambda_i`` of ``W^T W`` (squared singular values), any order.
    xmax : float or None, default None
        ``None``: untruncated fit, reproduces ``powerlaw.Fit(evals, parameter_ranges={'alpha':
        [1, 100]})`` of powerlaw 2.0.0: candidates are the distinct values except the two
        largest (powerlaw 2.0 excludes ``max`` from its xmin range *and* then drops the last
        unique value), ``alpha = 1 + n/sum(ln(x/xmin))``, ``T(x) = 1 - (x/xmin)**(1-alpha)``,
        and a candidate is valid when ``alpha_range[0] < alpha < alpha_range[1]`` and, for
        ``alpha`` outside ``(1.5, 3]`` (where powerlaw refits numerically), not within 0.01 of
        a bound (powerlaw flags such fits as noise).
        ``float``: data restricted to ``x <= xmax``; reproduces ``powerlaw.Fit(evals,
        xmax=xmax)`` of powerlaw 1.4.6: candidates are the distinct values except the largest,
        ``alpha`` as above (1.4.6's likelihood uses the *untruncated* normaliser, so its
        numerical fit returns the closed form), ``T(x) = (1 - (x/xmin)**(1-alpha)) / (1 -
        (xmax/xmin)**(1-alpha))``, valid when ``alpha > 1``.
    min_tail : int, default 2
        Candidates whose tail holds fewer than ``min_tail`` points are dropped. The default
        is the smallest tail either reference ever considers (1.4.6: 2, 2.0: 3 through its
        candidate rule), so the default reproduces powerlaw exactly; raise it (e.g. to 10)
        to keep the KS-minimisation away from a handful of outliers.
    alpha_range : (float, float), default (1, 100)
        Range of valid ``alpha`` for the untruncated fit (powerlaw 2.0's ``parameter_ranges``;
        powerlaw 2.0's own default ``[0, 3]`` rejects every ``alpha > 2.99``). Ignored when
        ``xmax`` is given (1.4.6 accepts any ``alpha > 1``).
    truncated_mle : bool, default False
        Only with ``xmax``: use the true MLE of the power law truncated to ``[xmin, xmax]``
        (root of its score equation, see :func:`truncated_power_law_mle`) instead of
        powerlaw 1.4.6's untruncated closed form. Candidates then are valid when ``alpha > 1``.

    Returns
    -------
    PowerLawFit
        ``status == "ok"`` or a reason (``"nonfinite"``, ``"too_few_evals"`` (< 3 positive
        values), ``"all_equal"``, ``"no_candidates"``, ``"no_valid_xmin"``) with NaN alpha.
    """
    if min_tail < 1:
        raise ValueError(f"fit_power_law: min_tail must be >= 1, got {min_tail}")
    if xmax is not None:
        xmax = float(xmax)
        if not math.isfinite(xmax) or xmax <= 0:
            raise ValueError(f"fit_power_law: xmax must be a finite positive number, got {xmax}")
    device = _cuda_device(evals)
    x, status, n = _prepare(evals, 0.0)
    if x is None:
        return _failed(status, n, xmax)
    if xmax is not None:
        x = x[x <= xmax]
        if x.size < 2:
            return _failed("too_few_evals", n, xmax)

    uniq, first = np.unique(x, return_index=True)  # first: # of points strictly below uniq[k]
    n_cand = uniq.size - 1 if xmax is not None else uniq.size - 2
    if xmax is None and n_cand < 2:
        return _failed("no_candidates", n, xmax)  # powerlaw 2.0: "Less than 2 unique values"
    cand = np.arange(max(n_cand, 0), dtype=np.int64)
    n_tail_all = (x.size - first[cand]).astype(np.float64)
    cand = cand[n_tail_all >= min_tail]
    if cand.size == 0:
        return _failed("no_candidates", n, xmax)
    n_tail = (x.size - first[cand]).astype(np.float64)

    log_x = np.log(x)
    suffix = np.concatenate([np.cumsum(log_x[::-1])[::-1], [0.0]])  # suffix[i] = sum log_x[i:]
    log_u = np.log(uniq)
    sum_log_ratio = suffix[first[cand]] - n_tail * log_u[cand]
    if xmax is not None and truncated_mle:
        log_range = math.log(xmax) - log_u[cand]
        alpha = truncated_power_law_mle(sum_log_ratio / n_tail, log_range)
    else:
        alpha = power_law_mle(sum_log_ratio, n_tail)

    if xmax is None:
        lo, hi = alpha_range
        # powerlaw 2.0 refits numerically outside (1.5, 3] and there flags alphas within 0.01
        # of a bound as noise; inside (1.5, 3] it keeps the closed form and checks the range only
        numerical = ~((alpha > 1.5) & (alpha <= 3.0))
        near_bound = numerical & ((alpha - 0.01 < lo) | (alpha + 0.01 > hi))
        valid = (alpha > lo) & (alpha < hi) & ~near_bound
    else:
        valid = alpha > 1.0
    valid &= np.isfinite(alpha)
    if not np.any(valid):
        return _failed("no_valid_xmin", n, xmax)

    cand_v = cand[valid]
    alpha_v = alpha[valid]
    n_tail_v = n_tail[valid]
    log_xmax = None if xmax is None else math.log(xmax)
    D = _ks_distances(log_u, first.astype(np.int64), cand_v, alpha_v, n_tail_v, log_xmax, device)
    best = int(np.argmin(D))
    a = float(alpha_v[best])
    nt = int(n_tail_v[best])
    return PowerLawFit(
        alpha=a,
        xmin=float(uniq[cand_v[best]]),
        xmax=xmax,
        D=float(D[best]),
        n_tail=nt,
        sigma=(a - 1.0) / math.sqrt(nt),
        n=n,
        status="ok",
    )


def fit_power_law_ww(
    evals: Any,
    *,
    evals_thresh: float = 1e-5,
    small_n_cutoff: int = 20,
    small_n_k_min: int = 8,
) -> PowerLawFit:
    """The power-law fit of ``WeightWatcher().analyze()`` 0.7.7 with its defaults.

    WeightWatcher's ``fit_powerlaw`` keeps ``evals > evals_thresh`` and calls its own
    ``WWFit`` (``pl_package='ww'``, ``xmax=None``, ``fix_fingers=False``). ``WWFit`` sorts the
    ``N`` values and tries *every* value but the last as ``xmin`` (duplicates included, each
    with the tail ``x[i:]`` from its own position):

    * ``N >= small_n_cutoff``: ``alpha_i = 1 + n_i / sum_{j>=i} ln(x_j / x_i)``, ``n_i = N - i``,
      ``D_i = max_{j>=i} |1 - (x_j/x_i)**(1-alpha_i) - (j - i)/n_i|`` (``D_i = 1`` if
      ``alpha_i <= 1``), ``xmin`` = first argmin of ``D``.
    * ``N < small_n_cutoff`` ("SMALL N PL FIT"): only tails with ``n_i >= small_n_k_min`` and
      ``s_i = sum ln(x_j/x_i) > 1e-12``; bias-corrected ``alpha_i = 1 + (n_i - 1)/s_i``;
      ``D_i`` as above (``D_i = 1`` for the others); ``xmin`` = first argmin of ``D``. (WWFit's
      small-N routine picks the argmin of ``J_i = D_i - 0.868/sqrt(n_i)``, but
      ``WWFit.__init__`` then overwrites that choice with ``argmin(D)``, so ``J`` has no
      effect in 0.7.7.) If no candidate qualifies, the whole sample is the tail (``i = 0``).

    Parameters
    ----------
    evals : array-like or torch.Tensor
        Eigenvalues of ``W^T W``, any order (float64 internally).
    evals_thresh : float, default 1e-5
        WeightWatcher's ``EVALS_THRESH``: eigenvalues ``<= evals_thresh`` are dropped (absolute,
        in eigenvalue units).
    small_n_cutoff : int, default 20
        WeightWatcher's ``SMALL_N_CUTOFF``.
    small_n_k_min : int, default 8
        Smallest tail in the small-N fit (``k_min`` of ``WWFit.fit_powerlaw_smallN``).

    Returns
    -------
    PowerLawFit
        ``xmax`` is None (untruncated); ``sigma = (alpha - 1)/sqrt(n_tail)`` (WWFit's small-N
        fallback reports ``-1/sqrt(N)`` there, a bug we do not copy). A CUDA tensor input runs
        the KS matrix on its device.
    """
    device = _cuda_device(evals)
    x, status, n = _prepare(evals, evals_thresh)
    if x is None:
        return _failed(status, n, None)
    N = x.size
    log_x = np.log(x)
    suffix = np.cumsum(log_x[::-1])[::-1]
    idx = np.arange(N - 1, dtype=np.int64)
    n_tail = (N - idx).astype(np.float64)
    s = suffix[idx] - n_tail * log_x[idx]
    s[x[idx] == x[-1]] = 0.0  # tails of equal values: exactly 0, so alpha = inf as in WWFit
    counts = np.arange(N, dtype=np.int64)

    if N >= small_n_cutoff:
        alpha = power_law_mle(s, n_tail)
        use = alpha > 1.0
    else:  # WWFit.fit_powerlaw_smallN: bias-corrected MLE on tails of >= k_min points
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = 1.0 + (n_tail - 1.0) / s
        use = (n_tail >= small_n_k_min) & (s > 1e-12) & (alpha > 1.0)
        if not np.any(use):  # its fallback: the whole sample is the tail
            if not s[0] > 1e-12:
                return _failed("all_equal", n, None)
            use[0] = bool(alpha[0] > 1.0)
    D = np.ones(N - 1)  # WWFit's initial value for skipped candidates
    if np.any(use):
        D[use] = _ks_distances(log_x, counts, idx[use], alpha[use], n_tail[use], None, device)
    best = int(np.argmin(D))  # WWFit.__init__ picks argmin(D) in both branches (J is unused)
    a = float(alpha[best])
    nt = int(n_tail[best])
    if not a > 1.0:
        return _failed("no_valid_xmin", n, None)
    return PowerLawFit(
        a, float(x[best]), None, float(D[best]), nt, (a - 1) / math.sqrt(nt), n, "ok"
    )
