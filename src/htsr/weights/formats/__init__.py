"""Readers for the weight files other frameworks publish, recognised by their content.

One module per format, each with ``sniff(path_or_header_bytes) -> bool`` (a cheap test of the
file's first bytes, or of the file itself where the bytes cannot tell) and
``read(path) -> Weights`` (a state_dict-like mapping in torch's layouts, so that
:func:`htsr.spectral.matrices.layers_from_state_dict` treats the matrices as it treats a torch
checkpoint's: a dense weight as ``(out, in)`` under ``NAME.weight``, a convolution as
``(out, in, kh, kw)``):

========  =====================================  ==============================================
format    recognised by                          reader
========  =====================================  ==============================================
gguf      magic ``GGUF``                         :mod:`.gguf` (the ``gguf`` package)
keras     zip holding ``model.weights.h5``;      :mod:`.keras` (``h5py``, no TensorFlow)
          HDF5 in Keras 3 or legacy layout
flax      msgpack map (``flax_model.msgpack``)   :mod:`.flax` (the ``msgpack`` package)
onnx      protobuf ``ModelProto`` fields         :mod:`.onnx` (the ``onnx`` package)
========  =====================================  ==============================================

:data:`FORMATS` lists them, the strictest test first; each is a row of
:data:`htsr.weights.checkpoints.FORMATS`, so :func:`htsr.weights.checkpoints.detect_format`
names the format and ``load_state_dict``/``open_checkpoint`` read it. A reader whose package is
missing raises :class:`htsr.weights.errors.CheckpointError` naming the file and the package to
install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from htsr.weights.errors import CheckpointError

#: Bytes of a file's start handed to the ``sniff`` functions.
HEADER_BYTES = 512


class Weights(Mapping[str, torch.Tensor]):
    """A read-only name → tensor mapping whose tensors are made when asked.

    ``loaders[key]()`` returns the tensor of ``key`` (read, converted to torch's layout,
    dequantized where the format allows); nothing is kept, so iterating ``items()`` holds one
    tensor at a time. ``stored_types[key]`` names how the file stores a weight that is not read
    as floating point (a GGUF ``Q4_K``); such a tensor comes back with its logical shape on the
    ``meta`` device, and :func:`htsr.spectral.matrices.layers_from_state_dict` gives it a
    ``non_float``
    row naming that type. ``config`` is the model's configuration where the file has one.
    """

    def __init__(self, loaders: Mapping[str, Callable[[], torch.Tensor]], *, name: str,
                 stored_types: Mapping[str, str] | None = None,
                 config: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        self._loaders = dict(loaders)
        self.name = name
        self.stored_types = dict(stored_types or {})
        self.config = dict(config or {})

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._loaders[key]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return f"Weights({self.name!r}, {len(self)} tensors)"


def unique_key(key: str, taken: Mapping[str, Any] | set[str]) -> str:
    """``key``, or ``key`` with ``_1``, ``_2``, ... before its ``.weight`` if already taken."""
    if key not in taken:
        return key
    stem, dot, leaf = key.rpartition(".") if key.endswith(".weight") else (key, "", "")
    i = 1
    while f"{stem}_{i}{dot}{leaf}" in taken:
        i += 1
    return f"{stem}_{i}{dot}{leaf}"


def head(source: bytes | str | os.PathLike[str], size: int = HEADER_BYTES) -> bytes | None:
    """The first ``size`` bytes of ``source`` (bytes as given, else the file's); None when the
    file cannot be read. What each reader's ``sniff`` tests."""
    if isinstance(source, bytes):
        return source
    try:
        with open(source, "rb") as f:
            return f.read(size)
    except OSError:
        return None


def require(module: str, package: str, what: str, path: Path) -> Any:
    """Import ``module``; if it is missing, a :class:`CheckpointError` naming the file and the
    package to install (the readers' packages are optional dependencies)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CheckpointError(
            f"{path}: a {what} file; reading it needs the {package!r} package "
            f"(pip install {package}, or htsr[formats])"
        ) from exc


def to_torch_layout(kernel: torch.Tensor) -> torch.Tensor:
    """A channels-last kernel (Keras, Flax) in torch's layout.

    Dense ``(in, out)`` → ``(out, in)``; Conv1D ``(k, in, out)`` → ``(out, in, k)``; Conv2D
    ``(kh, kw, in, out)`` → ``(out, in, kh, kw)``; Conv3D ``(kd, kh, kw, in, out)`` →
    ``(out, in, kd, kh, kw)``. Other ranks come back unchanged.
    """
    n = kernel.ndim
    if n < 2 or n > 5:
        return kernel
    return kernel.permute(n - 1, n - 2, *range(n - 2)).contiguous()


class Format(NamedTuple):
    """One row of :data:`FORMATS`: a name, its magic test, its reader, and whether the test
    must also look inside the file (``looks_inside``: a Keras zip's or HDF5 file's members),
    where the first bytes alone cannot tell."""

    name: str
    sniff: Callable[[bytes | str | os.PathLike[str]], bool]
    read: Callable[[str | os.PathLike[str]], Mapping[str, torch.Tensor]]
    looks_inside: bool = False


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{name}")


def _row(name: str, *, looks_inside: bool = False) -> Format:
    return Format(name, lambda x: _module(name).sniff(x), lambda p: _module(name).read(p),
                  looks_inside)  # fmt: skip


#: The formats, strictest test first (a GGUF magic before the loose protobuf test of ONNX).
#: Only Keras's test needs more than the first bytes: its zip's or HDF5 file's members.
FORMATS: tuple[Format, ...] = (
    _row("gguf"), _row("keras", looks_inside=True), _row("flax"), _row("onnx")
)  # fmt: skip
