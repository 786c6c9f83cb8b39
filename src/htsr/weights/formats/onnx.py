"""ONNX models, read with the ``onnx`` package: the weights of Gemm, MatMul and Conv nodes.

A weight is a constant input of one of these nodes (an initializer, or a ``Constant`` node),
followed back through ``Transpose``, ``Identity`` and ``DequantizeLinear`` nodes, and put in
torch's layout as the node uses it:

* ``Gemm`` (Y = A'·B' + C): the constant B is ``(N, K)`` when ``transB=1`` (torch's
  ``nn.Linear`` export), taken as it is, else ``(K, N)``, transposed;
* ``MatMul`` (Y = X·W): a constant second input W ``(K, N)`` (in, out) is transposed to
  ``(N, K)``; a constant first input is ``(out, in)`` already. Constants of rank > 2 (batched
  products) are not matrices of a layer and are skipped with a warning naming the node;
* ``Conv`` / ``ConvTranspose``: the weight ``(out, in/groups, k...)`` as it is.

A weight reached through ``DequantizeLinear`` (a quantized model) is dequantized,
``(x - zero_point) · scale`` per tensor or per ``axis``; with a ``block_size`` it is left
quantized and gets a ``non_float`` row naming its type. Nodes inside ``If``/``Loop``/``Scan``
subgraphs are read too. A weight used by several nodes is read once.

Names: an initializer named like a parameter (torch's ``fc1.weight``) keeps its name; any
other (``onnx::MatMul_12``, ``val_10``, tf2onnx's ``Const:0``) is named after the torch module
that torch's ``dynamo=True`` exporter records on the node that uses it (``encoder.fc.weight``),
else after that node, ``/`` as ``.`` (``/encoder/fc/MatMul`` → ``encoder.fc.MatMul.weight``).

Reference: the ONNX operator specification (onnx/docs/Operators.md: Gemm, MatMul, Conv).
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from htsr.weights.errors import CheckpointError
from htsr.weights.formats import Weights, head, require, unique_key

#: ModelProto's field numbers and wire types (0 varint, 2 length-delimited), onnx/onnx.proto.
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
#: Ops whose constant inputs are the layer weights: op → input indices to look at.
WEIGHT_INPUTS = {"Gemm": (1, 0), "MatMul": (1, 0), "Conv": (1,), "ConvTranspose": (1,)}
#: Ops a weight is followed back through.
_PASS_THROUGH = ("Transpose", "Identity", "DequantizeLinear")


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while i < len(data) and shift < 64:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7
    raise ValueError("truncated varint")


def _looks_like_model(head: bytes) -> bool:
    """The first bytes parse as ONNX ``ModelProto`` fields: ``ir_version`` (field 1, a small
    varint) first, then fields of the message's numbers and wire types (protobuf has no magic
    number; torch, safetensors, zip, HDF5, GGUF and msgpack files all fail this)."""
    i, seen = 0, 0
    try:
        while i < len(head):
            tag, i = _varint(head, i)
            field, wire = tag >> 3, tag & 7
            if _MODEL_FIELDS.get(field) != wire or (seen == 0 and field != 1):
                return False
            value, i = _varint(head, i)
            if field == 1 and not 1 <= value <= 64:
                return False
            seen += 1
            if wire == 2:
                if i + value > len(head):
                    return seen >= 2 or (field == 7 and seen >= 1)
                i += value
        return seen >= 2
    except ValueError:
        return seen >= 2


def sniff(source: bytes | str | os.PathLike[str]) -> bool:
    """Do the file's first bytes parse as an ONNX ``ModelProto`` (see :func:`_looks_like_model`)?"""
    first = head(source, 512)
    return first is not None and _looks_like_model(first)


_PARAM_NAME = re.compile(r"^[\w.]*weight$")


def _graphs(graph: Any) -> list[Any]:
    """``graph`` and every subgraph of its nodes' attributes, depth first."""
    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                out.extend(_graphs(sub))
    return out


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def read(path: str | os.PathLike[str]) -> Weights:
    """The Gemm, MatMul and Conv weights of the ONNX model at ``path``, in torch's layout
    (see the module docstring), in the graph's node order.

    Raises :class:`htsr.weights.checkpoints.CheckpointError` naming the file when ``onnx`` is
    missing
    or the file is not a readable model (external data is read from beside it).
    """
    p = Path(path)
    onnx = require("onnx", "onnx", "ONNX", p)
    from onnx import numpy_helper

    try:
        model = onnx.load(str(p))
    except Exception as exc:  # protobuf DecodeError, missing external data, ...
        raise CheckpointError(f"{p}: not a readable ONNX model ({exc})") from exc
    graphs = _graphs(model.graph)
    consts: dict[str, Any] = {}
    producer: dict[str, Any] = {}
    for g in graphs:
        for init in g.initializer:
            consts[init.name] = init
        for node in g.node:
            for out in node.output:
                producer[out] = node
            if node.op_type == "Constant" and _attr(node, "value", None) is not None:
                consts[node.output[0]] = _attr(node, "value", None)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(consts[name])

    def trace(name: str) -> tuple[str, list[Any]] | None:
        """The constant ``name`` comes from, and the pass-through nodes on the way (last
        first), or None if it is not a constant."""
        chain: list[Any] = []
        while name not in consts:
            node = producer.get(name)
            if node is None or node.op_type not in _PASS_THROUGH or not node.input:
                return None
            chain.append(node)
            name = node.input[0]
        return name, chain

    loaders: dict[str, Any] = {}
    stored: dict[str, str] = {}
    done: set[str] = set()
    for g in graphs:
        for node in g.node:
            for index in WEIGHT_INPUTS.get(node.op_type, ()):
                if index >= len(node.input) or not node.input[index]:
                    continue
                found = trace(node.input[index])
                if found is None:
                    continue
                base, chain = found
                if base in done:
                    break
                shape = list(consts[base].dims) if hasattr(consts[base], "dims") else []
                if node.op_type in ("Gemm", "MatMul") and len(shape) != 2:
                    warnings.warn(
                        f"{p}: node {node.name or node.output[0]} ({node.op_type}) has a"
                        f" constant of shape {shape}, not a matrix; skipped", RuntimeWarning,
                        stacklevel=2,
                    )  # fmt: skip
                    break
                done.add(base)
                key = unique_key(_key(base, node), loaders)
                blocked = [n for n in chain if n.op_type == "DequantizeLinear"
                           and _attr(n, "block_size", 0)]  # fmt: skip
                if blocked:
                    stored[key] = f"{onnx.helper.tensor_dtype_to_np_dtype(consts[base].data_type)}"
                    stored[key] += " (DequantizeLinear, blocked)"
                    loaders[key] = _meta(shape)
                else:
                    loaders[key] = _loader(array, consts, base, chain, node, index, _attr)
                break
    if not loaders:
        raise CheckpointError(f"{p}: an ONNX model with no Gemm, MatMul or Conv weights")
    return Weights(loaders, name=str(p), stored_types=stored)


def _module_path(node: Any) -> str:
    """The torch module a node came from, as torch's exporter (``dynamo=True``) records it in
    the node's ``pkg.torch.onnx.name_scopes`` (``['', 'encoder', 'fc', 'linear']`` →
    ``encoder.fc``), else ``""``."""
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return ""
            if isinstance(scopes, list) and len(scopes) > 2:
                return ".".join(str(s) for s in scopes[1:-1] if s)
    return ""


def _key(base: str, node: Any) -> str:
    if _PARAM_NAME.match(base):
        return base if base.endswith(".weight") else f"{base}.weight"
    if module := _module_path(node):
        return f"{module}.weight"
    name = node.name or node.output[0]
    name = ".".join(part for part in re.split(r"[/:]+", name) if part)
    return f"{name}.weight"


def _meta(shape: list[int]):
    return lambda: torch.empty(shape, dtype=torch.uint8, device="meta")


def _loader(array, consts, base, chain, node, index, attr):
    def load() -> torch.Tensor:
        w = array(base)
        for step in reversed(chain):  # from the constant towards the node
            if step.op_type == "Transpose":
                w = np.transpose(w, attr(step, "perm", None))
            elif step.op_type == "DequantizeLinear":
                w = _dequantize(w, step, array, consts, attr)
        if node.op_type == "Gemm":
            flag = attr(node, "transB" if index == 1 else "transA", 0)
            if index == 1 and not flag:
                w = w.T  # B is (K, N): the (out, in) matrix is its transpose
            elif index == 0 and flag:
                w = w.T  # A' = Aᵀ is (M, K)
        elif node.op_type == "MatMul" and index == 1:
            w = w.T  # X·W with W (in, out)
        return torch.from_numpy(np.array(w, order="C"))  # a writable copy

    return load


def _dequantize(x: np.ndarray, node: Any, array, consts, attr) -> np.ndarray:
    """``DequantizeLinear``: ``(x - zero_point) · scale``, per tensor or along ``axis``."""
    scale = array(node.input[1]).astype(np.float32)
    zp = np.zeros((), np.float32)
    if len(node.input) > 2 and node.input[2] in consts:
        zp = array(node.input[2]).astype(np.float32)
    if scale.ndim == 1 and scale.size > 1:
        axis = attr(node, "axis", 1) % x.ndim
        shape = [1] * x.ndim
        shape[axis] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape) if zp.ndim else zp
    return (x.astype(np.float32) - zp) * scale
