"""WeightWatcher 0.7.7's convention (``convention="ww"``), emulated: one pooled row per layer.

WeightWatcher pools the eigenvalues of all kernel taps of a conv layer into one ESD (scaled by
½ for conv2d), filters layers by its eigenvalue-count window, drops eigenvalues at or below
1e-5 before its own power-law fit (:func:`htsr.spectral.fit.fit_power_law_ww`) and reports
``log_norm`` as ``log10 Σλ``. This module holds those conventions (its constants, :func:`ww_dims`,
:func:`ww_log_norm`); the pooled row itself, :func:`htsr.spectral.metrics.ww_row`, is built
beside the per-slice rows from the shared machinery (eigenvalues, statuses, fits). The tests
compare against WeightWatcher 0.7.7 itself (``tests/test_ww.py``).
"""

from __future__ import annotations

import numpy as np

from htsr.spectral.matrices import MatrixStack

__all__ = ["WW_CONV2D_EVAL_SCALE", "WW_EVALS_THRESH", "WW_MAX_EVALS", "WW_MAX_N",
           "WW_MIN_EVALS", "ww_dims", "ww_log_norm"]  # fmt: skip

#: WeightWatcher 0.7.7 defaults (``constants.py``): pooled eigenvalue-count window, max N,
#: eigenvalues at or below EVALS_THRESH are dropped before the fit, conv2d weight scale √(1/2).
WW_MIN_EVALS = 8
WW_MAX_EVALS = 15000
WW_MAX_N = 50000
WW_EVALS_THRESH = 1e-5
WW_CONV2D_EVAL_SCALE = 0.5


def ww_log_norm(evals: np.ndarray) -> float:
    """WeightWatcher's ``log_norm`` column, ``log10 Σᵢ λᵢ = log10 ‖W‖²_F`` of its (pooled,
    for conv2d ½-scaled) eigenvalues: the *squared* Frobenius norm despite the name."""
    return float(np.log10(np.sum(evals)))


def ww_dims(stack: MatrixStack) -> tuple[int, int, int]:
    """``(N, M, rf)`` as WeightWatcher 0.7.7 computes them for its layer filters.

    For conv2d WW starts from ``(N, M) = (out, in)`` and swaps N and M once *per kernel tap*
    whenever out < in (``WWLayer.conv2D_Wmats``), so with an even number of taps and out < in it
    ends with N < M. The reported N, M of :func:`analyze` are always sorted; only WW's
    eigenvalue-count filter ``M·rf`` uses these values.
    """
    rows, cols = int(stack.matrices.shape[-2]), int(stack.matrices.shape[-1])
    rf = len(stack.slices)
    if stack.layer_type == "conv2d":
        n, m = rows, cols
        if rows < cols and rf % 2 == 1:
            n, m = cols, rows
        return n, m, rf
    return max(rows, cols), min(rows, cols), rf
