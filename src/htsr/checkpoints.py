"""Reading model weights from checkpoint files, with errors that name the file.

Supported: PyTorch pickles (``.pth``, ``.pt``, ``.bin``) holding a state_dict, or a dict holding
one under ``state_dict`` or ``model``, read with ``torch.load(weights_only=True)`` (no arbitrary
code runs); the same inside a ``.zip`` that holds one such file (the OSMR model store's
``*.pth.zip``, read from the archive into memory, never unpacked to disk); and ``.safetensors``
files. Anything else, or a file that is missing, truncated or not a checkpoint, raises
:class:`CheckpointError` (a ``ValueError``) whose message names the file and what is wrong.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import torch

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIXES = (".safetensors",)
ZIP_SUFFIXES = (".zip",)
#: Keys under which training checkpoints commonly nest the state_dict.
NESTED_KEYS = ("state_dict", "model")


class CheckpointError(ValueError):
    """A checkpoint file could not be read as a state_dict; the message names the file."""


def _tensor_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The str → Tensor entries of a loaded object, unwrapping ``state_dict``/``model``."""
    if isinstance(obj, Mapping):
        for key in NESTED_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: holds a {type(obj).__name__}, not a state_dict (a mapping of tensors)"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: contains no tensors (keys: {list(obj)[:5]})")
    return tensors


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the state_dict (name → tensor, on CPU, file order) stored in ``path``.

    Raises :class:`CheckpointError` naming ``path`` when the file is missing, is not a regular
    file, has an unsupported suffix, is truncated/corrupt, or holds no tensors.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: file not found")
    if not p.is_file():
        raise CheckpointError(f"{p}: not a regular file")
    suffix = p.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj = load_file(str(p), device="cpu")
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{p}: not a readable safetensors file ({exc})") from exc
        return _tensor_dict(obj, p)
    if suffix in TORCH_SUFFIXES:
        return _tensor_dict(_torch_load(p, p), p)
    if suffix in ZIP_SUFFIXES:
        from htsr.osmr import zip_member

        try:
            member = zip_member(p)
            with zipfile.ZipFile(p) as zf:
                data = io.BytesIO(zf.read(member))
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
            raise CheckpointError(f"{p}: not a readable checkpoint zip ({exc})") from exc
        where = f"{p} (member {member})"
        return _tensor_dict(_torch_load(data, where), Path(where))
    raise CheckpointError(
        f"{p}: unsupported checkpoint suffix {p.suffix!r} "
        f"(expected one of {', '.join(TORCH_SUFFIXES + SAFETENSORS_SUFFIXES + ZIP_SUFFIXES)})"
    )


def _torch_load(source: Path | io.BytesIO, where: object) -> object:
    """``torch.load(source, weights_only=True)`` on CPU; errors name ``where``."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{where}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first})"
        ) from exc
