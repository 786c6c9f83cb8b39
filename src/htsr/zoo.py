"""The model zoo: the table of pretrained ImageNet models, their weight files and architectures.

The table (``config/models.tsv``) has one row per pretrained model, keyed by ``model``
(torchvision: the model id, e.g. ``resnet18``; timm: timm's pretrained name
``{model_id}.{weights_tag}``, e.g. ``resnet18.gluon_in1k``). Weight files come from where the
library that defines the architecture gets them:

* torchvision rows, and rows with a ``url``: one torch.hub-style URL whose file name carries the
  first hex digits of the file's sha256 (``resnet18-f37072fd.pth``), or a ``sha256`` column;
* timm rows without a ``url``: the Hugging Face hub repository named by timm's pretrained config
  (``model.safetensors``), verified against the sha256 and size the hub reports.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

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
    "read_model_table",
    "select_models",
    "sha256_file",
    "weights_path",
    "weights_source",
    "weights_url",
]

log = logging.getLogger(__name__)

TORCHVISION_URL_PREFIX = "https://download.pytorch.org/models/"
"""Prefix of torchvision's weight URLs; ``torchvision_base_url`` replaces it."""

HF_WEIGHTS_FILE = "model.safetensors"
"""File of a timm Hugging Face hub repository that holds the weights (what timm loads first)."""

SOURCES = ("torchvision", "timm")
SETS = ("core", "extended")
REQUIRED_COLUMNS = (
    "model",
    "family",
    "model_id",
    "source",
    "weights_tag",
    "top1",
    "top5",
    "num_params",
    "eval_res",
    "set",
    "accuracy_source",
)
OPTIONAL_COLUMNS = ("url", "sha256", "revision")
"""Optional table columns; ``read_model_table`` adds them (empty) when the file lacks them."""

_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub.HASH_REGEX
_MODEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

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


def _row_problems(row: Mapping[str, str]) -> list[str]:
    """Everything wrong with one table row (all cells as strings)."""
    problems = []
    if not _MODEL_KEY.match(row["model"]):
        problems.append(
            "model key must be non-empty and use only letters, digits, '.', '_', '-'"
            f" (got {row['model']!r})"
        )
    for column in ("family", "model_id", "weights_tag", "accuracy_source"):
        if not row[column]:
            problems.append(f"{column} is missing")
    if row["source"] not in SOURCES:
        problems.append(f"unknown source {row['source']!r} (expected one of {', '.join(SOURCES)})")
    if row["set"] not in SETS:
        problems.append(f"unknown set {row['set']!r} (expected one of {', '.join(SETS)})")
    for column in ("top1", "top5"):
        text = row[column]
        try:
            value = float(text)
        except ValueError:
            problems.append(f"{column} is missing or not a number ({text!r})")
            continue
        if not 0.0 < value <= 100.0:
            problems.append(f"{column} = {value} is outside (0, 100]")
    for column in ("num_params", "eval_res"):
        text = row[column]
        if not text.isdigit() or int(text) <= 0:
            problems.append(f"{column} is missing or not a positive integer ({text!r})")
    url = row["url"]
    if url and "://" not in url and "/" in url:
        problems.append(f"url {url!r} must be an absolute URL (scheme://...) or a bare file name")
    if url and row["source"] == "torchvision" and url.endswith(".safetensors"):
        problems.append("a torchvision row's url must name a torch.save file, not .safetensors")
    if row["sha256"] and not _SHA256.match(row["sha256"]):
        problems.append(f"sha256 must be 64 lowercase hex digits (got {row['sha256']!r})")
    return problems


def read_model_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate the model table (tab-separated, header on line 1).

    Returns one row per model with ``top1``/``top5`` as float (percent), ``num_params`` and
    ``eval_res`` as int, the other columns as strings, and the optional columns ``url``,
    ``sha256``, ``revision`` ('' where unset). Raises :class:`ModelTableError` (a
    ``ValueError``) listing every bad row by file line number and model key: a duplicate key,
    an unknown source or set, a missing or non-numeric accuracy or parameter count, an accuracy
    outside (0, 100], a missing required column.
    """
    path = Path(path)
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
    raw.index = pd.RangeIndex(2, len(raw) + 2, name="line")  # file line numbers
    raw = raw[(raw != "").any(axis=1)]  # blank lines

    errors = []
    seen: dict[str, int] = {}
    for line, row in raw.iterrows():
        cells = row.to_dict()
        problems = _row_problems(cells)
        key = cells["model"]
        if key in seen:
            problems.insert(0, f"duplicate model key (first on line {seen[key]})")
        else:
            seen[key] = int(line)
        errors += [f"line {line} (model {key!r}): {p}" for p in problems]
    if errors:
        raise ModelTableError(f"model table {path}:\n  " + "\n  ".join(errors))

    table = raw.reset_index(drop=True)
    table["top1"] = table["top1"].astype(float)
    table["top5"] = table["top5"].astype(float)
    table["num_params"] = table["num_params"].astype("int64")
    table["eval_res"] = table["eval_res"].astype("int64")
    return table


def select_models(table: pd.DataFrame, model_set: str | Iterable[str] = "core") -> pd.DataFrame:
    """Rows of ``table`` for ``model_set``, in table order.

    ``model_set`` is ``"core"``, ``"all"``, or names (a list, or one string) each of which is a
    model key, a family, or a model id (selecting every row with that id). A name that matches
    nothing raises ``ValueError`` naming it.
    """
    if isinstance(model_set, str):
        if model_set == "core":
            return table[table["set"] == "core"].reset_index(drop=True)
        if model_set == "all":
            return table.reset_index(drop=True)
        model_set = [model_set]
    names = list(model_set)
    if not names:
        raise ValueError("model_set is an empty list; name models or families, or use core/all")
    keep = pd.Series(False, index=table.index)
    unknown = []
    for name in names:
        hit = (table["model"] == name) | (table["family"] == name)
        if not hit.any():
            hit = table["model_id"] == name
        if not hit.any():
            unknown.append(name)
        keep |= hit
    if unknown:
        raise ValueError(
            f"unknown model or family name(s): {', '.join(map(repr, unknown))}"
            " (expected model keys, families or model ids from the model table, or core/all)"
        )
    return table[keep].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Where the weights come from and where they go
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsSource:
    """Where one model's weight file comes from and how it is verified.

    ``kind`` is ``"url"`` (a single torch.hub-style URL) or ``"hub"`` (a file of a Hugging Face
    hub repository). ``expected_sha256`` is the full hash from the table's ``sha256`` column,
    ``hash_prefix`` the hex digits a URL's file name carries (``name-<hex>.ext``).
    """

    model: str
    kind: str
    url: str
    repo_id: str = ""
    filename: str = ""
    revision: str = ""
    expected_sha256: str = ""
    hash_prefix: str = ""


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


def weights_source(
    row: Mapping[str, Any],
    *,
    torchvision_base_url: str | None = None,
    hf_endpoint: str | None = None,
) -> WeightsSource:
    """Resolve where a row's weights come from (see :class:`WeightsSource`).

    torchvision rows and rows with a ``url`` are ``"url"`` sources; other timm rows are
    ``"hub"`` sources at timm's ``hf_hub_id`` (file ``hf_hub_filename`` or
    ``model.safetensors``, revision from the ``revision`` column, else ``main``). A timm row
    whose weights timm serves from a plain URL (no hub id) and that has no ``url`` raises
    ``DownloadError`` naming that URL.
    """
    model = str(row["model"])
    expected = _cell(row, "sha256")
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


def weights_path(row: Mapping[str, Any], root: str | os.PathLike[str]) -> Path:
    """Where a row's weight file lives: ``{root}/{model}.pth`` or ``{root}/{model}.safetensors``.

    ``.safetensors`` for timm hub rows and for rows whose ``url`` names a ``.safetensors`` file,
    ``.pth`` otherwise (torch.save files: torchvision, and timm weights timm serves from a URL).
    Pure: needs no network and no torch import.
    """
    url = _cell(row, "url")
    if url:
        name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
        suffix = ".safetensors" if name.endswith(".safetensors") else ".pth"
    else:
        suffix = ".pth" if row["source"] == "torchvision" else ".safetensors"
    return Path(root) / f"{row['model']}{suffix}"


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
    """Does ``sha`` match the table's full hash, else ``reference``, else the name's prefix?"""
    if src.expected_sha256:
        return sha == src.expected_sha256
    if reference:
        return sha == reference
    return bool(src.hash_prefix) and sha.startswith(src.hash_prefix)


def _expected_text(src: WeightsSource, reference: str = "") -> str:
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
    size = stat.st_size
    if not sha:
        sha, size = sha256_file(dest)
    if _hash_ok(sha, src, reference) and ref_size in (None, size):
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
    log.warning(
        "%s: %s is corrupt (sha256 %s, %d bytes; expected %s); removing it",
        src.model,
        dest,
        sha,
        size,
        _expected_text(src, reference),
    )
    _discard(dest)
    if offline:
        raise DownloadError(
            f"{src.model}: offline, and {dest} was corrupt (sha256 {sha}, expected"
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
) -> dict[str, Any]:
    """Fetch into a staging folder beside ``dest`` (``fetch(staging)`` returns the file), with
    retries; verify sha256 (and size); only then move it to ``dest`` and write the sidecar.
    A corrupt file is deleted with the staging folder and nothing appears under ``dest``."""
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
        if not _hash_ok(sha, src, expected) or expected_size not in (None, size):
            size_text = "" if expected_size is None else f" ({expected_size} bytes)"
            raise DownloadError(
                f"{src.model}: {url} arrived corrupt: sha256 {sha} ({size} bytes), expected"
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
    offline: bool = False,
    retries: int = 4,
    backoff_s: float = 1.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Fetch and verify one model's weight file to ``dest`` (atomically); skip it if present.

    Sources (see :func:`weights_source`): torch.hub-style URLs are fetched with
    ``torch.hub.download_url_to_file`` and verified against the sha256 prefix in the file name
    (or the table's ``sha256``); timm hub files with ``huggingface_hub.hf_hub_download`` at the
    commit ``model_info`` resolves, verified against the hub's LFS sha256 and size.

    ``torchvision_base_url`` (default env ``HTSR_TORCHVISION_URL``) replaces
    ``https://download.pytorch.org/models/`` and resolves bare ``url`` names; ``hf_endpoint``
    (default env ``HF_ENDPOINT``) is the hub. ``offline`` (or env ``HTSR_OFFLINE=1``) uses only
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
    src = weights_source(row, torchvision_base_url=torchvision_base_url, hf_endpoint=endpoint)
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
    pretrained config, e.g. its class count).
    """
    model = row["model"]
    try:
        if row["source"] == "torchvision":
            import torchvision.models

            net = torchvision.models.get_model(row["model_id"], weights=None)
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
