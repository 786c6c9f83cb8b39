"""WeightWatcher 0.7.7's convention (``convention="ww"``), emulated: one pooled row per layer.

WeightWatcher pools the eigenvalues of all kernel taps of a conv layer into one ESD (scaled by
½ for conv2d), filters layers by its eigenvalue-count window, drops eigenvalues at or below
1e-5 before its own power-law fit (:func:`htsr.fit.fit_power_law_ww`) and reports ``log_norm``
as ``log10 Σλ``. :func:`htsr.analyze` calls :func:`ww_row` for each layer under this convention;
the shared machinery (eigenvalues, statuses, fits) is :mod:`htsr.metrics`'. The tests compare
against WeightWatcher 0.7.7 itself (``tests/test_ww.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from htsr import metrics as _m
from htsr.spectra import MatrixStack

__all__ = ["WW_CONV2D_EVAL_SCALE", "WW_EVALS_THRESH", "WW_MAX_EVALS", "WW_MAX_N",
           "WW_MIN_EVALS", "ww_dims", "ww_log_norm", "ww_row"]  # fmt: skip

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


#: Statuses of layers that WeightWatcher does not analyse (its filters and unusable weights).
_NOT_ANALYSED = ("too_small", "too_large", "empty", "unsupported", "non_float", "error")


class IntraPairs:
    """``analyze(intra=True)``: one row per pair of consecutive analysed layers
    (:mod:`htsr.spectral.intra`), as WeightWatcher's ``WWIntraLayerIterator`` forms them."""

    def __init__(self, opts: Any, *, sparsify: bool, seed: int) -> None:
        import numpy as _np

        self.opts, self.sparsify = opts, sparsify
        self.rng = _np.random.RandomState(seed)
        self.prev: tuple[str, np.ndarray] | None = None

    def add(self, layer: Any, layer_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The pair row of ``layer`` with the previous analysed layer (none for the first, for
        a layer WW skips, or for two matrices that share no dimension)."""
        from htsr.spectra import layer_matrices
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
        row = _m._blank_row(f"{prev[0]} X {layer.name}", "intra", "", shape, "ok")
        _m._fill_row(row, sv, self.opts)  # WW analyses the singular values as its "evals"
        return [row]


def ww_row(stack: MatrixStack, opts: Any) -> dict[str, Any]:
    """One pooled row for the whole layer (WeightWatcher convention)."""
    row = _m._empty_row(stack, "", "ok")
    ww_n, ww_m, rf = ww_dims(stack)
    if ww_m * rf < opts.min_dim:
        row["status"] = "too_small"
    elif ww_m * rf > WW_MAX_EVALS or ww_n > WW_MAX_N:
        row["status"] = "too_large"
    all_evals: list[np.ndarray] = []
    if row["status"] == "ok":  # too_small/too_large layers get no spectrum
        all_evals = _m._stack_evals(stack.matrices, opts)
        statuses = _m._screened_status(stack.matrices, all_evals, opts)
    else:
        statuses = _m._slice_status(stack.matrices)
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
    _m._fill_row(row, evals, opts)
    if opts.diag is not None and row["status"] == "ok":
        from htsr.spectral.diagnostics import diagnostic_columns, ww_matrices

        scale = WW_CONV2D_EVAL_SCALE if stack.layer_type == "conv2d" else 1.0
        mats = ww_matrices(stack.matrices, stack.layer_type)
        diagnostic_columns(row, evals, mats, opts.diag, N=ww_n, M=ww_m, rf=rf, scale=scale)
    if opts.keep_evals:
        row["evals"] = evals
    return row
