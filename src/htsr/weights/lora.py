"""LoRA / PEFT adapters: the low-rank updates ``ΔW = s·B·A`` as matrices, alone or added to W.

A LoRA adapter stores, for each adapted module, two factors: ``lora_A`` (r × in) and
``lora_B`` (out × r) (``peft``'s keys ``base_model.model.<module>.lora_A.weight`` and
``lora_B.weight``; ``lora_embedding_A`` (r × num_embeddings) and ``lora_embedding_B``
(dim × r) for an embedding; conv factors ``(r, in, kh, kw)`` and ``(out, r, 1, 1)``). The
module's weight after fine-tuning is ``W + s·ΔW`` with ``ΔW = B·A`` (``(B·A)ᵀ`` for an
embedding, and for a ``fan_in_fan_out`` layer such as GPT-2's ``Conv1D``) and the scale
``s = lora_alpha / r`` (``lora_alpha / √r`` with ``use_rslora``; per-module ``rank_pattern``
and ``alpha_pattern`` honoured), from ``adapter_config.json`` beside the weights — ``peft``'s
own ``LoraLayer.scaling``.

:class:`LoraStateDict` is a lazy mapping that yields, per adapted module,

* ``<module>.lora_BA.weight``: the update s·ΔW (rank r);
* with a base checkpoint, ``<module>.lora_W_plus_AB.weight``: the fine-tuned weight W + s·ΔW;

named as WeightWatcher 0.7.7's ``peft=True`` names its rows (``lora_A`` → ``lora_BA``,
``lora_B`` → ``lora_W_plus_AB``, ``WWPeftLayerIterator.update_peft_layers``), so
:func:`htsr.analyze` analyses it like any state_dict. Differences from WeightWatcher, on
purpose: (1) WW multiplies B·A unscaled (``np.dot(B, A)``, weightwatcher.py line 2024); here
the scale s is applied by default, so W + s·ΔW is the weight ``peft``'s ``merge_and_unload``
makes (tested); ``scale=False`` gives WW's unscaled B·A (tested equal to WW's rows). The
scale multiplies every eigenvalue of ΔW by s², so α is the same either way, λmax and the norms
are not. (2) WW pairs each ``lora_B`` with the ``lora_A`` just before it in the file's key
order; here factors are paired by their module name, so any key order works, and modules come
in the order of the base checkpoint when one is given (its modules' order for a ``.bin``),
else the adapter's: file order for a ``.bin``, natural order (``layers.2`` before
``layers.10``) for a safetensors file, whose keys are stored sorted. (3) WW only sees keys
ending in ``.weight``, so it misses ``lora_embedding_A``/``B``; they are analysed here. Other
tensors of the adapter (``modules_to_save``, a saved ``base_layer``) keep their names.

Example
-------
>>> import torch
>>> A, B = torch.ones(2, 5), torch.ones(3, 2)
>>> sd = {"m.fc.lora_A.weight": A, "m.fc.lora_B.weight": B}
>>> lora = LoraStateDict(sd, scaling=lambda module: 0.5)
>>> list(lora), lora["m.fc.lora_BA.weight"][0, 0].item()
(['m.fc.lora_BA.weight'], 1.0)
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from htsr.weights.checkpoints import CheckpointError, open_checkpoint

__all__ = ["ADAPTER_FILES", "LoraStateDict", "adapter_scaling", "is_adapter", "open_adapter"]

#: An adapter's weights files, as ``peft``'s ``save_pretrained`` names them.
ADAPTER_FILES: tuple[str, ...] = ("adapter_model.safetensors", "adapter_model.bin")

_FACTOR = re.compile(r"^(?P<module>.+)\.lora_(?P<emb>embedding_)?(?P<ab>[AB])(?:\.weight)?$")
#: The prefix ``peft`` puts before the base model's module names.
PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class _Pair:
    module: str  # the adapter's module name (with peft's prefix)
    a: str
    b: str
    embedding: bool


def is_adapter(path: str | os.PathLike[str]) -> bool:
    """Is ``path`` a LoRA adapter: an ``adapter_model.*`` file, or a folder holding one?"""
    p = Path(path)
    if p.is_dir():
        return any((p / n).is_file() for n in ADAPTER_FILES)
    return p.name in ADAPTER_FILES


def _adapter_file(path: Path) -> Path:
    if path.is_dir():
        for name in ADAPTER_FILES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no adapter weights ({', '.join(ADAPTER_FILES)})")
    return path


def adapter_scaling(config: Mapping[str, Any]) -> Callable[[str], float]:
    """The LoRA scale s of each module from an ``adapter_config.json``, as ``peft`` sets it:
    ``lora_alpha / r``, or ``lora_alpha / √r`` with ``use_rslora``; ``rank_pattern`` and
    ``alpha_pattern`` (keys matched at the end of the module name, as ``peft`` does) override r
    and alpha per module. An empty config gives s = 1 for every module.

    >>> s = adapter_scaling({"r": 8, "lora_alpha": 16, "alpha_pattern": {"v_proj": 32}})
    >>> s("model.layers.0.q_proj"), s("model.layers.0.v_proj")
    (2.0, 4.0)
    """
    if not config:
        return lambda module: 1.0
    r0, alpha0 = int(config.get("r", 8)), float(config.get("lora_alpha", 8))
    rslora = bool(config.get("use_rslora", False))
    ranks, alphas = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}

    def pick(pattern: Mapping[str, Any], module: str, default: float) -> float:
        for key, value in pattern.items():
            if re.match(rf"(.*\.)?({key})$", module):
                return float(value)
        return default

    def scaling(module: str) -> float:
        r, alpha = pick(ranks, module, r0), pick(alphas, module, alpha0)
        return alpha / (math.sqrt(r) if rslora else r)

    return scaling


class LoraStateDict(Mapping[str, torch.Tensor]):
    """The adapter's updates (and, given ``base``, updated weights) as a lazy state_dict.

    ``adapter``: the adapter's tensors (name → tensor; a
    :class:`htsr.weights.checkpoints.TensorStore` is read one tensor at a time); ``scaling``:
    module name → s (:func:`adapter_scaling`); ``base``: the base model's state_dict, or None;
    ``fan_in_fan_out``: the base stores its weights as (in, out) (GPT-2's ``Conv1D``), so ΔW is
    added transposed. See the module docstring for the keys. ``KeyError``-free: a module with
    only one factor, or whose base weight is missing or of another shape, raises
    :class:`htsr.weights.errors.CheckpointError` naming it when built.
    """

    def __init__(self, adapter: Mapping[str, torch.Tensor], *,
                 scaling: Callable[[str], float] | None = None,
                 base: Mapping[str, torch.Tensor] | None = None,
                 fan_in_fan_out: bool = False, name: str = "adapter") -> None:  # fmt: skip
        self.adapter, self.base, self.name = adapter, base, name
        self.scaling = scaling or (lambda module: 1.0)
        self.fan_in_fan_out = fan_in_fan_out
        self.config = getattr(base, "config", None) or {}
        factors: dict[str, dict[str, str]] = {}
        others: list[str] = []
        for key in adapter:
            m = _FACTOR.match(key)
            if m is None:
                others.append(key)
                continue
            slot = ("E" if m["emb"] else "") + m["ab"]
            factors.setdefault(m["module"], {})[slot] = key
        pairs = []
        for module, slots in factors.items():
            emb = "EA" in slots or "EB" in slots
            a, b = slots.get("EA" if emb else "A"), slots.get("EB" if emb else "B")
            if a is None or b is None:
                raise CheckpointError(f"{name}: module {module} has only {sorted(slots.values())}")
            pairs.append(_Pair(module, a, b, emb))
        self._keys: dict[str, tuple[str, _Pair | str]] = {}
        #: the rank r of each update's key: :func:`htsr.analyze` keeps its r largest
        #: eigenvalues, as WeightWatcher does (``num_components = lora_rank``)
        self.num_components: dict[str, int] = {}
        for key in others:
            self._keys[key] = ("other", key)
        for pair in self._ordered(pairs):
            self._keys[f"{pair.module}.lora_BA.weight"] = ("delta", pair)
            a_shape = self._meta(pair.a).shape
            self.num_components[f"{pair.module}.lora_BA.weight"] = int(
                a_shape[0] if pair.embedding or len(a_shape) != 2 else min(a_shape)
            )
            if base is not None:
                self._base_key(pair)  # fails now, naming the module, if there is none
                self._keys[f"{pair.module}.lora_W_plus_AB.weight"] = ("merged", pair)

    def _ordered(self, pairs: list[_Pair]) -> list[_Pair]:
        """Pairs in the base checkpoint's module order when there is a base, else as found."""
        if self.base is None:
            return pairs
        order = {k.removesuffix(".weight"): i for i, k in enumerate(self.base)}
        return sorted(pairs, key=lambda p: order.get(self._base_module(p), len(order)))

    @staticmethod
    def _base_module(pair: _Pair) -> str:
        return pair.module.removeprefix(PEFT_PREFIX)

    def _base_key(self, pair: _Pair) -> str:
        assert self.base is not None
        module = self._base_module(pair)
        for key in (f"{module}.weight", f"{module}.base_layer.weight", f"{pair.module}.weight",
                    f"{pair.module}.base_layer.weight"):  # fmt: skip
            if key in self.base:
                return key
        raise CheckpointError(f"{self.name}: no base weight for {pair.module} ({module}.weight)")

    def delta(self, pair: _Pair, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """s·ΔW of one module, in the base weight's layout (``(out, in)``, ``(num, dim)`` for
        an embedding, ``(out, in, kh, kw)`` for a conv)."""
        a = self.adapter[pair.a].to(dtype)
        b = self.adapter[pair.b].to(dtype)
        s = self.scaling(self._base_module(pair))
        if pair.embedding:  # A (r, num), B (dim, r): ΔW = (B A)ᵀ, (num, dim)
            return s * (b @ a).t()
        if a.ndim == 4:  # conv: A (r, in, kh, kw), B (out, r, 1, 1)
            out = b.shape[0]
            return s * (b.reshape(out, -1) @ a.reshape(a.shape[0], -1)).reshape(out, *a.shape[1:])
        return s * (b @ a)

    def __getitem__(self, key: str) -> torch.Tensor:
        kind, what = self._keys[key]
        if kind == "other":
            assert isinstance(what, str)
            return self.adapter[what]
        assert isinstance(what, _Pair)
        if kind == "delta":
            return self.delta(what)
        assert self.base is not None
        w = self.base[self._base_key(what)]
        d = self.delta(what, dtype=torch.float32 if w.dtype != torch.float64 else torch.float64)
        if self.fan_in_fan_out and not what.embedding:
            d = d.t()
        if d.shape != w.shape:
            raise CheckpointError(f"{self.name}: {what.module}: update of shape"
                                  f" {tuple(d.shape)} does not fit W {tuple(w.shape)}")  # fmt: skip
        return w.to(d.dtype) + d

    def meta(self, key: str) -> torch.Tensor:
        """Shape and dtype of ``key`` as a ``meta`` tensor, from the factors' shapes only."""
        kind, what = self._keys[key]
        if kind == "other":
            assert isinstance(what, str)
            return self._meta(what)
        assert isinstance(what, _Pair)
        a, b = self._meta(what.a), self._meta(what.b)
        if what.embedding:
            shape: tuple[int, ...] = (a.shape[1], b.shape[0])
        else:
            shape = (b.shape[0], *a.shape[1:])
        return torch.empty(shape, dtype=torch.float32, device="meta")

    def _meta(self, key: str) -> torch.Tensor:
        get = getattr(self.adapter, "meta", None)
        return get(key) if get is not None else self.adapter[key].to("meta")

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def open_adapter(path: str | os.PathLike[str], *,
                 base: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
                 scale: bool = True) -> LoraStateDict:  # fmt: skip
    """A LoRA adapter (``adapter_model.safetensors``/``.bin``, or its folder) as a
    :class:`LoraStateDict`, scaled by its ``adapter_config.json`` (beside the file; s = 1 with
    a warning-free note in the docs when there is none, or when ``scale`` is False), with the
    base checkpoint ``base`` (a state_dict, or any path
    :func:`htsr.weights.checkpoints.open_checkpoint` reads; an ``hf://`` address through
    :func:`htsr.weights.analysis.open_weights`) if given."""
    file = _adapter_file(Path(path))
    adapter = open_checkpoint(file)
    config_path = file.parent / "adapter_config.json"
    config: dict[str, Any] = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text("utf-8"))
        except ValueError as exc:
            raise CheckpointError(f"{config_path}: not readable JSON ({exc})") from exc
    base_sd = base if isinstance(base, Mapping) or base is None else open_checkpoint(base)
    return LoraStateDict(adapter, scaling=adapter_scaling(config if scale else {}),
                         base=base_sd, fan_in_fan_out=bool(config.get("fan_in_fan_out")),
                         name=str(file))  # fmt: skip
