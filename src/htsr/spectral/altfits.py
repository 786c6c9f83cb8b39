"""Alternatives to the power law for the tail of an ESD, and likelihood-ratio tests between
them (Clauset, Shalizi & Newman, "Power-law distributions in empirical data", SIAM Review 51
(2009) 661, sections 3.3 and 5).

On the tail ``x ≥ xmin`` (eigenvalues, squared weight units) the candidate densities are

* power law ``p(x) = (α−1)/xmin · (x/xmin)^{−α}``;
* exponential ``p(x) = λ e^{−λ(x − xmin)}`` (MLE ``λ = 1/(mean x − xmin)``);
* lognormal ``p(x) = φ((ln x − μ)/σ) / (x σ (1 − Φ((ln xmin − μ)/σ)))`` (MLE numerical);
* truncated power law (TPL) ``p(x) = x^{−α} e^{−Λx} / ∫_{xmin}^∞ t^{−α} e^{−Λt} dt``
  (MLE of α and Λ numerical; Λ in 1/eigenvalue units, WeightWatcher's ``Lambda``).

:func:`loglikelihood_ratio` is Vuong's test as the ``powerlaw`` package computes it
(``powerlaw.loglikelihood_ratio``): ``R = Σ (ℓ₁ − ℓ₂)`` (> 0 favours the first law) and
``p = erfc(|R| / √(2 n σ²))``, σ² the variance of ``ℓ₁ − ℓ₂``; a small p means the sign of R
is significant. :func:`compare_power_law` runs it for the power law against the lognormal and
the exponential, as ``Fit.distribution_compare('power_law', 'lognormal')`` does.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize, special

__all__ = ["COMPARE_COLUMNS", "LikelihoodRatio", "TruncatedPowerLawFit", "compare_power_law",
           "exponential_loglikelihoods", "fit_lognormal", "fit_truncated_power_law",
           "loglikelihood_ratio", "lognormal_loglikelihoods", "power_law_loglikelihoods",
           "truncated_power_law_loglikelihoods"]  # fmt: skip

#: Columns :func:`compare_power_law` adds to an ``analyze`` row.
COMPARE_COLUMNS = ("R_lognormal", "p_lognormal", "R_exponential", "p_exponential")


@dataclass(frozen=True)
class LikelihoodRatio:
    """Vuong's test: ``R`` (log-likelihood ratio, nats; > 0 favours the first law) and its
    two-sided ``p`` value."""

    R: float
    p: float


def loglikelihood_ratio(l1: np.ndarray, l2: np.ndarray) -> LikelihoodRatio:
    """``R = Σ(ℓ₁ − ℓ₂)``, ``p = erfc(|R| / √(2nσ²))`` (Clauset et al. 2009, eq. 5.4).

    Pointwise log-likelihoods of ``-inf`` are replaced by ``ln(1e-307)`` as powerlaw does.

    >>> r = loglikelihood_ratio(np.array([0.0, -1.0, -2.0]), np.array([-1.0, -1.0, -3.0]))
    >>> r.R, round(r.p, 4)
    (2.0, 0.0143)
    """
    floor = math.log(10.0**-307)
    a = np.where(np.isneginf(l1), floor, np.asarray(l1, dtype=float))
    b = np.where(np.isneginf(l2), floor, np.asarray(l2, dtype=float))
    n = a.size
    if n == 0:
        return LikelihoodRatio(0.0, 1.0)
    d = a - b
    R = float(np.sum(d))
    var = float(np.sum((d - d.mean()) ** 2) / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = float(special.erfc(abs(R) / math.sqrt(2 * n * var))) if var > 0 else float("nan")
    return LikelihoodRatio(R, p)


def power_law_loglikelihoods(x: np.ndarray, xmin: float, alpha: float) -> np.ndarray:
    """``ln((α−1)/xmin) − α ln(x/xmin)`` for each tail value (nats)."""
    x = np.asarray(x, dtype=float)
    return np.log((alpha - 1) / xmin) - alpha * np.log(x / xmin)


def exponential_loglikelihoods(x: np.ndarray, xmin: float) -> tuple[np.ndarray, float]:
    """Pointwise log-likelihoods of the MLE exponential on ``[xmin, ∞)``, and its rate
    ``λ = 1 / (mean x − xmin)`` (1/eigenvalue units)."""
    x = np.asarray(x, dtype=float)
    rate = 1.0 / (np.mean(x) - xmin)
    return np.log(rate) - rate * (x - xmin), float(rate)


def lognormal_loglikelihoods(x: np.ndarray, xmin: float, mu: float, sigma: float) -> np.ndarray:
    """Pointwise log-likelihoods of the lognormal (μ, σ of ln x) truncated to ``[xmin, ∞)``."""
    lx = np.log(np.asarray(x, dtype=float))
    z = (lx - mu) / sigma
    log_sf = special.log_ndtr(-(math.log(xmin) - mu) / sigma)
    return -0.5 * z * z - math.log(sigma * math.sqrt(2 * math.pi)) - lx - log_sf


def fit_lognormal(x: np.ndarray, xmin: float) -> tuple[float, float]:
    """MLE ``(μ, σ)`` of the lognormal truncated to ``[xmin, ∞)`` (Nelder-Mead on −ℓ from the
    mean and standard deviation of ln x; σ kept positive through ln σ)."""
    lx = np.log(np.asarray(x, dtype=float))

    lx2, n = float(np.sum(lx * lx)), lx.size
    slx, lxmin = float(np.sum(lx)), math.log(xmin)

    def nll(p: np.ndarray) -> float:  # Σ over the data in closed form: O(1) per evaluation
        mu, sigma = float(p[0]), math.exp(float(p[1]))
        sq = (lx2 - 2 * mu * slx + n * mu * mu) / (sigma * sigma)
        v = 0.5 * sq + n * math.log(sigma * math.sqrt(2 * math.pi)) + slx
        v += n * float(special.log_ndtr(-(lxmin - mu) / sigma))
        return v if math.isfinite(v) else 1e300

    start = np.array([lx.mean(), math.log(max(lx.std(), 1e-3))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        opts = {"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000}
        res = optimize.minimize(nll, start, method="Nelder-Mead", options=opts)
    return float(res.x[0]), float(math.exp(res.x[1]))


def compare_power_law(x: np.ndarray, xmin: float, alpha: float) -> dict[str, float]:
    """Vuong's test of the power law (α, xmin) against the lognormal and the exponential,
    each fitted by maximum likelihood on the same tail ``x ≥ xmin``.

    Returns ``{"R_lognormal", "p_lognormal", "R_exponential", "p_exponential"}``; R > 0
    favours the power law.

    >>> x = (1.0 - np.random.default_rng(0).random(2000)) ** (-1 / 1.5)   # Pareto, α = 2.5
    >>> c = compare_power_law(x, 1.0, 2.5)
    >>> c["R_exponential"] > 0 and c["p_exponential"] < 0.01
    True
    """
    x = np.asarray(x, dtype=float)
    x = x[x >= xmin]
    pl = power_law_loglikelihoods(x, xmin, alpha)
    ln = lognormal_loglikelihoods(x, xmin, *fit_lognormal(x, xmin))
    ex, _ = exponential_loglikelihoods(x, xmin)
    r_ln, r_ex = loglikelihood_ratio(pl, ln), loglikelihood_ratio(pl, ex)
    return {"R_lognormal": r_ln.R, "p_lognormal": r_ln.p,
            "R_exponential": r_ex.R, "p_exponential": r_ex.p}  # fmt: skip


def _tpl_log_norm(alpha: float, lam: float, xmin: float) -> float:
    """``ln ∫_{xmin}^∞ t^{−α} e^{−Λt} dt``, as ``ln xmin^{1−α} + ln ∫_1^∞ u^{−α} e^{−Λ xmin (u−1)}
    du − Λ xmin`` (the integrand scaled to 1 at u = 1)."""
    z = lam * xmin
    val, _ = integrate.quad(lambda u: u**-alpha * math.exp(-z * (u - 1.0)), 1.0, np.inf,
                            epsabs=0.0, epsrel=1e-12, limit=200)  # fmt: skip
    return (1 - alpha) * math.log(xmin) + math.log(val) - z


def truncated_power_law_loglikelihoods(
    x: np.ndarray, xmin: float, alpha: float, Lambda: float
) -> np.ndarray:
    """Pointwise log-likelihoods ``−α ln x − Λx − ln C(α, Λ)`` of the TPL on ``[xmin, ∞)``."""
    x = np.asarray(x, dtype=float)
    return -alpha * np.log(x) - Lambda * x - _tpl_log_norm(alpha, Lambda, xmin)


@dataclass(frozen=True)
class TruncatedPowerLawFit:
    """MLE of the TPL on a tail: ``alpha`` (dimensionless), ``Lambda`` (1/eigenvalue units),
    ``xmin``, ``n_tail`` and the maximised ``loglikelihood`` (nats)."""

    alpha: float
    Lambda: float
    xmin: float
    n_tail: int
    loglikelihood: float


def fit_truncated_power_law(
    x: np.ndarray, xmin: float, *, alpha0: float | None = None
) -> TruncatedPowerLawFit:
    """Maximum-likelihood TPL ``x^{−α} e^{−Λx}`` on ``x ≥ xmin`` (α any real, Λ > 0).

    −ℓ is minimised over ``(α, ln Λ)`` by Nelder-Mead from ``alpha0`` (default: the power-law
    MLE) and ``Λ = 0.1 / mean(x − xmin)``. The normaliser is integrated numerically
    (``scipy.integrate.quad``), so any α (also ≤ 1) is allowed.

    >>> rng = np.random.default_rng(0)
    >>> x = (1.0 - rng.random(4000)) ** (-1 / 1.5)      # a pure power law: Λ → 0
    >>> fit = fit_truncated_power_law(x, 1.0)
    >>> bool(abs(fit.alpha - 2.5) < 0.1), fit.Lambda < 1e-2
    (True, True)
    """
    x = np.asarray(x, dtype=float)
    x = x[x >= xmin]
    n = x.size
    sum_log, sum_x = float(np.sum(np.log(x))), float(np.sum(x))
    if alpha0 is None:
        alpha0 = 1.0 + n / float(np.sum(np.log(x / xmin)))

    def nll(p: np.ndarray) -> float:
        a, lam = float(p[0]), math.exp(float(p[1]))
        try:
            v = a * sum_log + lam * sum_x + n * _tpl_log_norm(a, lam, xmin)
        except (ValueError, OverflowError, ZeroDivisionError):
            return 1e300
        return v if math.isfinite(v) else 1e300

    start = np.array([alpha0, math.log(0.1 / max(float(np.mean(x - xmin)), 1e-300))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = {"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000}
        res = optimize.minimize(nll, start, method="Nelder-Mead", options=opts)
    return TruncatedPowerLawFit(
        float(res.x[0]), float(math.exp(res.x[1])), float(xmin), int(n), float(-res.fun)
    )
