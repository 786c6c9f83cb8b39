"""GGUF files (llama.cpp's format), read with the ``gguf`` package.

Tensors come in the file's order under their GGUF names (``blk.0.attn_q.weight``). GGUF stores
a tensor's dimensions fastest-first (``ne[0]`` is the row length, the input features), so the
array the ``gguf`` reader gives, with the dimensions reversed, is torch's ``(out, in)``; nothing
is transposed. Weights stored as ``F32``, ``F64``, ``F16``, ``BF16`` or ``Q8_0`` are read as
floating point (``BF16`` and ``Q8_0`` through ``gguf.quants.dequantize``; a ``Q8_0`` block is 32
int8 values times one float16 scale, so the dequantized matrix is what llama.cpp computes
with). Every other type (``Q4_K``, ``IQ2_XS``, ``I8``...) is not dequantized: its tensor comes
back on the ``meta`` device with its logical shape, and the analysis gives it a ``non_float``
row naming the type (:attr:`htsr.weights.formats.Weights.stored_types`).

Reference: the GGUF specification, ggml-org/ggml ``docs/gguf.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from htsr.weights.errors import CheckpointError
from htsr.weights.formats import Weights, head, require

MAGIC = b"GGUF"
#: GGUF tensor types read as floating point.
FLOAT_TYPES = ("F32", "F64", "F16", "BF16", "Q8_0")


def sniff(source: bytes | str | os.PathLike[str]) -> bool:
    """Does the file (or its first bytes) start with the GGUF magic ``GGUF``?"""
    first = head(source, 4)
    return first is not None and first[:4] == MAGIC


def read(path: str | os.PathLike[str]) -> Weights:
    """The tensors of the GGUF file at ``path``, read when asked (see the module docstring).

    Raises :class:`htsr.weights.checkpoints.CheckpointError` naming the file when ``gguf`` is
    missing
    or the file cannot be parsed.
    """
    p = Path(path)
    gguf = require("gguf", "gguf", "GGUF", p)
    try:
        reader = gguf.GGUFReader(str(p), "r")
    except Exception as exc:  # gguf raises ValueError, struct.error, ...
        raise CheckpointError(f"{p}: not a readable GGUF file ({exc})") from exc
    loaders, stored = {}, {}
    for t in reader.tensors:
        kind = t.tensor_type.name
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        if kind in FLOAT_TYPES:
            loaders[t.name] = _loader(gguf, t, shape, p)
        else:
            stored[t.name] = kind
            loaders[t.name] = _meta(shape)
    return Weights(loaders, name=str(p), stored_types=stored)


def _meta(shape: tuple[int, ...]):
    return lambda: torch.empty(shape, dtype=torch.uint8, device="meta")


def _loader(gguf, t, shape: tuple[int, ...], path: Path):
    def load() -> torch.Tensor:
        try:
            if t.tensor_type.name in ("F32", "F64", "F16"):
                arr = np.array(t.data)
            else:
                arr = gguf.quants.dequantize(t.data, t.tensor_type)
            return torch.from_numpy(np.ascontiguousarray(arr).reshape(shape))
        except Exception as exc:
            raise CheckpointError(f"{path}: tensor {t.name!r} unreadable ({exc})") from exc

    return load
