"""The model zoo: the table of pretrained ImageNet models, their weight files and architectures.

The table (``config/models.tsv``) has one row per pretrained model, keyed by ``model``
(torchvision: the model id, e.g. ``resnet18``; timm: timm's pretrained name
``{model_id}.{weights_tag}``, e.g. ``resnet18.gluon_in1k``). Weight files come from where the
library that defines the architecture gets them:

* torchvision rows, and rows with a ``url``: one torch.hub-style URL whose file name carries the
  first hex digits of the file's sha256 (``resnet18-f37072fd.pth``), or a ``sha256`` column;
* timm rows without a ``url``: the Hugging Face hub repository named by timm's pretrained config
  (``model.safetensors``), verified against the sha256 and size the hub reports;
* pytorchcv rows (the OSMR "sandbox" models of both papers, ``config/paper_models.tsv``): the
  model store's zip ``{name}-{error}-{sha1[:8]}.pth.zip`` of a GitHub release, kept zipped and
  verified by the store's SHA-1 of the ``.pth`` inside (:mod:`htsr.osmr`).

A row's ``weights`` key names its file, so rows of several model sets can share one.

Downloads are atomic (staged next to the destination, verified, then ``os.replace``-d), retried
with exponential backoff on connection errors and HTTP 5xx, never repeated for a file that is
already present and verified, and possible offline (``offline=True`` or ``HTSR_OFFLINE=1``) from
what is already on disk. A sidecar ``<file>.sha256`` (JSON) records what was verified, so a
present file is not rehashed while its size and mtime are unchanged.

Heavy imports (torch, torchvision, timm, huggingface_hub) happen inside the functions that need
them: reading and selecting the table needs only pandas.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from htsr import osmr
from htsr.provenance import atomic_output, sha256_file

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DownloadError",
    "ModelTableError",
    "WeightsLoadError",
    "WeightsSource",
    "build_model",
    "download_weights",
    "load_model",
    "load_weights",
    "pytorchcv_url",
    "read_model_table",
    "select_models",
    "sha256_file",
    "weights_key",
    "weights_path",
    "weights_source",
    "weights_url",
]

log = logging.getLogger(__name__)

TORCHVISION_URL_PREFIX = "https://download.pytorch.org/models/"
"""Prefix of torchvision's weight URLs; ``torchvision_base_url`` replaces it."""

HF_WEIGHTS_FILE = "model.safetensors"
"""File of a timm Hugging Face hub repository that holds the weights (what timm loads first)."""

SOURCES = ("torchvision", "timm", "pytorchcv")
REQUIRED_COLUMNS = (
    "model",
    "family",
    "model_id",
    "source",
    "weights_tag",
    "top1",
    "top5",
    "num_params",
    "set",
    "accuracy_source",
)
OPTIONAL_COLUMNS = ("eval_res", "url", "sha256", "revision", "sha1", "weights", "label", "note")
"""Optional table columns; ``read_model_table`` adds them (empty) when the file lacks them.

``weights`` names the weight file (default: the model key), so that rows of different model
sets that use the same file (the torchvision VGGs of both papers) share one download and one
spectrum; ``label`` is the name figures print (default: the key up to its first '.');
``sha1`` is the OSMR store's SHA-1 of a ``pytorchcv`` row's ``.pth``; ``note`` is free text."""

#: The columns that say which weight file a row reads and how: rows sharing a ``weights`` key
#: must agree on all of them.
WEIGHTS_IDENTITY = ("source", "model_id", "weights_tag", "url", "sha256", "sha1", "revision")

_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub.HASH_REGEX
_MODEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")

T = TypeVar("T")


class ModelTableError(ValueError):
    """The model table is malformed; the message names each bad row (line number and model)."""


class DownloadError(RuntimeError):
    """A weight file could not be fetched or verified; the message names the model and file."""


class WeightsLoadError(RuntimeError):
    """A weight file does not load into its architecture; the message names the model and file."""


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def _cell(row: Mapping[str, Any], column: str) -> str:
    """Value of an optional string cell, '' when absent or NaN."""
    value = row.get(column, "")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _pytorchcv_problems(row: Mapping[str, str]) -> list[str]:
    """A ``pytorchcv`` row must name its store file exactly as the OSMR model store does."""
    if not _SHA1.match(row["sha1"]):
        return [
            f"a pytorchcv row needs the store's sha1 (40 lowercase hex digits, got {row['sha1']!r})"
        ]
    try:
        store = osmr.parse_store_url(row["url"])
    except ValueError as err:
        return [f"a pytorchcv row's url must be its model-store URL: {err}"]
    problems = []
    expected = osmr.store_url(store.name, store.error, row["sha1"], row["weights_tag"])
    if store.name != row["model_id"] or row["url"] != expected:
        problems.append(
            f"url {row['url']!r} is not the store URL of model_id {row['model_id']!r}, release"
            f" {row['weights_tag']!r} (weights_tag) and sha1 {row['sha1'][:8]}...:"
            f" expected {expected!r}"
        )
    return problems


def _row_problems(row: Mapping[str, str], sets: Iterable[str] | None) -> list[str]:
    """Everything wrong with one table row (all cells as strings)."""
    problems = []
    for column in ("model", "weights"):
        if row[column] and not _MODEL_KEY.match(row[column]):
            problems.append(
                f"{column} key must use only letters, digits, '.', '_', '-' (got {row[column]!r})"
            )
    if not row["model"]:
        problems.append("model key is missing")
    for column in ("family", "model_id", "weights_tag", "accuracy_source", "set"):
        if not row[column]:
            problems.append(f"{column} is missing")
    if row["source"] not in SOURCES:
        problems.append(f"unknown source {row['source']!r} (expected one of {', '.join(SOURCES)})")
    known_sets = list(sets) if sets is not None else None
    if known_sets is not None and row["set"] and row["set"] not in known_sets:
        problems.append(f"unknown set {row['set']!r} (expected one of {', '.join(known_sets)})")
    for column in ("top1", "top5"):
        text = row[column]
        try:
            value = float(text)
        except ValueError:
            problems.append(f"{column} is missing or not a number ({text!r})")
            continue
        if not 0.0 < value <= 100.0:
            problems.append(f"{column} = {value} is outside (0, 100]")
    for column, required in (("num_params", True), ("eval_res", False)):
        text = row[column]
        if (text or required) and (not text.isdigit() or int(text) <= 0):
            problems.append(f"{column} is missing or not a positive integer ({text!r})")
    url = row["url"]
    if url and "://" not in url and "/" in url:
        problems.append(f"url {url!r} must be an absolute URL (scheme://...) or a bare file name")
    if url and row["source"] == "torchvision" and url.endswith(".safetensors"):
        problems.append("a torchvision row's url must name a torch.save file, not .safetensors")
    if row["sha256"] and not _SHA256.match(row["sha256"]):
        problems.append(f"sha256 must be 64 lowercase hex digits (got {row['sha256']!r})")
    if row["source"] == "pytorchcv":
        problems += _pytorchcv_problems(row)
    elif row["sha1"]:
        problems.append("sha1 is the OSMR store's checksum: only pytorchcv rows take it")
    return problems


def _read_one_table(path: Path, sets: Iterable[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """One table file and the problems of its rows; rows keep their file and line for messages."""
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ModelTableError(f"model table {path}: cannot be read: {err}") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise ModelTableError(f"model table {path}: missing column(s) {', '.join(missing)}")
    for column in OPTIONAL_COLUMNS:
        if column not in raw.columns:
            raw[column] = ""
    raw = raw.apply(lambda col: col.str.strip())
    raw["_line"] = range(2, len(raw) + 2)  # file line numbers
    raw["_file"] = str(path)
    raw = raw[(raw.drop(columns=["_line", "_file"]) != "").any(axis=1)]  # blank lines
    errors = []
    for _, row in raw.iterrows():
        problems = _row_problems(row.to_dict(), sets)
        errors += [f"line {row['_line']} (model {row['model']!r}): {p}" for p in problems]
    return raw, errors


def _where(row: Mapping[str, Any], several: bool) -> str:
    return f"{row['_file']} line {row['_line']}" if several else f"line {row['_line']}"


def _cross_row_problems(raw: pd.DataFrame, several: bool) -> list[str]:
    """Duplicate model keys, and rows that share a weight file but disagree on its source."""
    errors = []
    first: dict[str, Mapping[str, Any]] = {}
    for _, row in raw.iterrows():
        key = row["model"]
        if key in first:
            errors.append(
                f"{_where(row, several)} (model {key!r}): duplicate model key"
                f" (first on {_where(first[key], several)})"
            )
        else:
            first[key] = row
    by_weights: dict[str, Mapping[str, Any]] = {}
    for _, row in raw.iterrows():
        owner = by_weights.setdefault(row["weights"], row)
        differ = [c for c in WEIGHTS_IDENTITY if row[c] != owner[c]]
        if differ:
            errors.append(
                f"{_where(row, several)} (model {row['model']!r}): shares weights"
                f" {row['weights']!r} with model {owner['model']!r} ({_where(owner, several)})"
                f" but differs in {', '.join(differ)}"
            )
    return errors


def read_model_table(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    sets: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Read and validate the model table (tab-separated, header on line 1), or several of them.

    Returns one row per model with ``top1``/``top5`` as float (percent), ``num_params`` as int,
    ``eval_res`` as a nullable int, the other columns as strings, and the optional columns
    (:data:`OPTIONAL_COLUMNS`, '' where unset; ``weights`` defaults to the model key and
    ``label`` to the key up to its first '.'). Several paths are read into one table, in order.
    ``sets``, if given, are the allowed values of the ``set`` column.

    Raises :class:`ModelTableError` (a ``ValueError``) listing every bad row by file line number
    and model key: a duplicate key (across all files), an unknown source or set, a missing or
    non-numeric accuracy or parameter count, an accuracy outside (0, 100], a missing required
    column, a ``pytorchcv`` row whose URL is not its model-store URL, rows that share a
    ``weights`` key but name different files.
    """
    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    if not paths:
        raise ModelTableError("no model table given")
    sets = list(sets) if sets is not None else None
    several = len(paths) > 1
    tables, errors = [], []
    for path in paths:
        one, problems = _read_one_table(path, sets)
        tables.append(one)
        errors += [f"{path} {p}" if several else p for p in problems]
    raw = pd.concat(tables, ignore_index=True)
    raw["weights"] = raw["weights"].where(raw["weights"] != "", raw["model"])
    raw["label"] = raw["label"].where(raw["label"] != "", raw["model"].str.split(".").str[0])
    errors += _cross_row_problems(raw, several=several)
    if errors:
        where = paths[0] if len(paths) == 1 else ", ".join(map(str, paths))
        raise ModelTableError(f"model table {where}:\n  " + "\n  ".join(errors))
    table = raw.drop(columns=["_line", "_file"]).reset_index(drop=True)
    table["top1"] = table["top1"].astype(float)
    table["top5"] = table["top5"].astype(float)
    table["num_params"] = table["num_params"].astype("int64")
    table["eval_res"] = pd.array([int(v) if v else pd.NA for v in table["eval_res"]], dtype="Int64")
    return table


def select_models(table: pd.DataFrame, model_set: str | Iterable[str] = "core") -> pd.DataFrame:
    """Rows of ``table`` for ``model_set``, in table order.

    ``model_set`` is ``"all"`` or names (a list, or one string), each of which is a model set
    (a value of the ``set`` column, e.g. ``core`` or ``paper2019``), a model key, a family, or a
    model id (selecting every row with that id). A name that matches nothing raises
    ``ValueError`` naming it.
    """
    if isinstance(model_set, str):
        if model_set == "all":
            return table.reset_index(drop=True)
        model_set = [model_set]
    names = list(model_set)
    if not names:
        raise ValueError("model_set is an empty list; name model sets, models or families, or all")
    keep = pd.Series(False, index=table.index)
    unknown = []
    for name in names:
        hit = table["set"] == name
        if not hit.any():
            hit = (table["model"] == name) | (table["family"] == name)
        if not hit.any():
            hit = table["model_id"] == name
        if not hit.any():
            unknown.append(name)
        keep |= hit
    if unknown:
        raise ValueError(
            f"unknown model or family name(s): {', '.join(map(repr, unknown))} (expected model"
            " sets, model keys, families or model ids from the model table, or all)"
        )
    return table[keep].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Where the weights come from and where they go
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsSource:
    """Where one model's weight file comes from and how it is verified.

    ``kind`` is ``"url"`` (a single torch.hub-style URL), ``"hub"`` (a file of a Hugging Face
    hub repository) or ``"pytorchcv"`` (a zip of the OSMR model store, verified by the SHA-1 of
    the ``.pth`` inside it, ``member``). ``expected_sha256`` is the full hash from the table's
    ``sha256`` column (for a pytorchcv row: of the zip), ``hash_prefix`` the hex digits a URL's
    file name carries (``name-<hex>.ext``), ``sha1`` the store's SHA-1 of ``member``.
    """

    model: str
    kind: str
    url: str
    repo_id: str = ""
    filename: str = ""
    revision: str = ""
    expected_sha256: str = ""
    hash_prefix: str = ""
    sha1: str = ""
    member: str = ""


def _timm_name(row: Mapping[str, Any]) -> str:
    tag = _cell(row, "weights_tag")
    return f"{row['model_id']}.{tag}" if tag else str(row["model_id"])


def weights_url(row: Mapping[str, Any], base_url: str | None = None) -> str:
    """The torch.hub-style URL of a row's weight file.

    The row's ``url`` column if set (an absolute URL, or a bare file name resolved against
    ``base_url``), else torchvision's URL for the row's weights enum
    (``torchvision.models.get_weight(weights_tag).url``). ``base_url`` (default: env
    ``HTSR_TORCHVISION_URL``) replaces the ``https://download.pytorch.org/models/`` prefix, so a
    mirror (or the test server) serves the same file names.
    """
    model = row["model"]
    base = base_url or os.environ.get("HTSR_TORCHVISION_URL") or ""
    url = _cell(row, "url")
    if url and "://" not in url:
        url = urllib.parse.urljoin((base or TORCHVISION_URL_PREFIX).rstrip("/") + "/", url)
    elif not url:
        if row["source"] != "torchvision":
            raise ValueError(f"{model}: a timm row without a url column is fetched from the hub")
        import torchvision.models

        try:
            url = torchvision.models.get_weight(row["weights_tag"]).url
        except (ValueError, KeyError, AttributeError) as err:
            raise ValueError(
                f"{model}: torchvision has no weights named {row['weights_tag']!r}: {err}"
            ) from err
    if base and url.startswith(TORCHVISION_URL_PREFIX):
        url = base.rstrip("/") + "/" + url[len(TORCHVISION_URL_PREFIX) :]
    return url


def pytorchcv_url(row: Mapping[str, Any], base_url: str | None = None) -> str:
    """The model-store URL of a ``pytorchcv`` row, as pytorchcv's ``get_model_file`` builds it
    (:func:`htsr.osmr.store_url`), with ``https://github.com/osmr/imgclsmob`` replaced by
    ``base_url`` (default: env ``HTSR_PYTORCHCV_URL``) for a mirror or the test server."""
    store = osmr.parse_store_url(_cell(row, "url"))
    base = base_url or os.environ.get("HTSR_PYTORCHCV_URL") or osmr.IMGCLSMOB_REPO_URL
    return osmr.store_url(store.name, store.error, _cell(row, "sha1"), row["weights_tag"], base)


def weights_source(
    row: Mapping[str, Any],
    *,
    torchvision_base_url: str | None = None,
    hf_endpoint: str | None = None,
    pytorchcv_base_url: str | None = None,
) -> WeightsSource:
    """Resolve where a row's weights come from (see :class:`WeightsSource`).

    pytorchcv rows are ``"pytorchcv"`` sources (:func:`pytorchcv_url`); torchvision rows and
    rows with a ``url`` are ``"url"`` sources; other timm rows are ``"hub"`` sources at timm's
    ``hf_hub_id`` (file ``hf_hub_filename`` or ``model.safetensors``, revision from the
    ``revision`` column, else ``main``). A timm row whose weights timm serves from a plain URL
    (no hub id) and that has no ``url`` raises ``DownloadError`` naming that URL.
    """
    model = str(row["model"])
    expected = _cell(row, "sha256")
    if row["source"] == "pytorchcv":
        url = pytorchcv_url(row, pytorchcv_base_url)
        return WeightsSource(
            model=model,
            kind="pytorchcv",
            url=url,
            expected_sha256=expected,
            sha1=_cell(row, "sha1"),
            member=osmr.parse_store_url(url).member,
        )
    if row["source"] == "torchvision" or _cell(row, "url"):
        url = weights_url(row, torchvision_base_url)
        name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        match = _HASH_IN_NAME.search(name)
        return WeightsSource(
            model=model,
            kind="url",
            url=url,
            expected_sha256=expected,
            hash_prefix=match.group(1) if match else "",
        )
    import timm.models

    name = _timm_name(row)
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise DownloadError(f"{model}: timm {timm.__version__} has no pretrained model {name!r}")
    if not cfg.hf_hub_id:
        raise DownloadError(
            f"{model}: timm loads {name} from {cfg.url or '(no URL)'}, not from the Hugging Face"
            " hub; set this row's url column to that URL"
        )
    repo_id, _, pinned = cfg.hf_hub_id.partition("@")
    filename = cfg.hf_hub_filename or HF_WEIGHTS_FILE
    if not filename.endswith(".safetensors"):
        raise DownloadError(
            f"{model}: timm's hub file for {name} is {filename}, not a .safetensors file;"
            " set this row's url column to a torch.save file instead"
        )
    revision = _cell(row, "revision") or pinned or "main"
    from huggingface_hub import hf_hub_url

    endpoint = hf_endpoint or os.environ.get("HF_ENDPOINT") or None
    return WeightsSource(
        model=model,
        kind="hub",
        url=hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint),
        repo_id=repo_id,
        filename=filename,
        revision=revision,
        expected_sha256=expected,
    )


def weights_key(row: Mapping[str, Any]) -> str:
    """The name of a row's weight file: its ``weights`` cell, else its model key."""
    return _cell(row, "weights") or str(row["model"])


def weights_path(row: Mapping[str, Any], root: str | os.PathLike[str]) -> Path:
    """Where a row's weight file lives: ``{root}/{weights}.pth``, ``.safetensors`` or ``.pth.zip``.

    ``{weights}`` is :func:`weights_key`. ``.pth.zip`` for pytorchcv rows (the model store's
    zip, kept as downloaded); ``.safetensors`` for timm hub rows and for rows whose ``url`` names
    a ``.safetensors`` file; ``.pth`` otherwise (torch.save files: torchvision, and timm weights
    timm serves from a URL). Pure: needs no network and no torch import.
    """
    key = weights_key(row)
    if row["source"] == "pytorchcv":
        return Path(root) / f"{key}.pth.zip"
    url = _cell(row, "url")
    if url:
        name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
        suffix = ".safetensors" if name.endswith(".safetensors") else ".pth"
    else:
        suffix = ".pth" if row["source"] == "torchvision" else ".safetensors"
    return Path(root) / f"{key}{suffix}"


# --------------------------------------------------------------------------------------------
# Hashing, sidecars, staging
# --------------------------------------------------------------------------------------------


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _staging(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.staging")


def _read_sidecar(dest: Path) -> dict[str, Any] | None:
    path = _sidecar(dest)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("%s: ignoring unreadable checksum sidecar %s: %s", dest.stem, path, err)
        return None
    return record if isinstance(record, dict) else None


def _write_sidecar(dest: Path, record: dict[str, Any]) -> None:
    stat = dest.stat()
    record = {**record, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    with atomic_output(_sidecar(dest)) as tmp, open(tmp, "w") as f:
        f.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _discard(dest: Path) -> None:
    """Remove a weight file, its sidecar and any staging left by a killed download."""
    dest.unlink(missing_ok=True)
    _sidecar(dest).unlink(missing_ok=True)
    shutil.rmtree(_staging(dest), ignore_errors=True)


def _hash_ok(sha: str, src: WeightsSource, reference: str = "") -> bool:
    """Does ``sha`` match the table's full hash, else ``reference``, else the name's prefix?

    A pytorchcv zip is verified by the SHA-1 of its ``.pth`` (:func:`_zip_problem`); its own
    sha256 only when the table gives one."""
    if src.expected_sha256:
        return sha == src.expected_sha256
    if src.kind == "pytorchcv":
        return True
    if reference:
        return sha == reference
    return bool(src.hash_prefix) and sha.startswith(src.hash_prefix)


def _zip_problem(src: WeightsSource, path: Path) -> str:
    """'' if the ``.pth`` inside the zip ``path`` has the store's SHA-1, else what is wrong."""
    try:
        sha1 = osmr.member_sha1(path, src.member)
    except KeyError:
        return f"the zip holds no {src.member}"
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        return f"not a readable zip ({type(err).__name__}: {err})"
    if sha1 != src.sha1:
        return f"the {src.member} inside has sha1 {sha1}, expected the store's sha1 {src.sha1}"
    return ""


def _expected_text(src: WeightsSource, reference: str = "") -> str:
    if src.kind == "pytorchcv":
        extra = (
            f" and sha256 {src.expected_sha256} (table column sha256)"
            if src.expected_sha256
            else ""
        )
        return f"a zip whose {src.member} has sha1 {src.sha1}{extra}"
    if src.expected_sha256:
        return f"sha256 {src.expected_sha256} (table column sha256)"
    if reference:
        return f"sha256 {reference}"
    return f"a sha256 starting with {src.hash_prefix} (from the file name)"


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------


def _is_transient(err: BaseException) -> bool:
    """Connection errors, timeouts, truncated transfers and HTTP 5xx/429 are worth retrying."""
    import http.client

    from huggingface_hub.errors import HfHubHTTPError

    try:  # the HTTP client huggingface_hub uses
        import httpx2

        transport: tuple[type[BaseException], ...] = (
            httpx2.TimeoutException,
            httpx2.NetworkError,
            httpx2.RemoteProtocolError,
        )
    except ImportError:
        transport = ()
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, HfHubHTTPError) and getattr(e, "response", None) is not None:
            status = e.response.status_code
            if status >= 500 or status == 429:
                return True
        elif isinstance(e, urllib.error.HTTPError):
            if e.code >= 500 or e.code == 429:
                return True
        elif isinstance(e, urllib.error.URLError | http.client.HTTPException):
            return True
        elif isinstance(e, ConnectionError | TimeoutError):
            return True
        elif isinstance(e, transport):
            return True
        elif isinstance(e, OSError) and "Consistency check failed" in str(e):
            return True  # huggingface_hub: the transfer ended short of the announced size
        stack += [c for c in (e.__cause__, e.__context__) if c is not None]
    return False


def _with_retries(
    fn: Callable[[], T], *, model: str, what: str, url: str, retries: int, backoff_s: float
) -> T:
    """Call ``fn``; on a transient error wait ``backoff_s * 2**k`` s and retry, ``retries`` times.

    A final failure raises :class:`DownloadError` naming the model, what failed and the URL.
    """
    attempts = retries + 1
    for attempt in range(attempts):
        try:
            return fn()
        except DownloadError:
            raise
        except Exception as err:
            transient = _is_transient(err)
            if transient and attempt < retries:
                delay = backoff_s * 2**attempt
                log.warning(
                    "%s: %s %s failed (attempt %d of %d: %s: %s); retrying in %.2f s",
                    model,
                    what,
                    url,
                    attempt + 1,
                    attempts,
                    type(err).__name__,
                    err,
                    delay,
                )
                time.sleep(delay)
                continue
            tried = f"after {attempt + 1} attempts" if transient else "(not retried)"
            raise DownloadError(
                f"{model}: {what} {url} failed {tried}: {type(err).__name__}: {err}"
            ) from err
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _result(
    src: WeightsSource, dest: Path, sha: str, size: int, *, fetched: bool, commit: str | None
) -> dict[str, Any]:
    return {
        "model": src.model,
        "url": src.url,
        "path": str(dest),
        "sha256": sha,
        "size": size,
        "fetched": fetched,
        "revision": src.revision or None,
        "commit": commit,
    }


def _hub_file_info(
    src: WeightsSource, endpoint: str | None, retries: int, backoff_s: float
) -> tuple[str, int | None, str]:
    """``(sha256, size, commit)`` the hub reports for the source's file at its revision."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    info = _with_retries(
        lambda: api.model_info(src.repo_id, revision=src.revision, files_metadata=True),
        model=src.model,
        what="model info for",
        url=f"{api.endpoint}/api/models/{src.repo_id} (revision {src.revision})",
        retries=retries,
        backoff_s=backoff_s,
    )
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    sibling = siblings.get(src.filename)
    if sibling is None:
        raise DownloadError(
            f"{src.model}: hub repository {src.repo_id} (revision {src.revision}) has no"
            f" {src.filename}; it has: {', '.join(sorted(siblings)) or 'no files'}"
        )
    if sibling.lfs is None and not src.expected_sha256:
        raise DownloadError(
            f"{src.model}: the hub reports no sha256 for {src.repo_id}/{src.filename} (not an LFS"
            " file); put the expected hash in this row's sha256 column"
        )
    sha = sibling.lfs.sha256 if sibling.lfs is not None else src.expected_sha256
    size = sibling.lfs.size if sibling.lfs is not None else sibling.size
    return sha, size, info.sha or src.revision


def _check_present(
    src: WeightsSource,
    dest: Path,
    *,
    offline: bool,
    endpoint: str | None,
    retries: int,
    backoff_s: float,
) -> dict[str, Any] | None:
    """Result for a verified file already at ``dest``; None if absent or corrupt (then removed)."""
    if not dest.is_file():
        return None
    side = _read_sidecar(dest) or {}
    stat = dest.stat()
    same_file = side.get("size") == stat.st_size and side.get("mtime_ns") == stat.st_mtime_ns
    recorded = str(side.get("sha256", ""))
    sha = recorded if same_file and _SHA256.match(recorded) else ""
    reference, ref_size, commit = "", None, side.get("commit")
    if src.kind == "hub" and not src.expected_sha256:
        same_source = (
            side.get("repo_id") == src.repo_id
            and side.get("filename") == src.filename
            and src.revision in (side.get("revision"), side.get("commit"))
        )
        if same_source and _SHA256.match(recorded):
            reference = recorded  # verified against the hub when it was downloaded
        elif offline:
            raise DownloadError(
                f"{src.model}: offline, and {dest} has no checksum sidecar from a verified"
                f" download of {src.repo_id}/{src.filename}@{src.revision}, so it cannot be"
                " verified; download it once online or put its sha256 in the model table"
            )
        else:
            reference, ref_size, commit = _hub_file_info(src, endpoint, retries, backoff_s)
    elif src.kind == "url" and not (src.expected_sha256 or src.hash_prefix):
        raise DownloadError(
            f"{src.model}: cannot verify {dest}: the file name in {src.url} carries no sha256"
            " prefix (name-<hex>.pth) and the table gives no sha256"
        )
    problem = ""
    if src.kind == "pytorchcv":
        verified = side.get("sha1") == src.sha1 and side.get("member") == src.member
        problem = "" if (same_file and sha and verified) else _zip_problem(src, dest)
    size = stat.st_size
    if not sha:
        sha, size = sha256_file(dest)
    if _hash_ok(sha, src, reference) and ref_size in (None, size) and not problem:
        if not same_file or side.get("sha256") != sha or "model" not in side:
            _write_sidecar(dest, _sidecar_record(src, sha, commit, "present file"))
        log.info("%s: %s is present and verified (sha256 %s)", src.model, dest, sha)
        result = _result(src, dest, sha, size, fetched=False, commit=commit)
        if src.kind == "hub" and commit:
            from huggingface_hub import hf_hub_url

            result["url"] = hf_hub_url(
                src.repo_id, src.filename, revision=commit, endpoint=endpoint
            )
        return result
    found = problem or f"sha256 {sha}, {size} bytes"
    log.warning(
        "%s: %s is corrupt (%s; expected %s); removing it",
        src.model,
        dest,
        found,
        _expected_text(src, reference),
    )
    _discard(dest)
    if offline:
        raise DownloadError(
            f"{src.model}: offline, and {dest} was corrupt ({found}; expected"
            f" {_expected_text(src, reference)}); removed it, download it again online"
        )
    return None


def _sidecar_record(src: WeightsSource, sha: str, commit: Any, how: str) -> dict[str, Any]:
    return {
        "model": src.model,
        "kind": src.kind,
        "url": src.url,
        "repo_id": src.repo_id or None,
        "filename": src.filename or None,
        "revision": src.revision or None,
        "commit": commit,
        "sha256": sha,
        "verified": how,
        **({"sha1": src.sha1, "member": src.member} if src.kind == "pytorchcv" else {}),
    }


def _no_progress_bar() -> type:
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _Quiet(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Quiet


def _staged_download(
    src: WeightsSource,
    dest: Path,
    fetch: Callable[[Path], Any],
    *,
    url: str,
    retries: int,
    backoff_s: float,
    expected: str = "",
    expected_size: int | None = None,
    commit: str | None = None,
    check: Callable[[Path], str] | None = None,
) -> dict[str, Any]:
    """Fetch into a staging folder beside ``dest`` (``fetch(staging)`` returns the file), with
    retries; verify sha256 (and size) and ``check(file)`` (what is wrong with it, '' if
    nothing); only then move it to ``dest`` and write the sidecar. A corrupt file is deleted
    with the staging folder and nothing appears under ``dest``."""
    staging = _staging(dest)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        local = _with_retries(
            lambda: fetch(staging),
            model=src.model,
            what="download of",
            url=url,
            retries=retries,
            backoff_s=backoff_s,
        )
        sha, size = sha256_file(local)
        problem = check(Path(local)) if check is not None else ""
        if not _hash_ok(sha, src, expected) or expected_size not in (None, size) or problem:
            size_text = "" if expected_size is None else f" ({expected_size} bytes)"
            found = problem or f"sha256 {sha} ({size} bytes)"
            raise DownloadError(
                f"{src.model}: {url} arrived corrupt: {found}, expected"
                f" {_expected_text(src, expected)}{size_text};"
                f" deleted it, nothing was written to {dest}"
            )
        os.replace(local, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_sidecar(dest, _sidecar_record(src, sha, commit, "downloaded"))
    return _result(src, dest, sha, size, fetched=True, commit=commit)


def _fetch_url(
    src: WeightsSource, dest: Path, *, retries: int, backoff_s: float, progress: bool
) -> dict[str, Any]:
    import torch.hub

    if not (src.expected_sha256 or src.hash_prefix):
        raise DownloadError(
            f"{src.model}: will not download {src.url} to {dest} unverified: its file name"
            " carries no sha256 prefix (name-<hex>.pth) and the table gives no sha256"
        )

    def fetch(staging: Path) -> Path:
        part = staging / dest.name
        torch.hub.download_url_to_file(src.url, str(part), None, progress=progress)
        return part

    return _staged_download(src, dest, fetch, url=src.url, retries=retries, backoff_s=backoff_s)


def _fetch_pytorchcv(
    src: WeightsSource, dest: Path, *, retries: int, backoff_s: float, progress: bool
) -> dict[str, Any]:
    """The store's zip, kept whole: verified by the SHA-1 of the ``.pth`` inside, which is
    read from the zip as a stream (nothing is unpacked)."""
    import torch.hub

    def fetch(staging: Path) -> Path:
        part = staging / dest.name
        torch.hub.download_url_to_file(src.url, str(part), None, progress=progress)
        return part

    return _staged_download(
        src,
        dest,
        fetch,
        url=src.url,
        retries=retries,
        backoff_s=backoff_s,
        check=lambda path: _zip_problem(src, path),
    )


def _fetch_hub(
    src: WeightsSource,
    dest: Path,
    *,
    endpoint: str | None,
    retries: int,
    backoff_s: float,
    progress: bool,
) -> dict[str, Any]:
    from huggingface_hub import hf_hub_download, hf_hub_url

    expected, expected_size, commit = _hub_file_info(src, endpoint, retries, backoff_s)
    url = hf_hub_url(src.repo_id, src.filename, revision=commit, endpoint=endpoint)

    def fetch(staging: Path) -> str:
        return hf_hub_download(
            src.repo_id,
            src.filename,
            revision=commit,
            endpoint=endpoint,
            local_dir=staging,
            cache_dir=staging / ".cache",  # hermetic: no other cache is consulted
            tqdm_class=None if progress else _no_progress_bar(),
        )

    result = _staged_download(
        src,
        dest,
        fetch,
        url=url,
        retries=retries,
        backoff_s=backoff_s,
        expected=expected,
        expected_size=expected_size,
        commit=commit,
    )
    return result | {"url": url}


def download_weights(
    row: Mapping[str, Any],
    dest: str | os.PathLike[str],
    *,
    torchvision_base_url: str | None = None,
    hf_endpoint: str | None = None,
    pytorchcv_base_url: str | None = None,
    offline: bool = False,
    retries: int = 4,
    backoff_s: float = 1.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Fetch and verify one model's weight file to ``dest`` (atomically); skip it if present.

    Sources (see :func:`weights_source`): torch.hub-style URLs are fetched with
    ``torch.hub.download_url_to_file`` and verified against the sha256 prefix in the file name
    (or the table's ``sha256``); timm hub files with ``huggingface_hub.hf_hub_download`` at the
    commit ``model_info`` resolves, verified against the hub's LFS sha256 and size; OSMR store
    zips (pytorchcv rows) with ``torch.hub.download_url_to_file``, kept zipped and verified by
    the store's SHA-1 of the ``.pth`` inside.

    ``torchvision_base_url`` (default env ``HTSR_TORCHVISION_URL``) replaces
    ``https://download.pytorch.org/models/`` and resolves bare ``url`` names; ``hf_endpoint``
    (default env ``HF_ENDPOINT``) is the hub; ``pytorchcv_base_url`` (default env
    ``HTSR_PYTORCHCV_URL``) replaces ``https://github.com/osmr/imgclsmob``. ``offline`` (or env
    ``HTSR_OFFLINE=1``) uses only
    ``dest``. Connection errors and HTTP 5xx are retried ``retries`` times, waiting
    ``backoff_s * 2**k`` seconds. A file already at ``dest`` that verifies is kept; one that
    does not is removed and fetched again. A download that fails verification raises
    :class:`DownloadError` and leaves nothing at ``dest``.

    Returns ``{"model", "url", "path", "sha256", "size", "fetched", "revision", "commit"}``
    (``commit``: the hub commit the file came from, None for URL sources).
    """
    dest = Path(dest)
    offline = offline or _env_flag("HTSR_OFFLINE")
    endpoint = hf_endpoint or os.environ.get("HF_ENDPOINT") or None
    src = weights_source(
        row,
        torchvision_base_url=torchvision_base_url,
        hf_endpoint=endpoint,
        pytorchcv_base_url=pytorchcv_base_url,
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    present = _check_present(
        src, dest, offline=offline, endpoint=endpoint, retries=retries, backoff_s=backoff_s
    )
    if present is not None:
        return present
    if offline:
        raise DownloadError(
            f"{src.model}: offline mode, and its weight file {dest} is missing"
            f" (it would come from {src.url})"
        )
    log.info("%s: downloading %s to %s", src.model, src.url, dest)
    if src.kind == "url":
        return _fetch_url(src, dest, retries=retries, backoff_s=backoff_s, progress=progress)
    if src.kind == "pytorchcv":
        return _fetch_pytorchcv(src, dest, retries=retries, backoff_s=backoff_s, progress=progress)
    return _fetch_hub(
        src, dest, endpoint=endpoint, retries=retries, backoff_s=backoff_s, progress=progress
    )


# --------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------


def build_model(row: Mapping[str, Any]) -> nn.Module:
    """The row's architecture with random initial weights, in eval mode.

    torchvision: ``torchvision.models.get_model(model_id, weights=None)``; timm:
    ``timm.create_model("{model_id}.{weights_tag}", pretrained=False)`` (the tag selects the
    pretrained config, e.g. its class count); pytorchcv: today's
    ``pytorchcv.model_provider.get_model(model_id, pretrained=False)``, which needs the
    ``pytorchcv`` package (the pipeline never builds these: it analyses their files' tensors).
    """
    model = row["model"]
    try:
        if row["source"] == "torchvision":
            import torchvision.models

            net = torchvision.models.get_model(row["model_id"], weights=None)
        elif row["source"] == "pytorchcv":
            try:
                from pytorchcv.model_provider import get_model
            except ImportError as err:
                raise ValueError(
                    "building a pytorchcv architecture needs the pytorchcv package"
                    " (pip install pytorchcv); its weight files are analysed without it"
                ) from err
            net = get_model(row["model_id"], pretrained=False)
        else:
            import timm

            net = timm.create_model(_timm_name(row), pretrained=False)
    except (ValueError, RuntimeError, KeyError) as err:
        raise ValueError(
            f"{model}: cannot build architecture {row['model_id']!r} ({row['source']}): {err}"
        ) from err
    return net.eval()


_HUB_DIR_LOCK = threading.Lock()


@contextmanager
def _torch_hub_cache_holding(path: Path, filename: str) -> Iterator[None]:
    """Make ``torch.hub`` find ``path`` as its cached download ``checkpoints/<filename>``.

    torchvision's builders load pretrained weights with
    ``load_state_dict_from_url(weights.url)``, which uses a file already in the torch.hub cache
    instead of downloading. Pointing a temporary cache at our verified file lets torchvision's
    own loading code run unchanged (DenseNet's legacy key renaming, GoogLeNet dropping its
    auxiliary heads). The hub directory is restored afterwards; a lock keeps threads apart.
    """
    import torch.hub

    with _HUB_DIR_LOCK, tempfile.TemporaryDirectory(prefix="htsr-hub-") as tmp:
        checkpoints = Path(tmp, "checkpoints")
        checkpoints.mkdir()
        (checkpoints / filename).symlink_to(path.resolve())
        previous = getattr(torch.hub, "_hub_dir", None)
        torch.hub.set_dir(tmp)
        try:
            if not Path(torch.hub.get_dir(), "checkpoints", filename).is_file():
                raise RuntimeError(f"torch.hub does not see {filename} in {tmp}")
            yield
        finally:
            torch.hub._hub_dir = previous


def load_model(row: Mapping[str, Any], weights_path: str | os.PathLike[str]) -> nn.Module:
    """The row's architecture with the weights in ``weights_path`` (strict load), in eval mode.

    torchvision rows load through torchvision's own pretrained-weights path
    (``get_model(model_id, weights=weights_tag)``) reading our file; timm rows through timm's
    (``create_model(name, pretrained=True, pretrained_cfg_overlay={"file": path})``). Both load
    strictly: a missing, extra or misshapen tensor raises :class:`WeightsLoadError` naming the
    model and the file.
    """
    model = row["model"]
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"{model}: weight file {path} does not exist")
    try:
        if row["source"] == "torchvision":
            import torchvision.models

            if path.suffix == ".safetensors":
                raise ValueError("torchvision rows need a torch.save file, not .safetensors")
            weights = torchvision.models.get_weight(row["weights_tag"])
            filename = urllib.parse.urlsplit(weights.url).path.rsplit("/", 1)[-1]
            with _torch_hub_cache_holding(path, filename):
                net = torchvision.models.get_model(row["model_id"], weights=weights)
        else:
            import timm

            net = timm.create_model(
                _timm_name(row), pretrained=True, pretrained_cfg_overlay={"file": str(path)}
            )
    except Exception as err:
        raise WeightsLoadError(
            f"{model}: weight file {path} does not load into {row['model_id']!r}"
            f" ({row['source']}): {type(err).__name__}: {err}"
        ) from err
    return net.eval()


def load_weights(
    row: Mapping[str, Any], weights_path: str | os.PathLike[str]
) -> nn.Module | dict[str, Any]:
    """What ``htsr.analyze`` reads for a row: the loaded architecture (:func:`load_model`) for
    torchvision and timm rows, the file's state_dict for pytorchcv rows.

    OSMR weights are analysed from their tensors (a 4-D weight is a Conv2d, a 2-D one a Linear;
    ``htsr.spectra.layers_from_state_dict``), read from inside the store's zip with torch's
    ``weights_only`` loader, so that no pytorchcv version of the time has to be installed. A file
    that does not load raises :class:`WeightsLoadError` naming the model and the file.
    """
    if row["source"] != "pytorchcv":
        return load_model(row, weights_path)
    from htsr.checkpoints import CheckpointError, load_state_dict

    try:
        return load_state_dict(weights_path)
    except CheckpointError as err:
        raise WeightsLoadError(f"{row['model']}: {err}") from err
