"""Finger fixes: power-law fits that ignore spurious tails (WeightWatcher 0.7.7's
``analyze(fix_fingers=...)``).

A *finger* is a handful of outlying top eigenvalues that a power-law fit latches onto, giving a
spuriously large α (a finite-size effect). WeightWatcher offers two remedies:

``xmin_peak`` (:func:`fit_xmin_peak`)
    search xmin only near the peak of the log-ESD: the left edge ``p`` of the fullest of 100
    bins of ``log10 λ``, candidates in ``[0.95 p, 1.5 p)`` (``xmin_max`` replaces ``1.5 p``),
    fitted as ``powerlaw.Fit(λ, xmin=range)`` of powerlaw 2.0.0
    (:func:`htsr.spectral.fit.fit_power_law` with ``xmin_range`` and powerlaw's default
    ``alpha`` range ``[0, 3]``).
``clip_xmax`` (:func:`fit_clip_xmax`)
    refit WW's power law (:func:`htsr.spectral.fit.fit_power_law_ww`) with the top 2, 3, ...
    eigenvalues removed; the first clip whose α is smaller than the unclipped α by more than
    ``finger_thresh`` (1.0) wins; stop when α ≤ 2 or after ``max_fingers - 1`` clips.
    ``num_fingers`` is the number removed minus one and ``raw_alpha`` the unclipped α, as
    WW reports them.

Differences from WeightWatcher 0.7.7 (``weightwatcher.py``, ``RMT_Util.py``):

* ``xmin_peak`` with WW's default ``pl_package='ww'`` always fails there: ``WWFit`` cannot take
  an xmin range (``WW_powerlaw.py:41`` subtracts the tuple from the data), so every layer gets
  ``alpha = -1``; only ``pl_package='powerlaw'`` runs it. That path passes the lower bound as
  ``log10(0.95 p)`` (``weightwatcher.py:4264``: a log next to a linear upper bound) so the
  range starts far below the peak. ``fit_xmin_peak(ww_range=True)`` reproduces that range
  (used under ``convention="ww"``); the default uses ``0.95 p`` as the method describes.
* ``clip_xmax``: WW resets any ``max_fingers`` below half the number of eigenvalues to 10
  (``weightwatcher.py:4280``); here ``max_fingers`` is used as given (default 10, the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from htsr.spectral.fit import PowerLawFit, fit_power_law, fit_power_law_ww

__all__ = ["ClippedFit", "fit_clip_xmax", "fit_xmin_peak", "log_esd_peak"]

#: WeightWatcher's defaults (``constants.py``).
EVALS_THRESH = 1e-5
DEFAULT_MAX_FINGERS = 10
DEFAULT_FINGER_THRESH = 1.0
MIN_ALPHA = 2.0


def log_esd_peak(evals: np.ndarray, *, bins: int = 100, thresh: float = EVALS_THRESH) -> float:
    """Left edge ``10**e`` of the fullest of ``bins`` equal bins of ``log10 λ`` (λ > thresh).

    >>> log_esd_peak(np.array([1.0, 10.0, 10.0, 100.0]), bins=2)
    10.0
    """
    ev = np.asarray(evals, dtype=float)
    counts, edges = np.histogram(np.log10(ev[ev > thresh]), bins=bins)
    return float(10 ** edges[int(np.argmax(counts))])


def fit_xmin_peak(
    evals: np.ndarray, *, xmin_max: float | None = None, ww_range: bool = False
) -> PowerLawFit:
    """Power-law fit with xmin searched near the peak ``p`` of the log-ESD.

    Candidates lie in ``[0.95 p, xmin_max)`` (default ``xmin_max = 1.5 p``; with
    ``ww_range=True`` in ``[log10(0.95 p), xmin_max)``, WeightWatcher 0.7.7's range, see the
    module docstring). The fit is powerlaw 2.0.0's untruncated one with its default α range
    [0, 3], on the eigenvalues above 1e-5.

    >>> x = (1.0 - np.random.default_rng(1).random(3000)) ** (-1 / 1.5)
    >>> fit = fit_xmin_peak(x)
    >>> bool(abs(fit.alpha - 2.5) < 0.2), fit.xmin < 1.5
    (True, True)
    """
    ev = np.asarray(evals, dtype=float)
    nz = ev[ev > EVALS_THRESH]
    peak = log_esd_peak(ev)
    hi = 1.5 * peak if xmin_max is None else float(xmin_max)
    lo = float(np.log10(0.95 * peak)) if ww_range else 0.95 * peak
    return fit_power_law(nz, xmax=None, alpha_range=(0.0, 3.0), xmin_range=(lo, hi))


@dataclass(frozen=True)
class ClippedFit:
    """Result of :func:`fit_clip_xmax`: the chosen fit, WW's ``num_fingers`` and ``raw_alpha``
    (the α of the unclipped fit)."""

    fit: PowerLawFit
    num_fingers: int
    raw_alpha: float


def fit_clip_xmax(
    evals: np.ndarray,
    *,
    max_fingers: int = DEFAULT_MAX_FINGERS,
    finger_thresh: float = DEFAULT_FINGER_THRESH,
    min_alpha: float = MIN_ALPHA,
) -> ClippedFit:
    """WW's power law refitted with its largest eigenvalues clipped (``fit_clipped_powerlaw``,
    RMT_Util.py:954).

    With ``x`` the eigenvalues above 1e-5 (ascending) and ``α₀`` the fit of all of them: for
    ``k = 2, …, max_fingers − 1`` fit ``x[:-k]``; the first with ``α + finger_thresh < α₀`` is
    chosen (``num_fingers = k − 1``); stop at the first ``α ≤ min_alpha``. Otherwise the
    unclipped fit stays (``num_fingers = 0``).

    >>> x = (1.0 - np.random.default_rng(0).random(500)) ** (-1 / 3.0)   # no finger
    >>> r = fit_clip_xmax(x)
    >>> r.num_fingers, r.fit.alpha == r.raw_alpha
    (0, True)
    """
    ev = np.sort(np.asarray(evals, dtype=float))
    nz = ev[ev > EVALS_THRESH]
    first = fit_power_law_ww(nz)
    best, num_fingers = first, 0
    for k in range(2, max_fingers):
        fit = fit_power_law_ww(nz[:-k])
        if fit.alpha + finger_thresh < first.alpha:
            best, num_fingers = fit, k - 1
            break
        if min_alpha is not None and fit.alpha <= min_alpha:
            break
    return ClippedFit(best, num_fingers, float(first.alpha))
