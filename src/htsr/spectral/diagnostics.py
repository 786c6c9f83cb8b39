"""WeightWatcher's optional diagnostics as extra columns of :func:`htsr.analyze` rows.

:func:`diagnostic_columns` runs, for one row (a pooled layer under ``convention="ww"``, a
matrix otherwise), the diagnostics that :class:`Diagnostics` asks for, in WeightWatcher
0.7.7's order (``analyze``, weightwatcher.py:3636-3662): the finger fix replaces the power-law
fit first, then ``mp_fit``, ``vectors``, ``randomize``, ``detX``. Each adds WeightWatcher's
columns under its names (:func:`columns_for`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from htsr.spectral.altfits import COMPARE_COLUMNS, compare_power_law, fit_truncated_power_law
from htsr.spectral.detx import detx_condition
from htsr.spectral.fingers import (
    DEFAULT_FINGER_THRESH,
    DEFAULT_MAX_FINGERS,
    fit_clip_xmax,
    fit_xmin_peak,
)
from htsr.spectral.mp import mp_fit
from htsr.spectral.randomize import RANDOMIZE_COLUMNS, randomize_columns
from htsr.spectral.vectors import VECTOR_COLUMNS, vector_columns

__all__ = ["FIX_FINGERS", "Diagnostics", "columns_for", "diagnostic_columns", "ww_matrices"]

FIX_FINGERS = ("xmin_peak", "clip_xmax")
#: WeightWatcher's ``fit`` values: the power law, the truncated power law, and the TPL with
#: xmin searched near the log-ESD peak ("extended", WW's ``E_TPL`` = TPL + ``xmin_peak``).
WW_FITS = ("PL", "TPL", "E_TPL")
EVALS_THRESH = 1e-5
MP_COLUMNS = ("num_spikes", "sigma_mp", "mp_softrank", "W_scale", "bulk_max", "bulk_min")
DETX_COLUMNS = ("num_pl_spikes", "detX_num", "num_ERG_spikes", "ERG_gap", "detX_val",
                "detX_val_unrescaled")  # fmt: skip


@dataclass(frozen=True)
class Diagnostics:
    """Which diagnostics :func:`htsr.analyze` adds (keyword arguments of WW's ``analyze``).

    ``seed`` seeds the one ``numpy.random.RandomState`` that the shuffles of ``randomize``
    draw from, layer after layer; ``ww_range`` selects WW 0.7.7's xmin range for
    ``fix_fingers="xmin_peak"`` (see :mod:`htsr.spectral.fingers`).
    """

    randomize: bool = False
    mp_fit: bool = False
    detX: bool = False
    fix_fingers: str | None = None
    vectors: bool = False
    fit: str = "PL"
    distribution_compare: bool = False
    xmin_max: float | None = None
    max_fingers: int = DEFAULT_MAX_FINGERS
    finger_thresh: float = DEFAULT_FINGER_THRESH
    ww_range: bool = False
    seed: int = 0
    rng: np.random.RandomState = field(default=None, compare=False, repr=False)  # type: ignore

    def __post_init__(self) -> None:
        if self.fix_fingers not in (None, False, *FIX_FINGERS):
            raise ValueError(f"fix_fingers must be one of {FIX_FINGERS} or None, "
                             f"got {self.fix_fingers!r}")  # fmt: skip
        if self.fit not in WW_FITS:
            raise ValueError(f"fit must be one of {WW_FITS}, got {self.fit!r}")
        if self.fit == "E_TPL" and self.fix_fingers == "clip_xmax":
            raise ValueError(
                "fit='E_TPL' searches xmin near the peak; it cannot be combined"
                " with fix_fingers='clip_xmax' (as in WeightWatcher)"
            )
        if self.fit == "E_TPL":
            object.__setattr__(self, "fix_fingers", "xmin_peak")
        if self.max_fingers < 1:
            raise ValueError(f"max_fingers must be >= 1, got {self.max_fingers}")
        if self.rng is None:
            object.__setattr__(self, "rng", np.random.RandomState(self.seed))

    @property
    def any(self) -> bool:
        """True when at least one diagnostic is asked for."""
        return bool(self.randomize or self.mp_fit or self.detX or self.fix_fingers
                    or self.vectors or self.fit != "PL" or self.distribution_compare)  # fmt: skip


def columns_for(diag: Diagnostics) -> list[str]:
    """The columns the diagnostics add to the table, in WW's order."""
    cols: list[str] = []
    if diag.fit != "PL":
        cols += ["Lambda"]
    if diag.fix_fingers == "clip_xmax":
        cols += ["num_fingers", "raw_alpha"]
    if diag.distribution_compare:
        cols += list(COMPARE_COLUMNS)
    if diag.mp_fit:
        cols += list(MP_COLUMNS)
    if diag.vectors:
        cols += list(VECTOR_COLUMNS)
    if diag.randomize:
        cols += list(RANDOMIZE_COLUMNS)
    if diag.detX:
        cols += list(DETX_COLUMNS)
    return cols


def ww_matrices(matrices: Any, layer_type: str) -> list[np.ndarray]:
    """A layer's matrices as WeightWatcher holds them, float64: a conv2d tap ``W[:, :, i, j]``
    transposed when it has fewer rows than columns (``conv2D_Wmats``), any other matrix as
    stored (a Linear weight is ``(out, in)``)."""
    arr = matrices.detach().cpu().double().numpy() if hasattr(matrices, "detach") else matrices
    out = []
    for w in np.asarray(arr, dtype=float):
        if layer_type == "conv2d" and w.shape[0] < w.shape[1]:
            w = w.T
        out.append(np.ascontiguousarray(w))
    return out


def _refit(row: dict[str, Any], evals: np.ndarray, diag: Diagnostics) -> None:
    """Replace the row's power-law fit by the finger-fixed one (the caller recomputes the
    α-metrics, :func:`htsr.spectral.metrics.analyze`)."""
    if diag.fix_fingers == "xmin_peak":
        fit = fit_xmin_peak(evals, xmin_max=diag.xmin_max, ww_range=diag.ww_range)
    else:
        clipped = fit_clip_xmax(
            evals, max_fingers=diag.max_fingers, finger_thresh=diag.finger_thresh
        )
        fit = clipped.fit
        row.update(num_fingers=clipped.num_fingers, raw_alpha=clipped.raw_alpha)
    row.update(xmin=fit.xmin, D=fit.D, n_tail=fit.n_tail)
    if not fit.ok:
        row.update(status=fit.status, alpha=np.nan, alpha_weighted=np.nan, log_alpha_norm=np.nan)
        return
    row.update(alpha=fit.alpha)


def _tpl(row: dict[str, Any], evals: np.ndarray) -> dict[str, Any]:
    """The row's α replaced by the truncated power law's, fitted on the same tail."""
    tpl = fit_truncated_power_law(evals[evals > EVALS_THRESH], float(row["xmin"]))
    return {"alpha": tpl.alpha, "Lambda": tpl.Lambda}


def diagnostic_columns(
    row: dict[str, Any],
    evals: np.ndarray,
    matrices: list[np.ndarray],
    diag: Diagnostics,
    *,
    N: int,
    M: int,
    rf: int,
    scale: float = 1.0,
) -> None:
    """Add the asked-for diagnostics' columns to ``row`` (a fitted row, status ``ok``).

    ``evals`` are the row's eigenvalues (ascending, scaled as the row's), ``matrices`` the
    layer's matrices in WW's orientation (:func:`ww_matrices`), ``N``, ``M``, ``rf`` its
    dimensions as WW sets them (``Q = N/M``; ``M·rf`` components), ``scale`` the eigenvalue
    scale (½ for WW's conv2d). A diagnostic that fails leaves its columns NaN. When a finger
    fix or a TPL replaces ``alpha``, the caller recomputes ``alpha_weighted`` and
    ``log_alpha_norm`` from it.
    """
    if diag.fix_fingers:
        _refit(row, evals, diag)
        if row["status"] != "ok":
            return
    steps = []
    if diag.distribution_compare:  # of the power law, before a TPL replaces it
        steps.append(("distribution_compare", lambda: compare_power_law(
            evals[evals > EVALS_THRESH], row["xmin"], row["alpha"])))  # fmt: skip
    if diag.fit != "PL":
        steps.append(("fit", lambda: _tpl(row, evals)))
    if diag.mp_fit:
        steps.append(("mp_fit", lambda: _mp_columns(evals, N, M)))
    if diag.vectors:
        steps.append(("vectors", lambda: vector_columns(matrices, float(row["xmin"]), scale=scale)))
    if diag.randomize:
        steps.append(("randomize", lambda: randomize_columns(
            matrices, evals, N, M, M * rf, diag.rng, scale=scale)))  # fmt: skip
    if diag.detX:
        steps.append(("detX", lambda: _detx_columns(evals, float(row["xmin"]))))
    for name, step in steps:
        try:
            row.update(step())
        except Exception as err:  # one failed diagnostic leaves its columns NaN, not the row
            msg = f"analyze: layer {row['layer']}: {name} failed ({type(err).__name__}: {err})"
            warnings.warn(f"{msg}; its columns are NaN", RuntimeWarning, stacklevel=2)
            if name == "fit":  # no TPL α: the row must not show the power law's as if it were
                row.update(status="tpl_failed", alpha=np.nan, alpha_weighted=np.nan,
                           log_alpha_norm=np.nan)  # fmt: skip


def _mp_columns(evals: np.ndarray, N: int, M: int) -> dict[str, Any]:
    fit = mp_fit(evals, N, M)
    return {c: getattr(fit, c) for c in MP_COLUMNS}


def _detx_columns(evals: np.ndarray, xmin: float) -> dict[str, Any]:
    d = detx_condition(evals)
    num_pl = int(np.count_nonzero(evals >= xmin))
    return {
        "num_pl_spikes": num_pl,
        "detX_num": d.detX_num,
        "num_ERG_spikes": d.detX_num,
        "ERG_gap": d.detX_num - num_pl,
        "detX_val": d.detX_val,
        "detX_val_unrescaled": d.detX_val_unrescaled,
    }
