"""What :func:`htsr.analyze` would analyse in a checkpoint, nothing computed (WW's ``describe``).

:func:`describe` lists every weight matrix of a model with its shape, dtype, layer type and
slice count, the number of eigenvalues its ESD would have, and the status it would get from its
shape alone (``too_small``, ``too_large``, ``non_float``, ``unsupported``, ``empty``), with the
reason in words; and every other tensor of two or more dimensions that no row is made from
(``excluded``: an embedding without ``include_embeddings``, a bare attention projection under
the ``ww`` convention; ``unsupported``: a parameter not named ``weight`` such as an LSTM's
``weight_ih_l0``), so nothing is dropped in silence. From a checkpoint file it reads shapes and
dtypes only (:meth:`htsr.weights.checkpoints.TensorStore.meta`: the safetensors header, or the
memory-mapped pickle), never tensor data: a 7B-parameter sharded checkpoint is described in
well under a second (``benchmarks/bench_describe.py``).

Example
-------
>>> from torch import nn
>>> t = describe(nn.Sequential(nn.Conv2d(3, 64, 3), nn.Flatten(), nn.Linear(64, 10)))
>>> t[["layer", "layer_type", "n_slices", "N", "M", "num_evals", "status"]].values.tolist()
[['0', 'conv2d', 9, 64, 3, 3, 'too_small'], ['2', 'linear', 1, 64, 10, 10, 'ok']]
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from htsr.spectral import ww
from htsr.spectral.matrices import (
    LayerWeight,
    MatrixStack,
    _is_embedding,
    infer_layer,
    iter_layers,
    layer_matrices,
)
from htsr.spectral.metrics import CONVENTIONS, PAPER_MIN_DIM, PER_SLICE
from htsr.weights.analysis import _source

__all__ = ["COLUMNS", "MetaStateDict", "describe", "status_reason"]

#: Columns of :func:`describe`, in order.
COLUMNS: tuple[str, ...] = (
    "layer", "layer_type", "shape", "dtype", "n_slices", "N", "M", "num_evals", "status",
    "reason",
)  # fmt: skip

_CONV = ("conv1d", "conv2d", "conv3d", "capsule")


class MetaStateDict(Mapping[str, torch.Tensor]):
    """A checkpoint's tensors as ``meta`` tensors (shape and dtype, no data), in its order.

    Wraps a :class:`htsr.weights.checkpoints.TensorStore` (its ``meta``) or any mapping of tensors
    (each turned into a meta tensor of its shape); ``config`` is passed through.
    """

    def __init__(self, source: Mapping[str, torch.Tensor]) -> None:
        self.source = source
        self.config = getattr(source, "config", None)
        self.num_components = getattr(source, "num_components", {})  # a LoRA update's rank

    def __getitem__(self, key: str) -> torch.Tensor:
        meta = getattr(self.source, "meta", None)
        if meta is not None:
            return meta(key)
        t = self.source[key]
        return torch.empty(t.shape, dtype=t.dtype, device="meta")

    def __iter__(self) -> Iterator[str]:
        return iter(self.source)

    def __len__(self) -> int:
        return len(self.source)


def status_reason(status: str, *, convention: str = "paper", min_dim: int | None = None) -> str:
    """A row status of :func:`htsr.analyze` or :func:`describe` in words.

    >>> status_reason("too_small", convention="ww")
    'fewer than min_evals = 8 eigenvalues (M·slices)'
    """
    if min_dim is None:
        min_dim = ww.WW_MIN_EVALS if convention == "ww" else PAPER_MIN_DIM
    small = {
        "paper": f"a conv slice with min(N, M) < min_dim = {min_dim}",
        "ww": f"fewer than min_evals = {min_dim} eigenvalues (M·slices)",
        "ww2020": f"min(N, M) < min_size = {min_dim}",
    }[convention]
    reasons = {
        "ok": "",
        "too_small": small,
        "too_large": f"more than {ww.WW_MAX_EVALS} eigenvalues or N > {ww.WW_MAX_N}"
        " (WeightWatcher's max_evals, max_N)",
        "non_float": "not a floating-point tensor (integer or quantized weights)",
        "unsupported": "a tensor that cannot be cut into matrices",
        "empty": "a side of length 0",
        "excluded": "",
        "zero": "all weights are 0",
        "nonfinite": "NaN or Inf weights",
        "overflow": "its spectrum overflows even in float64",
        "underflow": "its spectrum underflows even in float64",
        "error": "an error while analysing it (see the warning printed)",
        "few_evals": "fewer eigenvalues than the min_evals asked for",
    }
    return reasons.get(status, "the power-law fit failed" if status else "")


def _shape_status(stack: MatrixStack, convention: str, min_dim: int) -> tuple[str, int]:
    """(status from the shape alone, number of eigenvalues) of a layer under ``convention``."""
    n, m = stack.shape
    rf = len(stack.slices)
    if m == 0:
        return "empty", 0
    if convention == "ww":
        ww_n, ww_m, rf = ww.ww_dims(stack)
        if ww_m * rf < min_dim:
            return "too_small", ww_m * rf
        if ww_m * rf > ww.WW_MAX_EVALS or ww_n > ww.WW_MAX_N:
            return "too_large", ww_m * rf
        return "ok", ww_m * rf
    tiny = m < min_dim if convention == "ww2020" else stack.layer_type in _CONV and m < min_dim
    return ("too_small" if tiny else "ok"), m


def _layer_row(layer: LayerWeight, convention: str, min_dim: int) -> dict[str, Any]:
    w = layer.weight
    row: dict[str, Any] = dict(layer=layer.name, layer_type=layer.layer_type,
                               shape="x".join(map(str, w.shape)),
                               dtype=str(w.dtype).removeprefix("torch."))  # fmt: skip
    if layer.status:
        dims = sorted((int(w.shape[-2]), int(w.shape[-1])), reverse=True) if w.ndim >= 2 else [0]
        return row | dict(n_slices=1, N=dims[0], M=dims[-1], num_evals=0, status=layer.status)
    try:
        stack = layer_matrices(layer)
    except ValueError:
        return row | dict(n_slices=0, N=0, M=0, num_evals=0, status="unsupported")
    status, num_evals = _shape_status(stack, convention, min_dim)
    if layer.num_components:  # a low-rank update: its r nonzero eigenvalues are analysed
        num_evals = min(num_evals, layer.num_components)
    n, m = stack.shape
    return row | dict(n_slices=len(stack.slices), N=n, M=m, num_evals=num_evals, status=status)


def _unused(meta: Mapping[str, torch.Tensor], names: set[str], convention: str,
            include_embeddings: bool) -> list[dict[str, Any]]:  # fmt: skip
    """Rows for the tensors of two or more dimensions that gave no layer, with why."""
    rows = []
    for key in meta:
        name = key.removesuffix(".weight")
        if name in names or key in names:
            continue
        t = meta[key]
        if t.ndim < 2:
            continue
        kind = infer_layer(key, t, include_embeddings=include_embeddings)
        leaf = key.rsplit(".", 1)[-1]
        if kind == "attention":
            status, why = "excluded", "a bare attention projection (WeightWatcher does not see it)"
        elif _is_embedding(key, t):
            status, why = "excluded", "an embedding (analyse it with include_embeddings)"
        elif kind == "linear":
            status, why = "excluded", "an output head tied to an embedding"
        else:
            status, why = "unsupported", f"a {t.ndim}-D parameter {leaf!r}, not a layer weight"
        rows.append(dict(layer=key, layer_type="", shape="x".join(map(str, t.shape)),
                         dtype=str(t.dtype).removeprefix("torch."), n_slices=0, N=0, M=0,
                         num_evals=0, status=status, reason=why))  # fmt: skip
    return rows


def describe(
    model_or_path: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike[str],
    convention: str = "paper",
    *,
    min_dim: int | None = None,
    include_embeddings: bool = False,
) -> pd.DataFrame:
    """Every matrix :func:`htsr.analyze` would analyse, one row per layer (see ``COLUMNS``).

    ``shape`` is the stored tensor's (``"4096x11008"``), ``n_slices`` the number of matrices
    it is cut into (kernel taps, q/k/v), ``N ≥ M`` each matrix's sides, ``num_evals`` the
    size of one row's ESD under ``convention`` (``M`` per slice; ``ww``: M·slices pooled),
    ``status`` what analyze's rows will say from the shape alone (``ok`` unless it is sure to
    be skipped; weights that turn out zero or non-finite are only found by analyze) and
    ``reason`` that status in words. Rows of tensors no layer is made from follow
    (:func:`_unused`). Arguments as :func:`htsr.analyze`'s; a checkpoint path is read through
    :class:`MetaStateDict`: headers only, no tensor data.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if min_dim is None:
        min_dim = ww.WW_MIN_EVALS if convention == "ww" else PAPER_MIN_DIM
    source = _source(model_or_path)
    if isinstance(source, nn.Module):
        meta: Any = source
    else:
        meta = MetaStateDict(source)
    layers = iter_layers(meta, include_embeddings=include_embeddings,
                         include_attention=convention == "paper")  # fmt: skip
    rows = [_layer_row(layer, convention, min_dim) for layer in layers]
    for row in rows:
        row["reason"] = status_reason(row["status"], convention=convention, min_dim=min_dim)
    if not isinstance(source, nn.Module):
        rows += _unused(meta, {r["layer"] for r in rows}, convention, include_embeddings)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    # how many rows analyze makes of it: one per slice, or one per layer under ww
    used = table["n_slices"] > 0
    table["rows"] = table["n_slices"] if convention in PER_SLICE else used.astype(int)
    return table.astype({"n_slices": "int64", "N": "int64", "M": "int64",
                         "num_evals": "int64", "rows": "int64"})  # fmt: skip
