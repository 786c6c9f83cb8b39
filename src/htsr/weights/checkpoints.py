"""Reading model weights from checkpoint files, recognised by their content, with errors that
name the file.

:func:`open_checkpoint` is what :func:`htsr.analyze` reads a path with: a lazy mapping
(:class:`TensorStore`) that reads one tensor at a time, so the memory of analysing a checkpoint
stays near its largest tensor, not its size. It takes a file, a folder in the Hugging Face hub's
layout (``model.safetensors`` or ``pytorch_model.bin``, or a shard index
``*.index.json`` and its shards, beside ``config.json``), a shard index or the manifest of a hub
download (``*.hf.json``, :mod:`htsr.weights.sources.hf`). An ``hf://OWNER/REPO[@REVISION]``
address is downloaded first, one stage up (:func:`htsr.weights.analysis.open_weights`).
``.safetensors`` files are read with ``safetensors.safe_open``; ``.bin``/``.pth``/``.pt``
files with ``torch.load(mmap=True, weights_only=True)`` (tensors stay in the file's pages; a
legacy-format file, which cannot be memory-mapped, is read whole), one file open at a time.

:func:`load_state_dict` reads a whole file into a dict.

A file's format comes from its first bytes, never from its name (:func:`detect_format`, one
row of :data:`FORMATS` per format; the suffix is only a hint in error messages):

``safetensors``
    an 8-byte little-endian header length, then a JSON header (``{``): read lazily with
    ``safetensors.safe_open``;
``torchscript``
    a ``torch.jit.save`` archive: refused (it holds a program, not a state_dict);
``torch-zip``
    a ``torch.save`` zip archive (PyTorch >= 1.6; a ``*/data.pkl`` member): read with
    ``torch.load(mmap=True, weights_only=True)``, tensors staying in the file's pages;
``torch-legacy``
    a legacy ``torch.save`` pickle (PyTorch < 1.6: the pickled magic number
    ``0x1950a86a20f9469cfc6c`` first): read whole with ``torch.load(weights_only=True)``;
``zip``
    any other zip archive holding exactly one member that is itself a checkpoint (the OSMR
    store's ``*.pth.zip``, latent-diffusion's ``kl-f8.zip``): that member is read from the
    archive into memory, never unpacked to disk.

So ``.th``, ``.pt.tar``, ``.model``, ``.ckpt`` or no suffix at all read the same as ``.pth``.
Inside a file, the state_dict is found under the wrappers people publish
(:data:`WRAPPER_KEYS`, tried in order: ``state_dict``, ``model_state_dict``, ``model``,
``net``, ``ema``, ``state_dict_ema``, ``model_ema``; nested wrappers too), and
DataParallel's ``module.`` prefix (or ``torch.compile``'s ``_orig_mod.``) is stripped when
every tensor name carries it.

Pickles are read with torch's ``weights_only`` loader. A file it refuses because the pickle
names other classes (an mmengine checkpoint: a ``state_dict`` beside ``meta`` with numpy arrays
and ``message_hub`` with mmengine's own objects) is read by :func:`safe_load`, which turns every
such class into an inert placeholder, never imported and never called: no code from a
checkpoint ever runs, and the standard unpickler is never used.

Anything else, or a file that is missing, truncated or holds no tensors, raises
:class:`CheckpointError` (a ``ValueError``) whose message names the file and what was found
there (its first bytes, a zip's members, a pickle's top-level keys).
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from htsr.spectral.matrices import OUTPUT_HEADS
from htsr.weights import formats as _formats
from htsr.weights.errors import CheckpointError
from htsr.weights.hub import WEIGHT_FILES as HUB_WEIGHT_FILES

# HUB_WEIGHT_FILES: the weights files of a folder in the hub's layout, in the order they are
# looked for: the hf source's list, so a folder is read the way a download of it chooses.

#: Suffixes that *hint* at a torch.save file (CompressAI names them `.pth.tar`, Lightning
#: `.ckpt`, AllenNLP `.th`): used to pick a folder's weights file and in error messages only.
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".ckpt", ".th", ".model")
SAFETENSORS_SUFFIXES = (".safetensors",)
ZIP_SUFFIXES = (".zip",)
#: Keys under which published checkpoints nest the state_dict, in the order they are tried:
#: the trained weights first, their exponential moving average (timm's ``state_dict_ema``)
#: only when nothing else holds tensors.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "ema", "state_dict_ema",
                "model_ema")  # fmt: skip
#: Prefixes stripped when every tensor name carries one: ``nn.DataParallel``'s and
#: ``DistributedDataParallel``'s ``module.``, ``torch.compile``'s ``_orig_mod.``.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: How many leading bytes :func:`detect_format` reads.
HEAD_BYTES = _formats.HEADER_BYTES  # enough for every format's test (a Keras zip's first member)
#: A legacy torch.save file starts with this number, pickled (``torch.serialization``).
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_MAGIC_PICKLED = b"\x8a\x0a" + TORCH_LEGACY_MAGIC.to_bytes(10, "little")


# ---------------------------------------------------------------------------- formats


@dataclass
class Probe:
    """What a format's test looks at: the first :data:`HEAD_BYTES` bytes, the size, and (read
    on demand) the member names of a zip archive (None: not a readable zip)."""

    head: bytes
    size: int
    source: Path | io.BytesIO

    @functools.cached_property
    def zip_names(self) -> list[str] | None:
        if not self.head.startswith(b"PK\x03\x04"):
            return None
        try:
            if isinstance(self.source, io.BytesIO):
                self.source.seek(0)
            with zipfile.ZipFile(self.source) as zf:
                return [i.filename for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            return None


@dataclass(frozen=True)
class CheckpointFormat:
    """One row of :data:`FORMATS`.

    ``test(probe) -> bool`` says whether a file is in this format from its content;
    ``read(source, where) -> object`` reads the whole file (a path or the bytes of a zip member)
    into the object it holds (a state_dict or a wrapper of one), raising
    :class:`CheckpointError` naming ``where``; ``open(path) -> Mapping`` (optional) opens a
    file lazily, tensors read when asked (:class:`TensorStore` uses it when given).
    """

    name: str
    description: str
    test: Callable[[Probe], bool]
    read: Callable[[Path | io.BytesIO, str], object]
    open: Callable[[Path], Mapping[str, Any]] | None = None
    native: bool = False  # read gives the final name -> tensor mapping (no wrappers to look in)


def _is_safetensors(probe: Probe) -> bool:
    if len(probe.head) < 10:
        return False
    n = int.from_bytes(probe.head[:8], "little")
    return 2 <= n <= probe.size - 8 and probe.head[8:9] == b"{"


def _is_torchscript(probe: Probe) -> bool:
    names = probe.zip_names or []
    return any(n.endswith("/data.pkl") for n in names) and any(
        n.endswith("/constants.pkl") or "/code/" in n for n in names
    )


def _is_torch_zip(probe: Probe) -> bool:
    return any(re.fullmatch(r"[^/]+/data\.pkl", n) for n in probe.zip_names or [])


def _is_torch_legacy(probe: Probe) -> bool:
    return probe.head[:1] == b"\x80" and _LEGACY_MAGIC_PICKLED in probe.head[:32]


def _is_zip(probe: Probe) -> bool:
    return probe.zip_names is not None


def _read_safetensors(source: Path | io.BytesIO, where: str) -> object:
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file

    try:
        if isinstance(source, io.BytesIO):
            return load(source.getvalue())
        return load_file(str(source), device="cpu")
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{where}: not a readable safetensors file ({exc})") from exc


#: safetensors' dtype codes (its header's ``dtype`` field) as torch dtypes.
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
}  # fmt: skip


def _open_safetensors(path: Path) -> Mapping[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        return _SafetensorsFile(safe_open(str(path), framework="pt", device="cpu"), path)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


class _SafetensorsFile(Mapping[str, torch.Tensor]):
    """A ``safe_open`` handle as a mapping; a tensor is read when asked for."""

    flat = True  # a safetensors file is a flat name -> tensor map: no wrappers to look into

    def __init__(self, handle: Any, path: Path) -> None:
        self.handle, self.path, self._keys = handle, path, list(handle.keys())

    def meta(self, key: str) -> torch.Tensor:
        """Tensor ``key``'s shape and dtype from the file's header, as a ``meta`` tensor."""
        sl = self.handle.get_slice(key)
        dtype = SAFETENSORS_DTYPES.get(sl.get_dtype())
        if dtype is None:
            raise CheckpointError(f"{self.path}: tensor {key!r} has dtype {sl.get_dtype()}")
        return torch.empty(sl.get_shape(), dtype=dtype, device="meta")

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        try:
            return self.handle.get_tensor(key)
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{self.path}: tensor {key!r} unreadable ({exc})") from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _read_torch(source: Path | io.BytesIO, where: str) -> object:
    return _torch_load(source, where)


def _open_torch_zip(path: Path) -> Mapping[str, Any]:
    obj = _torch_load(path, str(path), mmap=True)
    if not isinstance(obj, Mapping):
        raise CheckpointError(_not_a_state_dict(obj, str(path)))
    return obj


def _refuse_torchscript(source: Path | io.BytesIO, where: str) -> object:
    raise CheckpointError(
        f"{where}: a TorchScript archive (torch.jit.save): it holds a program, not a state_dict;"
        " save the model's state_dict() with torch.save and analyse that"
    )


def _read_zip_member(source: Path | io.BytesIO, where: str) -> object:
    """The checkpoint inside a zip: its only member, or the only member whose content is a
    checkpoint, read into memory and through its own format's reader."""
    try:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        with zipfile.ZipFile(source) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()
                     and not i.filename.startswith("__MACOSX/")]  # fmt: skip
            found = {}
            for name in names:
                with zf.open(name) as fh:
                    head = fh.read(HEAD_BYTES)
                    if head.startswith(b"PK\x03\x04"):  # a zip's members tell what it is
                        head += fh.read()
                probe = Probe(head[:HEAD_BYTES], zf.getinfo(name).file_size, io.BytesIO(head))
                fmt = _match(probe, members=False)
                if fmt is not None:
                    found[name] = fmt
            if len(found) != 1:
                raise CheckpointError(
                    f"{where}: a zip archive, expected exactly one checkpoint file in it, found"
                    f" {len(found)} ({', '.join(names[:10]) or 'no files'}"
                    f"{', ...' if len(names) > 10 else ''})"
                )
            ((member, fmt),) = found.items()
            data = io.BytesIO(zf.read(member))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise CheckpointError(f"{where}: not a readable checkpoint zip ({exc})") from exc
    return fmt.read(data, f"{where} (member {member})")


def _foreign(fmt: _formats.Format) -> CheckpointFormat:
    """A row for one of :mod:`htsr.weights.formats`' readers (ONNX, Keras, GGUF, Flax): its
    ``sniff`` on the first bytes, and only for a format that ``looks_inside`` (Keras: a zip's
    or HDF5 file's members) on the file itself; its reader gives the final name → tensor
    mapping (in torch's layout), so ``native`` is set."""

    def test(probe: Probe) -> bool:
        if not (isinstance(probe.source, Path) and fmt.sniff(probe.head)):
            return False
        return not fmt.looks_inside or fmt.sniff(probe.source)

    def read(source: Path | io.BytesIO, where: str) -> object:
        if not isinstance(source, Path):
            raise CheckpointError(f"{where}: a {fmt.name} file inside a zip is not read")
        return fmt.read(source)

    return CheckpointFormat(fmt.name, f"a {fmt.name} file", test, read, native=True)


#: The formats :func:`detect_format` recognises, tried in order (the first whose test passes).
#: Another format is one more row: a test on the :class:`Probe`, a reader, a lazy opener.
FORMATS: list[CheckpointFormat] = [
    CheckpointFormat(
        "safetensors", "a safetensors file", _is_safetensors, _read_safetensors, _open_safetensors
    ),  # fmt: skip
    CheckpointFormat("torchscript", "a TorchScript archive", _is_torchscript, _refuse_torchscript),
    CheckpointFormat(
        "torch-zip", "a torch.save zip archive", _is_torch_zip, _read_torch, _open_torch_zip
    ),  # fmt: skip
    CheckpointFormat("torch-legacy", "a legacy torch.save pickle", _is_torch_legacy, _read_torch),
    *(_foreign(f) for f in _formats.FORMATS),
    CheckpointFormat("zip", "a zip archive holding a checkpoint", _is_zip, _read_zip_member),
]

#: Content that is recognisably *not* a checkpoint, for the error message: (prefix, what).
_NOT_CHECKPOINTS = (
    (b"version https://git-lfs", "a Git LFS pointer, not the file it points to"),
    (b"<!DOCTYPE html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"\x93NUMPY", "a numpy .npy array"),
    (b"\x1f\x8b", "a gzip stream"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"PK\x03\x04", "a zip archive whose directory is unreadable (truncated?)"),
    (b"\x80", "a Python pickle without torch.save's header"),
    (b"{", "JSON or text"),
)
_HINTS = {**dict.fromkeys(TORCH_SUFFIXES, "PyTorch checkpoint"),
          **dict.fromkeys(SAFETENSORS_SUFFIXES, "safetensors file"),
          **dict.fromkeys(ZIP_SUFFIXES, "checkpoint zip")}  # fmt: skip


def _probe(source: Path | io.BytesIO) -> Probe:
    if isinstance(source, io.BytesIO):
        return Probe(source.getvalue()[:HEAD_BYTES], len(source.getbuffer()), source)
    with open(source, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    return Probe(head, source.stat().st_size, source)


def _match(probe: Probe, *, members: bool = True) -> CheckpointFormat | None:
    for fmt in FORMATS:
        if fmt.name == "zip" and not members:
            continue  # a zip inside a zip: not looked into
        if fmt.test(probe):
            return fmt
    return None


def _unrecognised(path: Path | str, probe: Probe) -> str:
    """The error for a file no row of :data:`FORMATS` recognises: what its bytes look like."""
    head = probe.head
    what = next((w for prefix, w in _NOT_CHECKPOINTS if head.startswith(prefix)), "")
    if not head:
        what = "an empty file"
    hint = _HINTS.get(Path(str(path)).suffix.lower(), "checkpoint")
    known = ", ".join(f.description for f in FORMATS)
    return (f"{path}: not a readable {hint}: {what + ', ' if what else ''}first bytes"
            f" {head[:16]!r} (recognised: {known})")  # fmt: skip


def detect_format(path: str | os.PathLike[str]) -> str:
    """The name of the checkpoint format of the file ``path``, from its content.

    One of the names in :data:`FORMATS` (``safetensors``, ``torchscript``, ``torch-zip``,
    ``torch-legacy``, ``zip``), whatever the file's suffix. Raises :class:`CheckpointError`
    naming the file when it is missing, not a regular file, or none of these (the message says
    what its first bytes look like).

    >>> import torch, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.th")
    >>> torch.save({"w": torch.ones(2, 2)}, path)
    >>> detect_format(path)
    'torch-zip'
    """
    return _detect(Path(path)).name


def _detect(path: Path) -> CheckpointFormat:
    if not path.exists():
        raise CheckpointError(f"{path}: file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    try:
        probe = _probe(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from exc
    fmt = _match(probe)
    if fmt is None:
        raise CheckpointError(_unrecognised(path, probe))
    return fmt


# ------------------------------------------------------------------- finding the state_dict


def _not_a_state_dict(obj: object, where: str) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in list(obj)[:12]]
        more = ", ..." if len(obj) > 12 else ""
        return (f"{where}: contains no tensors (top-level keys: {', '.join(keys)}{more};"
                f" looked for a state_dict under {', '.join(WRAPPER_KEYS)})")  # fmt: skip
    kind = obj.origin if isinstance(obj, Inert) else type(obj).__name__
    return f"{where}: holds a {kind}, not a state_dict (a mapping of tensors)"


def _has_tensors(obj: Mapping[str, Any]) -> bool:
    if getattr(obj, "flat", False):
        return len(obj) > 0
    return any(isinstance(v, torch.Tensor) for v in obj.values())


def _find_state_dict(obj: object, depth: int = 3) -> Mapping[str, Any] | None:
    """The state_dict in ``obj``: under the first wrapper key holding one (nested up to
    ``depth`` deep), else ``obj`` itself if it holds tensors; None if there is none."""
    if not isinstance(obj, Mapping):
        return None
    if depth > 0 and not getattr(obj, "flat", False):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                found = _find_state_dict(inner, depth - 1)
                if found is not None:
                    return found
    return obj if _has_tensors(obj) else None


def _prefix(keys: list[str]) -> str:
    """The wrapper prefix every key carries (:data:`WRAPPER_PREFIXES`), or ''."""
    for prefix in WRAPPER_PREFIXES:
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return ""


def _state_dict_keys(obj: object, where: str) -> tuple[Mapping[str, Any], dict[str, str]]:
    """The state_dict in ``obj`` and its tensors' names: public name -> name in the file."""
    inner = _find_state_dict(obj)
    if inner is None:
        raise CheckpointError(_not_a_state_dict(obj, where))
    flat = getattr(inner, "flat", False)
    keys = [str(k) for k, v in inner.items() if isinstance(v, torch.Tensor)] if not flat else [
        str(k) for k in inner]  # fmt: skip
    prefix = _prefix(keys)
    return inner, {k[len(prefix) :]: k for k in keys}


def _tensor_dict(obj: object, path: Path | str) -> dict[str, torch.Tensor]:
    """The name -> tensor entries of the state_dict in a loaded object (wrappers unwrapped,
    a DataParallel prefix stripped)."""
    inner, names = _state_dict_keys(obj, str(path))
    return {name: inner[raw] for name, raw in names.items()}


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the state_dict (name → tensor, on CPU, file order) stored in ``path``.

    The format is recognised from the content (:func:`detect_format`), the state_dict found
    inside the usual wrappers (:data:`WRAPPER_KEYS`, :data:`WRAPPER_PREFIXES`). Raises
    :class:`CheckpointError` naming ``path`` when the file is missing, is not a regular file,
    is in no recognised format, is truncated/corrupt, or holds no tensors.
    """
    p = Path(path)
    fmt = _detect(p)
    if fmt.native:
        return dict(fmt.read(p, str(p)))
    return _tensor_dict(fmt.read(p, str(p)), p)


class Inert:
    """Stand-in for a class a checkpoint's pickle names that is not plain data.

    :func:`safe_load` never imports such a class and never calls it: the pickle gets this
    inert object instead, holding only the name and the arguments it was built with
    (``origin``, ``args``, ``state``). mmengine's ``HistoryBuffer`` in a ``message_hub``, numpy
    arrays in ``meta`` and a malicious ``os.system`` all become one of these.
    """

    origin = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.origin}>"


def _allowed_globals() -> dict[str, Any]:
    """What torch's ``weights_only`` unpickler allows: tensor rebuilders, dtypes, ``OrderedDict``
    and a few builtins (``torch._weights_only_unpickler``'s own list)."""
    from torch import _weights_only_unpickler

    return dict(_weights_only_unpickler._get_allowed_globals())


def _safe_pickle_module() -> Any:
    import pickle
    import types

    allowed = _allowed_globals()
    inert: dict[str, type] = {}

    class SafeUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            key = f"{module}.{name}"
            if key in allowed:
                return allowed[key]
            if key not in inert:  # never imported, never called: a named placeholder
                inert[key] = type(name, (Inert,), {"origin": key, "__module__": __name__})
            return inert[key]

    def load(file: Any, **kwargs: Any) -> Any:
        return SafeUnpickler(file, **kwargs).load()

    module = types.ModuleType("htsr_safe_pickle")
    module.Unpickler = SafeUnpickler  # type: ignore[attr-defined]
    module.load = load  # type: ignore[attr-defined]
    module.__dict__.update(HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL)
    return module


def safe_load(source: str | os.PathLike[str] | io.BytesIO) -> object:
    """Read a PyTorch pickle without running any code from it.

    Tensors and plain containers come back as torch's ``weights_only`` loader reads them; any
    other class the pickle names (mmengine's ``HistoryBuffer``, numpy's array reconstructor,
    ``os.system``) becomes an :class:`Inert` placeholder, never imported and never called.
    There is no fallback to the standard unpickler. Used for checkpoints that ``weights_only``
    refuses, e.g. mmengine checkpoints (a ``state_dict`` beside ``meta`` and ``message_hub``).
    """
    return torch.load(source, map_location="cpu", weights_only=False,
                      pickle_module=_safe_pickle_module())  # fmt: skip


def _torch_load(source: Path | io.BytesIO, where: object, *, mmap: bool = False) -> object:
    """``torch.load(source, weights_only=True)`` on CPU, memory-mapped if ``mmap`` and the file
    allows it (a legacy-format file does not: it is read whole); errors name ``where``.

    torch.load reads a path ending in ``.safetensors`` as safetensors whatever its content, so
    such a path is read through an open file (not memory-mapped)."""
    if isinstance(source, Path) and source.name.endswith(".safetensors"):
        with open(source, "rb") as fh:
            return _torch_load(io.BytesIO(fh.read()), where)
    try:
        if mmap:
            try:
                return torch.load(source, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
            except pickle.UnpicklingError:
                pass  # objects weights_only refuses: read below, inertly
        try:
            return torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights_only" not in str(exc) and "global" not in str(exc).lower():
                raise
            if isinstance(source, io.BytesIO):
                source.seek(0)
            return safe_load(source)  # classes other than tensors: inert placeholders
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{where}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first})"
        ) from exc


class TensorStore(Mapping[str, torch.Tensor]):
    """A read-only name → tensor mapping over one or several checkpoint files (shards).

    Keys come in the checkpoint's order: for torch.save shards the order they were saved in
    (the modules' order), shard by shard; safetensors files do not keep an order (the format
    sorts its keys), so theirs are put in natural order (``layers.2`` before ``layers.10``),
    output heads last, the same for one file or several shards. ``store[key]`` reads that
    tensor from its file when asked, and nothing is kept: iterating ``store.items()`` holds one
    tensor at a time (plus the memory map of the open torch shard). Each file's format comes
    from its content (:func:`detect_format`): safetensors and torch zip archives are opened
    lazily, other formats read whole. ``config`` is the checkpoint's ``config.json`` ({} when
    there is none). Build one with :func:`open_checkpoint`.
    """

    def __init__(self, files: list[Path], *, config: Mapping[str, Any] | None = None,
                 name: str = "") -> None:  # fmt: skip
        self.files = [Path(f) for f in files]
        self.config = dict(config or {})
        self.name = name or str(self.files[0])
        self._where: dict[str, tuple[int, str]] = {}  # name -> (file, name in the file)
        self._open: tuple[int, Mapping[str, Any]] | None = None
        self._safe: dict[int, Mapping[str, Any]] = {}
        self.formats = [_detect(f) for f in self.files]
        for i in range(len(self.files)):
            for key, raw in self._names(i).items():
                self._where.setdefault(key, (i, raw))
        if not self._where:
            raise CheckpointError(f"{self.name}: contains no tensors")
        self._order = list(self._where)
        if all(f.name == "safetensors" for f in self.formats):
            self._order.sort(key=_natural_key)

    def _names(self, i: int) -> dict[str, str]:
        return _state_dict_keys(self._handle(i), str(self.files[i]))[1]

    def _handle(self, i: int) -> Mapping[str, Any]:
        """The open file ``i``: a safetensors handle (kept: a memory map), or the object of a
        torch file (one open at a time; memory-mapped when its format allows)."""
        fmt, path = self.formats[i], self.files[i]
        if fmt.name == "safetensors":
            if i not in self._safe:
                self._safe[i] = _open_safetensors(path)
            return self._safe[i]
        if self._open is not None and self._open[0] == i:
            return self._open[1]
        self._open = None  # release the previous shard before opening the next
        obj = fmt.open(path) if fmt.open is not None else fmt.read(path, str(path))
        handle = _find_state_dict(obj)
        if handle is None:
            raise CheckpointError(_not_a_state_dict(obj, str(path)))
        self._open = (i, handle)
        return handle

    def __getitem__(self, key: str) -> torch.Tensor:
        i, raw = self._where[key]
        return self._handle(i)[raw]

    def meta(self, key: str) -> torch.Tensor:
        """Tensor ``key``'s shape and dtype as a tensor on the ``meta`` device, from the file's
        header (safetensors) or the memory-mapped pickle, its data never touched: what
        :func:`htsr.weights.describe.describe` reads."""
        i, raw = self._where[key]
        handle = self._handle(i)
        if hasattr(handle, "meta"):
            return handle.meta(raw)
        t = handle[raw]
        return torch.empty(t.shape, dtype=t.dtype, device="meta")

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._where)

    def __repr__(self) -> str:
        return f"TensorStore({self.name!r}, {len(self)} tensors in {len(self.files)} file(s))"


def _natural_key(key: str) -> tuple[Any, ...]:
    """Sort key: output heads last, then numbers as numbers (``h.2`` before ``h.10``)."""
    parts = re.split(r"(\d+)", key)
    head = any(p in OUTPUT_HEADS for p in key.split("."))
    return (head, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return obj


def _shard_files(index: Path) -> list[Path]:
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: a shard index without a weight_map")
    names = list(dict.fromkeys(str(v) for v in weight_map.values()))
    return [index.parent / n for n in names]


def _folder_store(folder: Path, filename: str = "") -> TensorStore:
    config_path = folder / "config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    if not filename:
        found = [n for n in HUB_WEIGHT_FILES if (folder / n).is_file()]
        if not found:
            others = sorted(
                p.name
                for p in folder.iterdir()
                if p.suffix in (*TORCH_SUFFIXES, *SAFETENSORS_SUFFIXES)
            )
            if len(others) != 1:
                raise CheckpointError(
                    f"{folder}: no weights file found (looked for {', '.join(HUB_WEIGHT_FILES)}"
                    f"{'; found several: ' + ', '.join(others) if others else ''})"
                )
            found = others
        filename = found[0]
    path = folder / filename
    files = _shard_files(path) if filename.endswith(".index.json") else [path]
    return TensorStore(files, config=config, name=str(path))


def open_checkpoint(path: str | os.PathLike[str]) -> Mapping[str, torch.Tensor]:
    """A lazy name → tensor mapping of the checkpoint at ``path`` (see the module docstring).

    A file is recognised by its content (:func:`detect_format`): safetensors files and torch
    zip archives are read lazily (:class:`TensorStore`), other formats (legacy torch pickles,
    zips holding a checkpoint) whole into a dict. Raises :class:`CheckpointError` naming the
    file for anything missing or unreadable.
    """
    p = Path(os.fspath(path))
    if not p.exists():
        raise CheckpointError(f"{p}: file not found")
    if p.is_dir():
        return _folder_store(p)
    if p.name.endswith(".hf.json"):
        manifest = _read_json(p)
        if "filename" not in manifest:
            raise CheckpointError(f"{p}: a hub manifest without a filename")
        return _folder_store(p.with_name(p.name[: -len(".json")]), manifest["filename"])
    if p.name.endswith(".index.json"):
        return _folder_store(p.parent, p.name)
    fmt = _detect(p)
    if fmt.native:
        return fmt.read(p, str(p))  # a lazy mapping that keeps how each weight is stored
    if fmt.open is not None:
        return TensorStore([p])
    return _tensor_dict(fmt.read(p, str(p)), p)
