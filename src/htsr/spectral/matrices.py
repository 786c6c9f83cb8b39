"""Which weight matrices a model yields, and their eigenvalue spectra (ESDs).

A *layer* is one weight tensor of a model (a ``Linear``/``Conv1d``/``Conv2d``/``Embedding``
weight, or a ``MultiheadAttention`` input projection stored as a bare parameter). A layer is cut
into one or more 2-D *matrices*, all of one shape, stacked into a ``(B, rows, cols)`` tensor:

* linear / embedding: the weight itself (B = 1);
* conv2d ``(out, in/groups, kh, kw)``: the kh·kw matrices ``W[:, :, i, j]`` of shape
  ``(out, in/groups)`` (slice labels ``"i,j"``);
* conv1d ``(out, in/groups, k)``: the k matrices ``W[:, :, i]`` (slice labels ``"i"``);
* attention ``in_proj_weight (3E, E)``: the q, k, v blocks of shape ``(E, E)``;
* capsule ``capsule_weight (in_caps, out_caps, out_dim, in_dim)`` (a capsule network's
  transforms W_ij, :class:`htsr.experiments.nets.CapsuleLayer`): one matrix per output capsule j,
  ``W[:, j]`` reshaped to ``(in_caps, out_dim·in_dim)``, the input capsules' transforms to j as
  its rows (slice labels ``"j"``). A single W_ij (16×8) is too small to have a spectrum worth
  fitting; the per-output-capsule matrix is the same cut for every capsule layer.

Their eigenvalues are computed by :mod:`htsr.spectral.eigen`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: Layer types reported in the ``layer_type`` column.
LAYER_TYPES: tuple[str, ...] = (
    "linear", "conv1d", "conv2d", "attention", "embedding", "capsule",
)  # fmt: skip

#: Names of ``nn.MultiheadAttention`` projection parameters when q, k, v differ in size.
_SEPARATE_PROJ = ("q_proj_weight", "k_proj_weight", "v_proj_weight")


@dataclass(frozen=True)
class LayerWeight:
    """One weight tensor of a model and how to read it.

    ``name`` is the module name (``features.0``), or for a bare parameter the full parameter
    name (``encoder.layers.0.self_attention.in_proj_weight``); ``weight`` is the tensor itself
    (not copied).
    """

    name: str
    layer_type: str
    weight: torch.Tensor
    status: str = ""  # set when the weight cannot be analysed at all (e.g. "non_float")
    stored_type: str = ""  # how a non_float weight is stored: "int8", a GGUF "Q4_K"


@dataclass(frozen=True)
class MatrixStack:
    """The matrices of one layer: ``matrices[b]`` is the matrix labelled ``slices[b]``."""

    layer: str
    layer_type: str
    slices: tuple[str, ...]
    matrices: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, M)`` of each matrix with N ≥ M (the transpose does not change the ESD)."""
        rows, cols = int(self.matrices.shape[-2]), int(self.matrices.shape[-1])
        return max(rows, cols), min(rows, cols)


def _embedding_matrix(t: torch.Tensor) -> torch.Tensor | None:
    """A parameter squeezed to 2-D (e.g. a ``(1, 197, 768)`` position embedding), else None."""
    shape = [s for s in t.shape if s != 1]
    if len(shape) != 2:
        return None
    return t.reshape(shape)


def _foreign_linear(mod: nn.Module) -> bool:
    """A dense layer of another library named ``Linear`` (PyTorch Geometric's
    ``torch_geometric.nn.dense.Linear`` in ``GCNConv``/``GATConv``) with a 2-D weight."""
    w = getattr(mod, "weight", None)
    return (type(mod).__name__ == "Linear" and isinstance(w, torch.Tensor)
            and not isinstance(w, nn.parameter.UninitializedParameter) and w.ndim == 2)  # fmt: skip


def layers_from_module(
    module: nn.Module, *, include_embeddings: bool = False, include_attention: bool = True
) -> Iterator[LayerWeight]:
    """Yield the analysable weights of ``module`` in ``named_modules`` order.

    Types come from the module classes (subclasses included): ``nn.Linear`` (and another
    library's ``Linear`` with a 2-D weight, e.g. PyTorch Geometric's) → linear,
    ``nn.Conv1d`` → conv1d, ``nn.Conv2d`` → conv2d, ``nn.MultiheadAttention`` input projections
    → attention (only when ``include_attention``), and, only when ``include_embeddings``,
    ``nn.Embedding`` weights and bare parameters whose name contains ``embed`` (e.g. ViT's
    ``pos_embedding``) → embedding. Norms, biases and buffers are skipped.
    """
    for name, mod in module.named_modules():
        if isinstance(mod, nn.Linear) or _foreign_linear(mod):
            yield LayerWeight(name, "linear", mod.weight)
        elif isinstance(mod, nn.Conv1d):
            yield LayerWeight(name, "conv1d", mod.weight)
        elif isinstance(mod, nn.Conv2d):
            yield LayerWeight(name, "conv2d", mod.weight)
        elif isinstance(mod, nn.Conv3d):
            yield LayerWeight(name, "conv3d", mod.weight)
        elif isinstance(mod, nn.Embedding):
            if include_embeddings:
                yield LayerWeight(name, "embedding", mod.weight)
        elif isinstance(getattr(mod, "capsule_weight", None), torch.Tensor):
            prefix = f"{name}." if name else ""
            yield LayerWeight(prefix + "capsule_weight", "capsule", mod.capsule_weight)
        elif isinstance(mod, nn.MultiheadAttention):
            if not include_attention:
                continue
            prefix = f"{name}." if name else ""
            if mod.in_proj_weight is not None:
                yield LayerWeight(prefix + "in_proj_weight", "attention", mod.in_proj_weight)
            else:
                for pname in _SEPARATE_PROJ:
                    yield LayerWeight(prefix + pname, "attention", getattr(mod, pname))
        if include_embeddings and not isinstance(mod, (nn.Embedding, nn.Linear, nn.Conv1d)):
            for pname, param in mod.named_parameters(recurse=False):
                if "embed" in pname and _embedding_matrix(param) is not None:
                    full = f"{name}.{pname}" if name else pname
                    yield LayerWeight(full, "embedding", param)


#: Name parts that mark token, position and segment embeddings in a state_dict (GPT-2 ``wte``,
#: ``wpe``; OPT, Llama ``embed_tokens``, ``embed_positions``; GPT-NeoX ``embed_in``; BERT, BLOOM
#: ``word_embeddings``, ``position_embeddings``, ``token_type_embeddings``; T5 ``shared``; ViT
#: ``pos_embed``, ``cls_token``; GGUF ``token_embd``, ``position_embd``). They are excluded
#: unless ``include_embeddings``; so is any other parameter whose name contains ``embed`` and
#: that is 2-D or not a ``.weight``.
EMBEDDING_NAMES: tuple[str, ...] = (
    "wte", "wpe", "embed_tokens", "embed_positions", "embed_in", "word_embeddings",
    "position_embeddings", "token_type_embeddings", "shared", "pos_embed", "pos_embedding",
    "position_embedding", "cls_token", "class_embedding", "token_embd", "position_embd",
)  # fmt: skip

#: Name parts of output heads stored as their own matrix (Pythia's ``embed_out``, ``lm_head``):
#: a dense matrix like any other, unless equal to an embedding of the checkpoint (tied);
#: :mod:`htsr.weights.checkpoints` also orders a safetensors file's keys by them.
OUTPUT_HEADS: tuple[str, ...] = ("lm_head", "embed_out")

#: Fused q/k/v projections whose rows (output features) are interleaved per head, ``(heads, 3,
#: head_dim)``, by ``config.json``'s ``model_type``, with the key of the head count.
INTERLEAVED_QKV: dict[str, str] = {"gpt_neox": "num_attention_heads", "bloom": "n_head"}


def _is_embedding(key: str, tensor: torch.Tensor) -> bool:
    parts = key.split(".")
    if any(p in OUTPUT_HEADS for p in parts):
        return False
    if any(p in EMBEDDING_NAMES for p in parts):
        return True
    return "embed" in key and (tensor.ndim == 2 or parts[-1] != "weight")


def infer_layer(key: str, tensor: torch.Tensor, *, include_embeddings: bool = False) -> str | None:
    """The layer type of state_dict entry ``key`` from its name and rank, or None to skip it.

    ``*.in_proj_weight`` (2-D, rows divisible by 3) and ``*.{q,k,v}_proj_weight`` → attention;
    an embedding (:data:`EMBEDDING_NAMES`, or a name containing ``embed`` that is 2-D or not a
    ``.weight``, but never an output head :data:`OUTPUT_HEADS`) → embedding when
    ``include_embeddings`` (squeezable to 2-D), else skipped; other ``*.weight`` entries by rank:
    2-D → linear, 3-D → conv1d, 4-D → conv2d, 5-D → conv3d, and a higher rank →
    ``"unsupported"`` (it gets a row with that status, never silently dropped). Everything else
    (biases, norm weights (1-D), running statistics, ``num_batches_tracked``) → None. The dtype
    is not looked at: :func:`layers_from_state_dict` marks non-float weights.
    """
    if not isinstance(tensor, torch.Tensor):
        return None
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "capsule_weight":
        return "capsule" if tensor.ndim == 4 else "unsupported"
    if leaf == "in_proj_weight":
        return "attention" if tensor.ndim == 2 and tensor.shape[0] % 3 == 0 else None
    if leaf in _SEPARATE_PROJ:
        return "attention" if tensor.ndim == 2 else None
    if _is_embedding(key, tensor):
        if include_embeddings and _embedding_matrix(tensor) is not None:
            return "embedding"
        return None
    if leaf != "weight":
        return None
    if tensor.ndim > 5:
        return "unsupported"
    return {2: "linear", 3: "conv1d", 4: "conv2d", 5: "conv3d"}.get(tensor.ndim)


def fused_qkv(
    key: str, tensor: torch.Tensor, config: Mapping[str, Any] | None
) -> torch.Tensor | None:
    """A fused q/k/v projection as ``(3E, E)`` with rows ``[q; k; v]``, or None if ``key`` is none.

    GPT-2's ``attn.c_attn.weight`` is a ``Conv1D`` weight ``(E, 3E)`` (in, out) whose output
    columns are ``[q | k | v]``: transposed. GPT-NeoX's and BLOOM's
    ``query_key_value.weight`` ``(3E, E)`` interleave the rows per head, ``(heads, 3,
    head_dim)``: regrouped with the head count from ``config.json`` (:data:`INTERLEAVED_QKV`).
    Raises ``ValueError`` naming the key when the layout cannot be known (no config, an unknown
    ``model_type``, shapes that do not fit): such a matrix is then analysed whole.
    """
    leaf = key.rsplit(".", 2)[-2:] if key.endswith(".weight") else []
    if tensor.ndim != 2 or not leaf:
        return None
    if leaf[0] == "c_attn":
        e, three_e = tensor.shape
        if three_e != 3 * e:
            raise ValueError(
                f"{key}: a c_attn weight of shape {tuple(tensor.shape)} is not (E, 3E)"
            )
        return tensor.t()
    if leaf[0] != "query_key_value":
        return None
    model_type = str((config or {}).get("model_type", ""))
    heads_key = INTERLEAVED_QKV.get(model_type)
    heads = int((config or {}).get(heads_key or "", 0) or 0)
    rows, e = tensor.shape
    if not heads or rows != 3 * e or e % heads:
        why = (
            "no config.json gives its layout" if not config
            else f"model_type {model_type!r} has no known layout" if not heads_key
            else f"shape {tuple(tensor.shape)} does not fit {heads} heads"
        )  # fmt: skip
        raise ValueError(f"{key}: fused q/k/v projection analysed whole: {why}")
    d = e // heads
    return tensor.reshape(heads, 3, d, e).transpose(0, 1).reshape(3 * e, e)


def _tied(key: str, tensor: torch.Tensor, state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Is the output head ``key`` equal to an embedding of the checkpoint (a tied head)?"""
    for other in state_dict:
        if other != key and any(p in EMBEDDING_NAMES for p in other.split(".")):
            emb = state_dict[other]
            if isinstance(emb, torch.Tensor) and emb.shape == tensor.shape:
                if torch.equal(emb, tensor):
                    return True
    return False


def layers_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    include_embeddings: bool = False,
    include_attention: bool = True,
    config: Mapping[str, Any] | None = None,
) -> Iterator[LayerWeight]:
    """Yield the analysable weights of a bare state_dict, types inferred by :func:`infer_layer`,
    one tensor at a time (a lazy mapping such as :class:`htsr.weights.checkpoints.TensorStore` is
    read one tensor at a time).

    The layer name is the key without its ``.weight`` suffix (the module name), or the full key
    for a bare parameter (``...in_proj_weight``), so names match :func:`layers_from_module`.
    A 2-D weight is a dense matrix whatever its orientation (the ESD of W and Wᵀ is the same).
    Fused q/k/v projections are split into q, k, v (:func:`fused_qkv`, ``config``: the
    checkpoint's ``config.json``), or analysed whole with a warning when their layout is
    unknown. An output head (:data:`OUTPUT_HEADS`) equal to an embedding is the tied embedding.
    A weight that is not floating point (int8 and other integer or quantized weights, complex)
    gets a layer with status ``non_float``, never a silent drop; its ``stored_type`` is the
    mapping's ``stored_types[key]`` where it has one (a GGUF ``Q4_K``), else the dtype.
    """
    if config is None:
        config = getattr(state_dict, "config", None)
    stored_types = getattr(state_dict, "stored_types", {})  # htsr.weights.formats.Weights
    for key in state_dict:
        tensor = state_dict[key]
        kind = infer_layer(key, tensor, include_embeddings=include_embeddings)
        if kind is None or (kind == "attention" and not include_attention):
            continue
        name = key[: -len(".weight")] if key.endswith(".weight") else key
        if not (tensor.is_floating_point() or kind == "unsupported"):
            stored = stored_types.get(key) or str(tensor.dtype).removeprefix("torch.")
            yield LayerWeight(name, kind, tensor, status="non_float", stored_type=stored)
            continue
        if kind == "linear" and any(p in OUTPUT_HEADS for p in key.split(".")):
            if _tied(key, tensor, state_dict):
                if include_embeddings:
                    yield LayerWeight(name, "embedding", tensor)
                continue
        if kind == "linear":
            try:
                qkv = fused_qkv(key, tensor, config)
            except ValueError as err:
                warnings.warn(str(err), RuntimeWarning, stacklevel=2)
                qkv = None
            if qkv is not None:
                if include_attention:
                    yield LayerWeight(name, "attention", qkv)
                continue
        yield LayerWeight(name, kind, tensor)


def iter_layers(
    model: nn.Module | Mapping[str, torch.Tensor],
    *,
    include_embeddings: bool = False,
    include_attention: bool = True,
    config: Mapping[str, Any] | None = None,
) -> Iterator[LayerWeight]:
    """Dispatch to :func:`layers_from_module` or :func:`layers_from_state_dict`."""
    if isinstance(model, nn.Module):
        return layers_from_module(
            model, include_embeddings=include_embeddings, include_attention=include_attention
        )
    if isinstance(model, Mapping):
        return layers_from_state_dict(
            model,
            include_embeddings=include_embeddings,
            include_attention=include_attention,
            config=config,
        )
    raise TypeError(f"expected an nn.Module or a state_dict mapping, got {type(model).__name__}")


def layer_matrices(layer: LayerWeight) -> MatrixStack:
    """Cut a layer's weight into its stack of 2-D matrices (a view, nothing copied).

    See the module docstring for the cut of each layer type. Raises ``ValueError`` naming the
    layer when the tensor's rank does not fit its type.
    """
    w = layer.weight.detach()
    kind = layer.layer_type
    if kind == "conv2d" and w.ndim == 4:
        out, inp, kh, kw = w.shape
        labels = tuple(f"{i},{j}" for i in range(kh) for j in range(kw))
        taps = w.permute(2, 3, 0, 1).reshape(kh * kw, out, inp)
        return MatrixStack(layer.name, kind, labels, taps)
    if kind == "conv3d" and w.ndim == 5:
        out, inp, kt, kh, kw = w.shape
        labels = tuple(f"{t},{i},{j}" for t in range(kt) for i in range(kh) for j in range(kw))
        taps = w.permute(2, 3, 4, 0, 1).reshape(kt * kh * kw, out, inp)
        return MatrixStack(layer.name, kind, labels, taps)
    if kind == "capsule" and w.ndim == 4:
        in_caps, out_caps, out_dim, in_dim = w.shape
        per_output = w.permute(1, 0, 2, 3).reshape(out_caps, in_caps, out_dim * in_dim)
        return MatrixStack(layer.name, kind, tuple(str(j) for j in range(out_caps)), per_output)
    if kind == "conv1d" and w.ndim == 3:
        labels = tuple(str(i) for i in range(w.shape[2]))
        return MatrixStack(layer.name, kind, labels, w.permute(2, 0, 1))
    if kind == "attention" and w.ndim == 2:
        leaf = layer.name.rsplit(".", 1)[-1]
        if leaf in _SEPARATE_PROJ:
            return MatrixStack(layer.name, kind, (leaf[0],), w.unsqueeze(0))
        if w.shape[0] % 3 != 0:
            raise ValueError(f"layer {layer.name}: in_proj_weight rows {w.shape[0]} not 3·E")
        e = w.shape[0] // 3
        return MatrixStack(layer.name, kind, ("q", "k", "v"), w.reshape(3, e, w.shape[1]))
    if kind == "embedding":
        m = _embedding_matrix(w)
        if m is not None:
            return MatrixStack(layer.name, kind, ("",), m.unsqueeze(0))
    if kind == "linear" and w.ndim == 2:
        return MatrixStack(layer.name, kind, ("",), w.unsqueeze(0))
    raise ValueError(
        f"layer {layer.name}: a {kind} weight of shape {tuple(w.shape)} is not supported"
    )
