"""Keras files, read with ``h5py`` (no TensorFlow): Keras 3 ``.keras`` archives, their
``model.weights.h5``, and legacy ``.h5`` files (``model.save("x.h5")``, ``save_weights``).

Keras stores kernels channels last; they are put in torch's layout
(:func:`htsr.weights.formats.to_torch_layout`): a Dense kernel ``(in, out)`` → ``(out, in)``, a
Conv1D kernel ``(k, in, out)`` → ``(out, in, k)``, a Conv2D kernel ``(kh, kw, in, out)`` →
``(out, in, kh, kw)``, a Conv3D kernel likewise. An Embedding's ``(input_dim, output_dim)``
table is torch's layout already and is named ``NAME.embeddings`` (an embedding, analysed only
with ``include_embeddings``).

* Keras 3 (``model.weights.h5``, alone or in a ``.keras`` zip beside ``config.json``): each
  layer's variables are datasets ``…/vars/0``, ``…/vars/1`` with no names, the group's ``name``
  attribute is the layer's name (a nested model's layer: ``MODEL.LAYER``). A layer's first
  variable of rank ≥ 2 is its kernel, ``LAYER.weight``; later ones (an LSTM's recurrent kernel)
  ``LAYER.vars.I.weight``. Layers come in ``config.json``'s order where there is one, else in
  natural order of their paths; Embedding layers are known by ``config.json``'s class names, or
  without it by Keras's path (``layers/embedding_1``).
* Legacy HDF5 (the root, or its ``model_weights`` group, has ``layer_names``): each layer
  group lists ``weight_names`` (``dense/kernel:0``); ``kernel`` is ``LAYER.weight``, other
  kernels (``recurrent_kernel``, ``depthwise_kernel``) ``LAYER.KIND.weight``, ``embeddings``
  ``LAYER.embeddings``.

A 3-D kernel is read as a Conv1D kernel; an ``EinsumDense`` kernel of rank 3 (Keras's
``MultiHeadAttention`` projections) would be cut the same way: not supported.
Reference: keras/src/saving/saving_lib.py (``H5IOStore``) and legacy/saving/legacy_h5_format.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from htsr.weights.errors import CheckpointError
from htsr.weights.formats import Weights, require, to_torch_layout, unique_key

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
WEIGHTS_MEMBER = "model.weights.h5"
CONFIG_MEMBER = "config.json"
#: Kernel names of the legacy format other than ``kernel`` (a layer's second matrix).
_OTHER_KERNELS = ("recurrent_kernel", "depthwise_kernel", "pointwise_kernel")


def _is_keras_zip(path: Path) -> bool:
    """Holds ``model.weights.h5`` and ``config.json``; or is unreadable (a truncated archive
    whose first member is a ``.keras`` one: :func:`read` names what is wrong)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return True
    return WEIGHTS_MEMBER in names and CONFIG_MEMBER in names


def _is_keras_h5(path: Path) -> bool:
    try:
        import h5py
    except ImportError:
        return True  # read() names the missing package
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            return "layer_names" in root.attrs or "layers" in f or "vars" in f
    except (OSError, ValueError):
        return True  # HDF5 by its signature but unreadable (truncated): read() says so


def sniff(source: bytes | str | os.PathLike[str]) -> bool:
    """A zip (``PK``) holding ``model.weights.h5`` and ``config.json``, or an HDF5 file in a
    Keras layout. From the first bytes alone: a zip whose first member is one of the
    ``.keras`` archive's, or the HDF5 signature."""
    if isinstance(source, bytes):
        if source[:4] == b"PK\x03\x04":
            n = int.from_bytes(source[26:28], "little")
            first = source[30 : 30 + n].decode("utf-8", "replace")
            return first in ("metadata.json", CONFIG_MEMBER, WEIGHTS_MEMBER)
        return source[:8] == HDF5_MAGIC
    p = Path(source)
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    if head[:4] == b"PK\x03\x04":
        return _is_keras_zip(p)
    return head == HDF5_MAGIC and _is_keras_h5(p)


def _natural(path: str) -> tuple[Any, ...]:
    return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in re.split(r"(\d+)", path))


def _config_layers(config: Any) -> list[tuple[str, str]]:
    """(name, class_name) of every layer in ``config.json``, nested models' layers in place."""
    out: list[tuple[str, str]] = []
    if isinstance(config, dict):
        cfg = config.get("config")
        if "class_name" in config and isinstance(cfg, dict) and "name" in cfg:
            out.append((str(cfg["name"]), str(config["class_name"])))
        for value in config.values():
            out.extend(_config_layers(value))
    elif isinstance(config, list):
        for value in config:
            out.extend(_config_layers(value))
    return out


def read(path: str | os.PathLike[str]) -> Weights:
    """The kernels of the Keras file at ``path`` in torch's layout (see the module docstring).

    Raises :class:`htsr.weights.checkpoints.CheckpointError` naming the file when ``h5py`` is
    missing or
    the file is not a readable Keras file.
    """
    p = Path(path)
    h5py = require("h5py", "h5py", "Keras", p)
    config: dict[str, Any] = {}
    try:
        with open(p, "rb") as fh:
            is_zip = fh.read(4) == b"PK\x03\x04"
        if is_zip:
            with zipfile.ZipFile(p) as zf:
                config = json.loads(zf.read(CONFIG_MEMBER))
                data = io.BytesIO(zf.read(WEIGHTS_MEMBER))
            source: Any = data
        else:
            source = p
        with h5py.File(source, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in root.attrs:
                tensors = _legacy(root)
                config = config or _json_attr(f.attrs.get("model_config"))
            else:
                tensors = _keras3(f, config)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{p}: not a readable Keras file ({exc})") from exc
    if not tensors:
        raise CheckpointError(f"{p}: a Keras file with no kernels")
    return Weights({k: (lambda t=t: t) for k, t in tensors.items()}, name=str(p), config=config)


def _json_attr(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    text = value.decode() if isinstance(value, bytes) else str(value)
    return json.loads(text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _tensor(dataset: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(dataset))


def _legacy(root: Any) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for layer in (_text(n) for n in root.attrs["layer_names"]):
        group = root[layer]
        for wname in (_text(n) for n in group.attrs.get("weight_names", [])):
            parts = wname.split(":")[0].split("/")
            leaf, mid = parts[-1], parts[:-1]
            if layer in mid:
                mid = mid[mid.index(layer) + 1 :]
            # tf.keras 2 scoped the variables as `conv2d_5_1/kernel:0` in layer `conv2d_5`
            mid = [m for m in mid if not re.fullmatch(re.escape(layer) + r"(_\d+)?", m)]
            prefix = ".".join([layer, *mid])
            t = _tensor(group[wname])
            if t.ndim < 2:
                continue
            if leaf == "embeddings":
                out[unique_key(f"{prefix}.embeddings", out)] = t
            elif leaf == "kernel" or leaf in _OTHER_KERNELS:
                key = f"{prefix}.weight" if leaf == "kernel" else f"{prefix}.{leaf}.weight"
                out[unique_key(key, out)] = to_torch_layout(t)
    return out


def _keras3(f: Any, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Keras 3's ``…/vars`` groups: each named by the chain of its layers' own names (the
    ``name`` attribute of each enclosing layer's ``vars`` group: ``inner.a`` for layer ``a`` of a
    nested model ``inner``), ordered by ``config.json``'s layer order, then by path."""
    layers = _config_layers(config)
    order = {name: i for i, (name, _) in enumerate(layers)}
    classes = dict(layers)
    paths: list[str] = []
    f.visititems(lambda p, obj: paths.append(p) if p.endswith("vars") and len(obj) else None)
    found = []
    for path in paths:
        comps = path.split("/")[:-1]
        names, rank = [], []
        for i, comp in enumerate(comps):
            if comp == "layers":
                continue
            own = f["/".join([*comps[: i + 1], "vars"])].attrs.get("name")
            names.append(_text(own) if own is not None else comp)
            rank.append(order.get(names[-1], len(order)))
        name = ".".join(names) or _text(f[path].attrs.get("name", "model"))
        # without config.json, Keras 3's path names a layer by its class (embedding, embedding_1)
        cls = classes.get(names[-1] if names else name, "")
        if not cls and comps and re.fullmatch(r"embedding(_\d+)?", comps[-1]):
            cls = "Embedding"
        found.append((rank, _natural(path), name, cls, f[path]))
    found.sort(key=lambda row: row[:2])
    out: dict[str, torch.Tensor] = {}
    for _, _, name, cls, group in found:
        kernels = [_tensor(group[k]) for k in sorted(group, key=int)]
        kernels = [t for t in kernels if t.ndim >= 2]
        for i, t in enumerate(kernels):
            if cls == "Embedding":
                out[unique_key(f"{name}.embeddings", out)] = t
                continue
            key = f"{name}.weight" if i == 0 else f"{name}.vars.{i}.weight"
            out[unique_key(key, out)] = to_torch_layout(t)
    return out
