"""The least-squares pieces shared by the trends (:mod:`htsr.studies.trends`) and the
predictions (:mod:`htsr.studies.predict`): the values a trend regresses, the line of y on x,
and the leave-one-out prediction error of that line.

Example
-------
>>> round(loo_rmse([1.0, 2.0, 3.0, 4.0, 5.0], [80.0, 78.0, 75.0, 73.0, 70.0]), 3)
0.431
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Fewest models a line is fitted to (a leave-one-out error needs one more).
MIN_MODELS = 3


def quality_values(values: Any, transform: str = "") -> np.ndarray:
    """The values a trend regresses: as published, or ``log10`` of them (``transform``)."""
    v = np.asarray(values, dtype=float)
    if transform == "log10":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan)
    return v


def _finite_pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """x and y as float arrays, pairs with a NaN or inf dropped."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep]


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares ``(slope, intercept, Sxx)`` of y on x; None when x is constant."""
    sxx = float(np.sum((x - x.mean()) ** 2))
    if sxx == 0.0:
        return None
    slope = float(np.sum((x - x.mean()) * (y - y.mean())) / sxx)
    return slope, float(y.mean() - slope * x.mean()), sxx


def loo_rmse(x: Sequence[float], y: Sequence[float]) -> float:
    """Root-mean-square leave-one-out prediction error of y from x (units of y): each pair
    predicted by the least-squares line of the others. NaN with fewer than 4 finite pairs."""
    xa, ya = _finite_pairs(x, y)
    if xa.size < MIN_MODELS + 1:
        return math.nan
    errors = []
    for i in range(xa.size):
        mask = np.arange(xa.size) != i
        line = _line(xa[mask], ya[mask])
        if line is None:
            return math.nan
        slope, intercept, _ = line
        errors.append(intercept + slope * xa[i] - ya[i])
    return float(np.sqrt(np.mean(np.square(errors))))
