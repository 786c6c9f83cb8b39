"""Reading model weights from checkpoint files, with errors that name the file.

:func:`open_checkpoint` is what :func:`htsr.analyze` reads a path with: a lazy mapping
(:class:`TensorStore`) that reads one tensor at a time, so the memory of analysing a checkpoint
stays near its largest tensor, not its size. It takes a file, a folder in the Hugging Face hub's
layout (``model.safetensors`` or ``pytorch_model.bin``, or a shard index
``*.index.json`` and its shards, beside ``config.json``), a shard index, the manifest of a hub
download (``*.hf.json``, :mod:`htsr.sources.hf`) or an ``hf://OWNER/REPO[@REVISION]`` address.
``.safetensors`` files are read with ``safetensors.safe_open``; ``.bin``/``.pth``/``.pt``
files with ``torch.load(mmap=True, weights_only=True)`` (tensors stay in the file's pages; a
legacy-format file, which cannot be memory-mapped, is read whole), one file open at a time.

:func:`load_state_dict` reads a whole file into a dict.

Pickles are read with torch's ``weights_only`` loader. A file it refuses because the pickle
names other classes (an mmengine checkpoint: a ``state_dict`` beside ``meta`` with numpy arrays
and ``message_hub`` with mmengine's own objects) is read by :func:`safe_load`, which turns every
such class into an inert placeholder, never imported and never called: no code from a
checkpoint ever runs, and the standard unpickler is never used.

Supported: PyTorch pickles (``.pth``, ``.pt``, ``.bin``) holding a state_dict, or a dict holding
one under ``state_dict`` or ``model``, read with ``torch.load(weights_only=True)`` (no arbitrary
code runs); the same inside a ``.zip`` that holds one such file (the OSMR model store's
``*.pth.zip``, read from the archive into memory, never unpacked to disk); and ``.safetensors``
files. Anything else, or a file that is missing, truncated or not a checkpoint, raises
:class:`CheckpointError` (a ``ValueError``) whose message names the file and what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from htsr.sources.hf import WEIGHT_FILES as HUB_WEIGHT_FILES

#: Name parts of output heads stored as their own matrix (``lm_head``, Pythia's ``embed_out``);
#: :mod:`htsr.spectra` treats them as dense matrices unless tied to an embedding.
OUTPUT_HEADS: tuple[str, ...] = ("lm_head", "embed_out")

# HUB_WEIGHT_FILES: the weights files of a folder in the hub's layout, in the order they are
# looked for: the hf source's list, so a folder is read the way a download of it chooses.

#: torch.save files; CompressAI names them `.pth.tar`, Lightning `.ckpt` (not tar archives).
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
ZIP_SUFFIXES = (".zip",)
#: Keys under which training checkpoints commonly nest the state_dict.
NESTED_KEYS = ("state_dict", "model")


#: safetensors' dtype codes (its header's ``dtype`` field) as torch dtypes.
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
}  # fmt: skip


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
    allows it (a legacy-format file does not: it is read whole); errors name ``where``."""
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

    Keys come in the checkpoint's order: for ``.bin``/``.pth`` shards the order they were saved
    in (the modules' order), shard by shard; safetensors files do not keep an order (the format
    sorts its keys), so theirs are put in natural order (``layers.2`` before ``layers.10``),
    output heads last, the same for one file or several shards. ``store[key]`` reads that
    tensor from its file when asked, and nothing is kept: iterating ``store.items()`` holds one
    tensor at a time (plus the memory map of the open ``.bin`` shard). ``config`` is the
    checkpoint's ``config.json`` ({} when there is none). Build one with
    :func:`open_checkpoint`.
    """

    def __init__(self, files: list[Path], *, config: Mapping[str, Any] | None = None,
                 name: str = "") -> None:  # fmt: skip
        self.files = [Path(f) for f in files]
        self.config = dict(config or {})
        self.name = name or str(self.files[0])
        self._where: dict[str, int] = {}
        self._open: tuple[int, Any] | None = None
        self._safe: dict[int, Any] = {}
        for i, path in enumerate(self.files):
            for key in self._keys(i, path):
                self._where.setdefault(key, i)
        if not self._where:
            raise CheckpointError(f"{self.name}: contains no tensors")
        self._order = list(self._where)
        if all(f.suffix.lower() in SAFETENSORS_SUFFIXES for f in self.files):
            self._order.sort(key=_natural_key)

    def _keys(self, i: int, path: Path) -> list[str]:
        if not path.is_file():
            raise CheckpointError(f"{path}: file not found")
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            return list(self._handle(i).keys())
        return list(self._handle(i))

    def _handle(self, i: int) -> Any:
        """The open file ``i``: a ``safe_open`` handle (kept: a memory map) or a memory-mapped
        state_dict (one ``.bin`` shard open at a time)."""
        path = self.files[i]
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            if i not in self._safe:
                from safetensors import SafetensorError, safe_open

                try:
                    self._safe[i] = safe_open(str(path), framework="pt", device="cpu")
                except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
                    raise CheckpointError(
                        f"{path}: not a readable safetensors file ({exc})"
                    ) from exc
            return self._safe[i]
        if self._open is not None and self._open[0] == i:
            return self._open[1]
        self._open = None  # release the previous shard before opening the next
        if path.suffix.lower() in TORCH_SUFFIXES:
            handle = _tensor_dict(_torch_load(path, path, mmap=True), path)
        else:
            raise CheckpointError(
                f"{path}: unsupported checkpoint suffix {path.suffix!r} in {self.name}"
            )
        self._open = (i, handle)
        return handle

    def __getitem__(self, key: str) -> torch.Tensor:
        i = self._where[key]
        handle = self._handle(i)
        if isinstance(handle, Mapping):
            return handle[key]
        try:
            return handle.get_tensor(key)
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{self.files[i]}: tensor {key!r} unreadable ({exc})") from exc

    def meta(self, key: str) -> torch.Tensor:
        """Tensor ``key``'s shape and dtype as a tensor on the ``meta`` device, read from the
        file's header (safetensors) or the memory-mapped pickle (``.bin``), its data never
        touched: what :func:`htsr.spectral.describe.describe` reads."""
        i = self._where[key]
        handle = self._handle(i)
        if isinstance(handle, Mapping):
            t = handle[key]
            return torch.empty(t.shape, dtype=t.dtype, device="meta")
        sl = handle.get_slice(key)
        code = sl.get_dtype()
        dtype = SAFETENSORS_DTYPES.get(code)
        if dtype is None:
            raise CheckpointError(f"{self.files[i]}: tensor {key!r} has dtype {code}, unknown")
        return torch.empty(sl.get_shape(), dtype=dtype, device="meta")

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


_HF_URI = re.compile(r"^hf://")


def open_checkpoint(path: str | os.PathLike[str]) -> Mapping[str, torch.Tensor]:
    """A lazy name → tensor mapping of the checkpoint at ``path`` (see the module docstring).

    ``.zip`` files (the OSMR store's) are read whole into a dict. Raises
    :class:`CheckpointError` naming the file for anything missing or unreadable.
    """
    text = os.fspath(path)
    if _HF_URI.match(text):
        from htsr.sources import hf

        return open_checkpoint(hf.fetch_uri(text))
    p = Path(text)
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
    if p.suffix.lower() in ZIP_SUFFIXES:
        return load_state_dict(p)
    if p.suffix.lower() in (*TORCH_SUFFIXES, *SAFETENSORS_SUFFIXES):
        return TensorStore([p])
    return load_state_dict(p)  # raises, naming the unsupported suffix
