"""Marchenko-Pastur (MP) fit of an empirical spectral density, as WeightWatcher 0.7.7 does it.

For an ``N × M`` matrix (N ≥ M, ``Q = N/M``) with i.i.d. entries of variance σ²/N... the
eigenvalues of ``WᵀW`` (scaled so that their mean is 1) follow the MP law

    ρ(λ) = Q / (2π σ² λ) · √((λ₊ − λ)(λ − λ₋)),   λ± = σ² (1 ± 1/√Q)²

(Marchenko & Pastur 1967; Martin & Mahoney, JMLR 22 (2021) 165, eq. 7). For a square matrix
(Q = 1) the singular values ν = √λ follow the quarter circle ρ(ν) = √(4 − ν²)/(π σ²).
:func:`mp_fit` reproduces ``WeightWatcher.mp_fit`` (``weightwatcher.py:4739``), which fits σ
by brute force: ``RMT_Util.fit_density_with_range`` scans σ over ``[0.05 s, 2 s)`` in steps of
``0.01 s`` (``s = √(λmax) / (1 + 1/√Q)``, :func:`mp_sigma_from_max`) and polishes the best
point with Nelder-Mead (``scipy.optimize.brute``'s default ``finish``), minimising the squared
residual between the MP density and a linear-kernel density estimate of the ESD (bandwidth
0.1, on 1000 points of ``[0, λmax + 0.5]``, ``RMT_Util.resid_mp``). Eigenvalues above the
bulk edge plus the Tracy-Widom width are *spikes*.

WeightWatcher evaluates the kernel density estimate anew for each σ; it does not depend on σ,
so it is computed once here (same numbers, ~200× fewer evaluations).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["MPFit", "mp_density", "mp_edges", "mp_fit", "mp_sigma_from_max", "quarter_circle"]

#: WeightWatcher's kernel bandwidth and density floor (``resid_mp``'s ``THRESH``).
KDE_BANDWIDTH = 0.1
DENSITY_FLOOR = 0.01


@dataclass(frozen=True)
class MPFit:
    """Result of :func:`mp_fit`; the field names are WeightWatcher's columns.

    Attributes
    ----------
    num_spikes : int
        Eigenvalues above ``λ₊ + √TW`` (rescaled units), ``TW = λ₊^{2/3} M^{-2/3} / √Q``.
    sigma_mp : float
        Fitted σ of the MP law (in the rescaled units: mean eigenvalue 1).
    mp_softrank : float
        ``λ₊ / λmax`` (dimensionless; 1 for a random matrix, → 0 for a strong spike).
    bulk_min, bulk_max : float
        The MP edges λ₋, λ₊ in the original eigenvalue units (squared weight units).
    W_scale : float
        ``√(n / Σλ)``: the factor WW multiplies W by so that the mean eigenvalue is 1.
    """

    num_spikes: int
    sigma_mp: float
    mp_softrank: float
    bulk_min: float
    bulk_max: float
    W_scale: float


def mp_edges(Q: float, sigma: float) -> tuple[float, float]:
    """The MP bulk edges ``(λ₋, λ₊) = σ² (1 ∓ 1/√Q)²`` for aspect ratio ``Q = N/M``.

    >>> mp_edges(4.0, 1.0)
    (0.25, 2.25)
    """
    r = 1.0 / np.sqrt(Q)
    return float((sigma * (1 - r)) ** 2), float((sigma * (1 + r)) ** 2)


def mp_sigma_from_max(Q: float, lambda_max: float) -> float:
    """σ for which ``λ₊ = lambda_max``: ``√λmax / (1 + 1/√Q)`` (``RMT_Util.calc_sigma``).

    >>> round(mp_sigma_from_max(4.0, 2.25), 12)
    1.0
    """
    return float(np.sqrt(lambda_max / (1 + 1 / np.sqrt(Q)) ** 2))


def mp_density(x: np.ndarray, Q: float, sigma: float) -> np.ndarray:
    """MP density ``Q/(2π σ² x) √((λ₊ − x)(x − λ₋))``, 0 outside the bulk (1/eigenvalue units).

    >>> float(mp_density(np.array([1.0]), 4.0, 1.0)[0].round(4))
    0.6164
    """
    lo, hi = mp_edges(Q, sigma)
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = Q / (2 * np.pi * sigma * sigma * x) * np.sqrt((hi - x) * (x - lo))
    return np.nan_to_num(val)


def quarter_circle(x: np.ndarray, sigma: float) -> np.ndarray:
    """Quarter-circle density of singular values ``√(4 − x²) / (π σ²)`` (0 outside [0, 2]).

    WeightWatcher's ``quarter_circle_fun`` keeps the 4 whatever σ (its support does not scale
    with σ); reproduced as is.

    >>> float(quarter_circle(np.array([0.0]), 1.0)[0].round(4))
    0.6366
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(np.sqrt(4 - x**2) / (np.pi * sigma * sigma))


def _kde(values: np.ndarray, bw: float) -> tuple[np.ndarray, np.ndarray]:
    """WW's linear-kernel density estimate on 1000 points of ``[0, max + 0.5]``, floored."""
    from sklearn.neighbors import KernelDensity

    kde = KernelDensity(kernel="linear", bandwidth=bw).fit(values.reshape(-1, 1))
    xde = np.linspace(0, np.max(values) + 0.5, 1000)
    yde = np.exp(kde.score_samples(xde[:, None]))
    return xde, yde


def _residual(
    sigma: np.ndarray, xde: np.ndarray, yde: np.ndarray, Q: float, peak: float, top: float
) -> float:
    """``RMT_Util.resid_mp(allresid=False)``: Σ (ρ_MP − ρ_KDE)² over the points with density
    above the floor; 1000 per point when the MP edges are implausible (λ₊ below the KDE's
    peak ``peak`` or beyond its last point ``top``, λ₋ above the peak)."""
    s = float(np.asarray(sigma).ravel()[0])
    if Q == 1:
        resid = quarter_circle(xde, s) - yde
    else:
        lo, hi = mp_edges(Q, s)
        if (hi < peak) | (hi > top) | (lo > peak):
            resid = np.zeros(len(yde)) + 1000
        else:
            resid = mp_density(xde, Q, s) - yde
    return float(np.sum(resid**2))  # the floored points add zeros


def mp_fit(evals: np.ndarray, N: int, M: int, *, bw: float = KDE_BANDWIDTH) -> MPFit:
    """Fit the MP law to the eigenvalues of an ``N × M`` matrix (or a pooled layer).

    Parameters
    ----------
    evals : array
        Eigenvalues of ``WᵀW`` (squared weight units), any order; all of them (a pooled conv
        layer's together).
    N, M : int
        The layer's dimensions as WeightWatcher sets them (``Q = N/M``; M enters the
        Tracy-Widom width).
    bw : float
        Bandwidth of the linear-kernel density estimate, in rescaled units.

    Returns
    -------
    MPFit

    References
    ----------
    Martin & Mahoney, "Implicit self-regularization in deep neural networks", JMLR 22 (2021);
    WeightWatcher 0.7.7 ``mp_fit`` (weightwatcher.py:4739) and ``fit_density_with_range``
    (RMT_Util.py:848).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(400, 100)) / np.sqrt(400)
    >>> fit = mp_fit(np.linalg.eigvalsh(W.T @ W), 400, 100)
    >>> fit.num_spikes, bool(0.9 < fit.sigma_mp < 1.1)
    (0, True)
    """
    ev = np.sort(np.asarray(evals, dtype=float))
    Q = N / M
    w_scale = float(np.sqrt(ev.size) / np.sqrt(np.sum(ev)))
    scaled = w_scale * w_scale * ev
    lambda_max = float(np.max(scaled))
    s0 = mp_sigma_from_max(Q, lambda_max)
    to_fit = np.sqrt(scaled) if Q == 1 else scaled
    xde, yde = _kde(to_fit, bw)
    good = yde > DENSITY_FLOOR
    xde, yde = xde[good], yde[good]
    peak, top = float(xde[np.where(yde == np.max(yde))][0]), float(np.max(xde))
    grid = (slice(0.05 * s0, 2.0 * s0, 0.01 * s0),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sigma = float(optimize.brute(_residual, grid, args=(xde, yde, Q, peak, top))[0])
    lo, hi = mp_edges(Q, sigma)
    tw = 1 / np.sqrt(Q) * np.power(hi, 2 / 3) * np.power(M, -2 / 3)
    num_spikes = int(np.count_nonzero(scaled > hi + np.sqrt(tw)))
    return MPFit(
        num_spikes=num_spikes,
        sigma_mp=sigma,
        mp_softrank=float(hi / lambda_max),
        bulk_min=float(lo / w_scale**2),
        bulk_max=float(hi / w_scale**2),
        W_scale=w_scale,
    )
