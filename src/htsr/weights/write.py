"""Write a checkpoint back in its own format with some tensors replaced (edited weights).

:func:`write_edited` copies the checkpoint at a path to another path, file for file: a
``.safetensors`` file as safetensors (its header metadata kept), a ``.pth``/``.pt``/``.bin``/
``.ckpt`` pickle with ``torch.save`` (the same nesting: a state_dict under ``state_dict``,
``model`` or another wrapper key stays there), a folder in the Hugging Face hub's layout as a
folder with the same file names (each weights file or shard rewritten, every other file such as
``config.json``, the shard index or tokenizer files copied). Each file is written atomically
(:func:`htsr.io.atomic_output`); one shard is held in memory at a time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from htsr.io import atomic_output
from htsr.weights.checkpoints import (
    SAFETENSORS_SUFFIXES,
    TORCH_SUFFIXES,
    WRAPPER_KEYS,
    WRAPPER_PREFIXES,
    CheckpointError,
    TensorStore,
    _torch_load,
    open_checkpoint,
)

__all__ = ["write_edited"]


def _replace(tensors: Mapping[str, Any], edits: Mapping[str, torch.Tensor],
             used: set[str]) -> dict[str, Any]:  # fmt: skip
    out = {}
    for key, value in tensors.items():
        name = key
        for prefix in WRAPPER_PREFIXES:  # "module.": the name the store reads it under
            name = name.removeprefix(prefix)
        if name in edits:
            key_used, new = name, edits[name]
            if isinstance(value, torch.Tensor) and new.shape != value.shape:
                raise ValueError(f"edit of {key}: shape {tuple(new.shape)} is not"
                                 f" {tuple(value.shape)}")  # fmt: skip
            out[key] = new.to(value.dtype) if isinstance(value, torch.Tensor) else new
            used.add(key_used)
        else:
            out[key] = value
    return out


def _write_file(src: Path, dst: Path, edits: Mapping[str, torch.Tensor], used: set[str]) -> None:
    suffix = src.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(src), framework="pt", device="cpu") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        out = {k: v.contiguous().clone() for k, v in _replace(tensors, edits, used).items()}
        with atomic_output(dst) as tmp:
            save_file(out, str(tmp), metadata=meta)
        return
    if suffix in TORCH_SUFFIXES:
        obj = _torch_load(src, src)
        if not isinstance(obj, dict):
            raise CheckpointError(f"{src}: holds a {type(obj).__name__}, not a state_dict")
        inner = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            obj = _replace(obj, edits, used)
        else:
            obj = {**obj, inner: _replace(obj[inner], edits, used)}
        with atomic_output(dst) as tmp:
            torch.save(obj, tmp)
        return
    raise CheckpointError(f"{src}: cannot write a {suffix!r} checkpoint back")


def write_edited(source: str | os.PathLike[str], output: str | os.PathLike[str],
                 edits: Mapping[str, torch.Tensor]) -> list[Path]:  # fmt: skip
    """Copy the checkpoint ``source`` to ``output`` in its format, with the tensors named in
    ``edits`` (state_dict key → tensor of the same shape; cast to the stored dtype) replaced.
    A file goes to a file of the same suffix, a folder to a folder. Returns the weights files
    written; ``ValueError`` naming the key of an edit that matches no tensor."""
    src, dst = Path(source), Path(output)
    used: set[str] = set()
    written = []
    if src.is_dir():
        store = open_checkpoint(src)
        if not isinstance(store, TensorStore):
            raise CheckpointError(f"{src}: cannot write this checkpoint folder back")
        if dst.resolve() == src.resolve():
            raise ValueError(f"{dst}: the output must not be the input folder")
        dst.mkdir(parents=True, exist_ok=True)
        weights = {f.resolve() for f in store.files}
        for f in sorted(src.iterdir()):
            if f.resolve() in weights:
                _write_file(f, dst / f.name, edits, used)
                written.append(dst / f.name)
            elif f.is_file():
                shutil.copy2(f, dst / f.name)
    else:
        if src.suffix.lower() != dst.suffix.lower():
            raise ValueError(f"{dst}: the output must have the input's suffix {src.suffix!r}")
        _write_file(src, dst, edits, used)
        written.append(dst)
    unused = sorted(set(edits) - used)
    if unused:
        raise ValueError(f"{src}: edits for tensors it does not hold: {', '.join(unused[:5])}")
    return written
