"""Flax checkpoints (``flax_model.msgpack``, ``flax.serialization.to_bytes``), read with the
``msgpack`` package directly: neither flax nor jax is needed.

The file is a msgpack map of nested maps (the parameter tree) whose leaves are arrays packed as
msgpack extension type 1, ``(shape, dtype name, C-order bytes)``; arrays over 2**30 bytes are
split into a map ``{"__msgpack_chunked_array__": True, "shape": ..., "chunks": ...}``
(flax/serialization.py: ``_ndarray_to_bytes``, ``_chunk``). ``bfloat16`` arrays are read
through torch. Unpacking msgpack runs no code.

Flax names a layer's weight ``kernel`` and stores it channels last; it is put in torch's layout
(:func:`htsr.weights.formats.to_torch_layout`) under ``PATH.weight``, the tree's keys joined by
``.`` (``params.bert.encoder.layer.0.attention.self.query.weight``): a Dense kernel
``(in, out)`` → ``(out, in)``; a Conv kernel ``(kh, kw, in, out)`` → ``(out, in, kh, kw)``
(rank 3 and 5 likewise). A 3-D kernel of a ``query``/``key``/``value`` module (flax's
``MultiHeadDotProductAttention``, ``(in, heads, head_dim)``) is a dense ``(in, heads·head_dim)``
matrix, and of an ``out`` module (``(heads, head_dim, out)``) a ``(heads·head_dim, out)`` one.
An ``nn.Embed`` table ``embedding`` ``(num, features)`` is torch's layout already and keeps its
name (an embedding, analysed only with ``include_embeddings``). Other leaves (biases, norm
scales) are not weights of a layer and are left out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from htsr.weights.errors import CheckpointError
from htsr.weights.formats import Weights, head, require, to_torch_layout, unique_key

#: msgpack extension types of flax.serialization (``_MsgpackExtType``).
EXT_NDARRAY, EXT_COMPLEX, EXT_NPSCALAR = 1, 2, 3
CHUNKED = "__msgpack_chunked_array__"
_ATTENTION_IN = ("query", "key", "value")


def sniff(source: bytes | str | os.PathLike[str]) -> bool:
    """A msgpack map (``fixmap`` with 1-15 entries, ``map16``, ``map32``) whose first key is a
    string: how every flax checkpoint starts. (A pickle starts ``0x80 0x0N``, an empty fixmap;
    it does not pass.)"""
    source = head(source, 8)
    if source is None or len(source) < 2:
        return False
    first = source[0]
    key_at = 1 if 0x81 <= first <= 0x8F else 3 if first == 0xDE else 5 if first == 0xDF else 0
    if not key_at or len(source) <= key_at:
        return False
    k = source[key_at]
    return 0xA1 <= k <= 0xBF or k in (0xD9, 0xDA, 0xDB)


def _array(data: bytes) -> np.ndarray | torch.Tensor:
    import msgpack

    shape, dtype, buffer = msgpack.unpackb(data, raw=True)
    name = dtype.decode() if isinstance(dtype, bytes) else str(dtype)
    shape = tuple(int(s) for s in shape)
    if name == "bfloat16":
        raw = torch.from_numpy(np.frombuffer(buffer, dtype=np.uint16).copy())
        return raw.view(torch.bfloat16).reshape(shape)
    return np.frombuffer(buffer, dtype=np.dtype(name)).reshape(shape)


def _ext_hook(code: int, data: bytes) -> Any:
    import msgpack

    if code == EXT_NDARRAY:
        return _array(data)
    if code == EXT_NPSCALAR:
        return np.asarray(_array(data))[()]
    if code == EXT_COMPLEX:
        re_, im = msgpack.unpackb(data)
        return complex(re_, im)
    return msgpack.ExtType(code, data)


def _unchunk(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get(CHUNKED):
            shape = tuple(int(node["shape"][str(i)]) for i in range(len(node["shape"])))
            chunks = [node["chunks"][str(i)] for i in range(len(node["chunks"]))]
            if isinstance(chunks[0], torch.Tensor):
                return torch.cat(chunks).reshape(shape)
            return np.concatenate(chunks).reshape(shape)
        return {k: _unchunk(v) for k, v in node.items()}
    return node


def _leaves(tree: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, dict):
        return [leaf for k, v in tree.items() for leaf in _leaves(v, (*path, str(k)))]
    return [(path, tree)]


def read(path: str | os.PathLike[str]) -> Weights:
    """The kernels and embeddings of the flax checkpoint at ``path`` in torch's layout, in the
    file's order (see the module docstring).

    Raises :class:`htsr.weights.checkpoints.CheckpointError` naming the file when ``msgpack`` is
    missing
    or the file is not a readable flax checkpoint.
    """
    p = Path(path)
    msgpack = require("msgpack", "msgpack", "Flax msgpack", p)
    try:
        tree = msgpack.unpackb(p.read_bytes(), ext_hook=_ext_hook, raw=False,
                               strict_map_key=False)  # fmt: skip
    except (OSError, ValueError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"{p}: not a readable flax msgpack file ({exc})") from exc
    if not isinstance(tree, dict):
        raise CheckpointError(f"{p}: holds a {type(tree).__name__}, not a flax parameter tree")
    out: dict[str, torch.Tensor] = {}
    for keys, leaf in _leaves(_unchunk(tree)):
        if not isinstance(leaf, (np.ndarray, torch.Tensor)) or not keys:
            continue
        t = leaf if isinstance(leaf, torch.Tensor) else torch.from_numpy(leaf.copy())
        stem = ".".join(keys[:-1])
        if keys[-1] == "embedding" and t.ndim >= 2:
            out[unique_key(".".join(keys), out)] = t
        elif keys[-1] == "kernel" and t.ndim >= 2:
            module = keys[-2] if len(keys) > 1 else ""
            if t.ndim == 3 and module in _ATTENTION_IN:
                t = t.reshape(t.shape[0], -1)
            elif t.ndim == 3 and module == "out":
                t = t.reshape(-1, t.shape[-1])
            out[unique_key(f"{stem}.weight", out)] = to_torch_layout(t)
    if not out:
        raise CheckpointError(f"{p}: a flax msgpack file with no kernels")
    return Weights({k: (lambda t=t: t) for k, t in out.items()}, name=str(p))
