"""Layer-by-layer distances between two checkpoints of one architecture (WW's ``distances``).

For each linear and conv2d layer WeightWatcher 0.7.7 analyses by default (the ``ww``
convention's layers: 8 to 15000 pooled eigenvalues), matched by name:

``raw``
    ‖W_A − W_B‖_F over the whole stored tensor (all kernel taps at once), and ``delta_b``, the
    same for the biases (0 where a layer has none, as WW reports it).
``euclidean``
    the mean over the layer's matrices (conv2d: each kernel tap) of ‖W_A − W_B‖_F.
``cka``
    the mean over its matrices of ‖W_Aᵀ W_B‖_F / √(‖W_Aᵀ W_A‖_F ‖W_B W_Bᵀ‖_F): WW's
    uncentred CKA-like overlap (1 for equal matrices, about 0 for unrelated random ones;
    1e-6 is added to a denominator below 1e-6). Each conv tap is oriented as WW orients it
    (transposed when it has fewer rows than columns), which this overlap depends on.

These are WW's formulas (``WeightWatcher.matrix_distance``), checked against WW's own
``distances`` in the tests. One difference: WW reports ``delta_b = 0`` for a conv2d layer
(its ``PyTorchLayer`` does not read conv biases); here it is the biases' distance. A layer in
only one checkpoint, or of another shape in the other, gets a row with its status (``only A``,
``only B``, ``shape differs``) and NaN distances; WW stops with an error there.

Example
-------
>>> from torch import nn
>>> a = nn.Sequential(nn.Linear(20, 30)); b = nn.Sequential(nn.Linear(20, 30))
>>> d = distances(a, a, "cka")
>>> round(float(d["delta_W"].iloc[0]), 6)
1.0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from htsr.spectral import ww
from htsr.spectral.matrices import LayerWeight, iter_layers, layer_matrices
from htsr.weights.analysis import _source

__all__ = ["METHODS", "distances", "matrix_distance"]

METHODS: tuple[str, ...] = ("raw", "euclidean", "cka")


def matrix_distance(w1: torch.Tensor, w2: torch.Tensor, method: str = "euclidean") -> float:
    """‖W1 − W2‖_F (``raw``, ``euclidean``) or WW's uncentred CKA overlap (``cka``, module
    docstring) of two tensors of one shape, in float64."""
    a, b = w1.detach().to(torch.float64), w2.detach().to(torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    if method in ("raw", "euclidean"):
        return float(torch.linalg.vector_norm(a - b))
    if method == "cka":
        num = float(torch.linalg.matrix_norm(a.T @ b))
        norm = float(np.sqrt(float(torch.linalg.matrix_norm(a.T @ a))
                             * float(torch.linalg.matrix_norm(b @ b.T))))  # fmt: skip
        return num / (norm + 1e-6 if norm < 1e-6 else norm)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _layers(source: Any) -> dict[str, LayerWeight]:
    from htsr.weights.describe import _shape_status

    out = {}
    for layer in iter_layers(source, include_attention=False):
        if layer.layer_type not in ("linear", "conv2d") or layer.status:
            continue
        if _shape_status(layer_matrices(layer), "ww", ww.WW_MIN_EVALS)[0] == "ok":
            out[layer.name] = layer
    return out


def _bias(source: Any, name: str) -> torch.Tensor | None:
    if isinstance(source, nn.Module):
        mod = source.get_submodule(name) if name else source
        b = getattr(mod, "bias", None)
        return b if isinstance(b, torch.Tensor) else None
    key = f"{name}.bias"
    return source[key] if key in source else None


def distances(
    a: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike[str],
    b: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike[str],
    method: str = "euclidean",
) -> pd.DataFrame:
    """One row per layer of A (then those only in B): ``layer, layer_type, N, M, method,
    delta_W, delta_b, status`` (module docstring). ``delta_b`` only under ``raw``."""
    from htsr.weights.edit import _ww_matrices

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    sa, sb = _source(a), _source(b)
    la, lb = _layers(sa), _layers(sb)
    rows = []
    for name, layer in la.items():
        n, m = layer_matrices(layer).shape
        row: dict[str, Any] = dict(layer=name, layer_type=layer.layer_type, N=n, M=m,
                                   method=method, delta_W=np.nan, delta_b=np.nan,
                                   status="ok")  # fmt: skip
        rows.append(row)
        other = lb.get(name)
        if other is None:
            row["status"] = "only A"
            continue
        if other.weight.shape != layer.weight.shape:
            row["status"] = "shape differs"
            continue
        if method == "raw":
            row["delta_W"] = matrix_distance(layer.weight, other.weight, "raw")
            b1, b2 = _bias(sa, name), _bias(sb, name)
            ok = b1 is not None and b2 is not None and b1.shape == b2.shape
            row["delta_b"] = matrix_distance(b1, b2, "raw") if ok else 0.0
        else:
            pairs = zip(_ww_matrices(layer), _ww_matrices(other), strict=True)
            row["delta_W"] = float(np.mean([matrix_distance(x, y, method) for x, y in pairs]))
            row["delta_b"] = 0.0
    for name, layer in lb.items():
        if name not in la:
            n, m = layer_matrices(layer).shape
            rows.append(dict(layer=name, layer_type=layer.layer_type, N=n, M=m, method=method,
                             delta_W=np.nan, delta_b=np.nan, status="only B"))  # fmt: skip
    return pd.DataFrame(rows, columns=["layer", "layer_type", "N", "M", "method", "delta_W",
                                       "delta_b", "status"])  # fmt: skip
