"""Edit a model's weights through their spectra: WeightWatcher's SVD smoothing and sharpening.

Both act per layer on the layers WeightWatcher 0.7.7 analyses by default (linear and conv2d
weights whose pooled ESD has between 8 and 15000 eigenvalues, N ≤ 50000: the ``ww``
convention of :func:`htsr.analyze`), each conv2d kernel tap ``W[:, :, i, j]`` as its own
matrix, and leave every other tensor as it is.

:func:`svd_smooth` (WW's ``SVDSmoothing``) keeps the k largest singular components of each
matrix, ``W → U_k Σ_k V_kᵀ`` (Martin & Mahoney's "SVD smoothing": the bulk of the ESD is noise,
its tail the learned correlations), with k from the pooled ESD of the layer:

* ``method="detX"`` (WW's default): k = the number of eigenvalues in the tail that satisfies
  the det X = 1 condition, :func:`detx_num`
  (:func:`htsr.spectral.detx.detx_condition`);
* ``method="percent"``: k = ⌊percent · M · slices⌋.

For a conv2d layer each of its ``rf`` taps keeps ⌈k / rf⌉ components, as WW does.

:func:`svd_sharpen` (WW's ``SVDSharpness``) removes the largest singular components instead,
as many as the ESD of the layer with its entries randomly permuted has spikes beyond its
Marchenko–Pastur bulk edge (``num_spikes`` of :func:`htsr.spectral.mp.mp_fit`; WW's
"correlation traps"), per conv tap
⌈−n / rf⌉ (so fewer than rf spikes remove nothing, as in WW).

Both return the edited tensors and a report, one row per layer (``layer, layer_type, N, M,
n_slices, num_evals, method, num_smooth, kept, removed, energy_removed, status``): ``kept`` and
``removed`` singular components per matrix, ``energy_removed`` = 1 − ‖W'‖²_F / ‖W‖²_F.

Differences from WeightWatcher 0.7.7, each with its line: WW keeps the top k with scikit-learn's
randomized ``TruncatedSVD(n_iter=7, random_state=42)`` (``RMT_Util._smooth_W_accurate``); here
the SVD is exact by default (LAPACK, float64: the best approximation of rank k, within 2 % of
WW's weights on the test models where half of a flat spectrum is kept, 1e-6 on the conv taps),
and ``svd="randomized"`` runs WW's ``TruncatedSVD`` (equal to WW's weights to 1e-6). WW's det X loop
multiplies eigenvalues (``detX_constraint``, ``np.prod(evals[idx:])``) and can overflow to inf
on a large layer, after which no tail satisfies det X < 1; here the product is a sum of logs.
When WW's MP fit fails, ``num_spikes`` is −1 and SVDSharpness then *keeps* only the top
component (``apply_svd_sharpness``: ``num_smooth = -num_spikes``); here the layer is left
unchanged with status ``mp_fit_failed``. WW permutes with numpy's global random state; here
``numpy.random.RandomState(seed)`` draws the same permutations as ``np.random.seed(seed)``
would (tested: weights equal to WW's after ``np.random.seed(seed)``).

Example
-------
>>> evals = np.array([0.1, 0.2, 0.3, 0.5, 4.0, 9.0])   # rescaled: 0.04 0.09 0.13 0.21 1.7 3.8
>>> detx_num(evals)   # 3.8·1.7·0.21 = 1.4, ·0.13 = 0.18 < 1: the 4 largest
4
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from htsr.spectral import ww
from htsr.spectral.detx import detx_condition
from htsr.spectral.matrices import LayerWeight, iter_layers, layer_matrices
from htsr.spectral.mp import mp_fit
from htsr.weights.analysis import _source

__all__ = ["REPORT_COLUMNS", "detx_num", "svd_sharpen", "svd_smooth"]

REPORT_COLUMNS: tuple[str, ...] = (
    "layer", "layer_type", "N", "M", "n_slices", "num_evals", "method", "num_smooth", "kept",
    "removed", "energy_removed", "status",
)  # fmt: skip
#: Layer types the edits apply to (WW 0.7.7's SVDSmoothing: DENSE and CONV2D of a torch model).
EDITED = ("linear", "conv2d")


def detx_num(evals: np.ndarray) -> int:
    """Size of the det X = 1 tail: the fewest largest eigenvalues whose product is < 1, the
    eigenvalues first rescaled to mean 1 (WeightWatcher 0.7.7's ``RMT_Util.detX_constraint``,
    in logs); ``detX_num`` of :func:`htsr.spectral.detx.detx_condition` on the sorted ``evals``.
    """
    return detx_condition(np.sort(np.asarray(evals, dtype=np.float64))).detX_num


def _svd_edit(w: torch.Tensor, k: int, svd: str = "exact") -> torch.Tensor:
    """``w`` (2-D) with only its k largest singular components (k > 0), or without its −k
    largest (k < 0), in float64; unchanged copy for k = 0 or k ≥ min(N, M). ``svd=
    "randomized"``: the k largest from scikit-learn's ``TruncatedSVD(k, n_iter=7,
    random_state=42)`` on the float32 weights, as WeightWatcher 0.7.7 does
    (``RMT_Util._smooth_W_accurate``)."""
    x = w.detach().to(torch.float64)
    m = min(x.shape)
    if k == 0 or k >= m:
        return x.clone()
    if svd == "randomized" and k > 0:
        from sklearn.decomposition import TruncatedSVD

        t = TruncatedSVD(n_components=k, n_iter=7, random_state=42)
        a = w.detach().float().numpy()
        if a.shape[0] < a.shape[1]:
            return torch.from_numpy((t.fit_transform(a.T) @ t.components_).T).double()
        return torch.from_numpy(t.fit_transform(a) @ t.components_).double()
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    s = s.clone()
    if k > 0:
        s[k:] = 0
    else:
        s[: min(-k, m)] = 0
    return (u * s) @ vh


def _edit_layer(layer: LayerWeight, per_matrix: int, svd: str) -> torch.Tensor:
    """The layer's weight with every matrix (conv2d: each tap) edited by ``_svd_edit``."""
    w = layer.weight.detach()
    if layer.layer_type == "linear":
        return _svd_edit(w, per_matrix, svd).to(w.dtype)
    out = torch.empty_like(w, dtype=torch.float64)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            out[:, :, i, j] = _svd_edit(w[:, :, i, j], per_matrix, svd)
    return out.to(w.dtype)


def _ww_matrices(layer: LayerWeight) -> list[torch.Tensor]:
    """The layer's matrices as WW 0.7.7 orders and orients them (``conv2D_Wmats``: taps i, j
    in order, each transposed when it has fewer rows than columns; a linear weight as
    stored), which its random permutations are drawn over."""
    w = layer.weight.detach()
    if layer.layer_type == "linear":
        return [w]
    mats = []
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            t = w[:, :, i, j]
            mats.append(t.t() if t.shape[0] < t.shape[1] else t)
    return mats


def _edit(source: Any, method: str, percent: float, seed: int, svd: str = "exact",
          ) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:  # fmt: skip
    from htsr.spectral.metrics import _Options
    from htsr.weights.describe import _shape_status

    rng = np.random.RandomState(seed)
    edits: dict[str, torch.Tensor] = {}
    rows = []
    layers = iter_layers(source, include_attention=False)
    for layer in layers:
        if layer.layer_type not in EDITED or layer.status:
            continue
        stack = layer_matrices(layer)
        status, num_evals = _shape_status(stack, "ww", ww.WW_MIN_EVALS)
        ww_n, ww_m, rf = ww.ww_dims(stack)
        row: dict[str, Any] = dict(layer=layer.name, layer_type=layer.layer_type,
                                   N=stack.shape[0], M=stack.shape[1], n_slices=rf,
                                   num_evals=num_evals, method=method, num_smooth=0,
                                   kept=stack.shape[1], removed=0, energy_removed=0.0,
                                   status=status)  # fmt: skip
        rows.append(row)
        if status != "ok":
            continue
        if not torch.isfinite(layer.weight).all():
            row["status"] = "nonfinite"
            continue
        mats = _ww_matrices(layer) if method == "sharpen" else list(stack.matrices)
        if method == "sharpen":  # WW: permute each matrix's entries, in WW's order and shape
            mats = [t.reshape(-1)[torch.from_numpy(rng.permutation(t.numel()))].reshape(t.shape)
                    for t in mats]  # fmt: skip
        opts = _Options("ww", 0, "ww", torch.float64, torch.device("cpu"), False)
        from htsr.spectral.metrics import _stack_evals

        evals = np.sort(np.concatenate(_stack_evals(torch.stack(mats), opts)))
        if method == "detX":
            num_smooth = detx_num(evals)
        elif method == "percent":
            num_smooth = int(percent * ww_m * rf)
        else:
            try:
                num_smooth = -mp_fit(evals, ww_n, ww_m).num_spikes
            except (ValueError, FloatingPointError) as err:
                row["status"] = "mp_fit_failed"
                warnings.warn(f"sharpen: layer {layer.name}: MP fit failed ({err}); left as it is",
                              RuntimeWarning, stacklevel=3)  # fmt: skip
                continue
        per = num_smooth if rf == 1 else math.ceil(num_smooth / rf)
        new = _edit_layer(layer, per, svd)
        m = stack.shape[1]
        kept = m if per == 0 else min(per, m) if per > 0 else max(m + per, 0)
        old_sq = float(layer.weight.detach().double().square().sum())
        new_sq = float(new.double().square().sum())
        row.update(num_smooth=num_smooth, kept=kept, removed=m - kept,
                   energy_removed=1.0 - new_sq / old_sq if old_sq > 0 else 0.0)  # fmt: skip
        edits[f"{layer.name}.weight"] = new
    return edits, pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def svd_smooth(
    model_or_path: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike[str],
    *,
    method: str = "detX",
    percent: float = 0.8,
    svd: str = "exact",
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """WeightWatcher's SVD smoothing of every linear and conv2d layer (module docstring).

    Returns ``(edits, report)``: ``edits`` maps each edited weight's state_dict key
    (``<layer>.weight``) to its new tensor (same shape and dtype), ``report`` has one row per
    linear/conv2d layer (:data:`REPORT_COLUMNS`; a layer WW skips keeps its status and is not
    edited). ``method``: ``"detX"`` or ``"percent"`` (keep ⌊percent·M·slices⌋ components;
    WW calls it ``method="svd"``). ``svd``: ``"exact"`` (LAPACK; the best approximation of
    that rank) or ``"randomized"`` (WW's ``TruncatedSVD``, to reproduce its weights).
    """
    if svd not in ("exact", "randomized"):
        raise ValueError(f"svd must be 'exact' or 'randomized', got {svd!r}")
    if method not in ("detX", "percent"):
        raise ValueError(f"method must be 'detX' or 'percent', got {method!r}")
    if not 0.0 <= percent <= 1.0:
        raise ValueError(f"percent must be in [0, 1], got {percent}")
    return _edit(_source(model_or_path), method, percent, 0, svd)


def svd_sharpen(
    model_or_path: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike[str],
    *,
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """WeightWatcher's SVD sharpening: remove from each linear and conv2d layer as many
    largest singular components as its entry-permuted ESD has MP spikes (module docstring).
    Returns ``(edits, report)`` as :func:`svd_smooth`; ``seed`` seeds the permutations."""
    return _edit(_source(model_or_path), "sharpen", 0.0, seed)
