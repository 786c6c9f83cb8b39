"""Verified downloads: fetch a file, check it, and only then put it in place.

A :class:`WeightsSource` says where one file comes from and how it is verified: a plain URL
(``kind="url"``: the table's ``sha256``, else the sha256 prefix a torch.hub-style file name
carries, ``name-<hex>.pth``), a file of a Hugging Face hub repository (``kind="hub"``: the sha256
and size the hub reports for it at the resolved commit) or an OSMR model-store zip
(``kind="pytorchcv"``: the store's SHA-1 of the ``.pth`` inside). :func:`download` fetches it:

* atomically: into a staging folder beside the destination, verified, then ``os.replace``-d; a
  file that fails verification is deleted and nothing appears under the destination;
* with retries: connection errors, truncated transfers and HTTP 5xx/429 are retried with
  exponential backoff; anything else fails at once with a :class:`DownloadError` naming the
  model and the URL;
* once: a file already present that verifies is kept; a sidecar ``<file>.sha256`` (JSON)
  records what was verified, so it is not rehashed while its size and mtime are unchanged;
* offline (``offline=True`` or ``HTSR_OFFLINE=1``): only what is on disk is verified and used.

The sources (:mod:`htsr.weights.sources`) say which :class:`WeightsSource` a model row has.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import urllib.error
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from htsr.io import atomic_output, sha256_file
from htsr.weights import osmr

__all__ = [
    "DownloadError",
    "DEFAULT_ENDPOINTS",
    "Endpoints",
    "WeightsSource",
    "download",
    "env_flag",
    "hash_prefix",
    "hub_file_info",
    "read_sidecar",
    "staged_download",
    "with_retries",
    "write_sidecar",
]

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub.HASH_REGEX

T = TypeVar("T")


def hash_prefix(name: str) -> str:
    """The hex digits a torch.hub-style file name carries (``resnet18-f37072fd.pth`` →
    ``f37072fd``), '' if none."""
    match = _HASH_IN_NAME.search(name)
    return match.group(1) if match else ""


class DownloadError(RuntimeError):
    """A weight file could not be fetched or verified; the message names the model and file."""


@dataclass(frozen=True)
class Endpoints:
    """Where the sources fetch from; None is the public default (or the environment variable).

    ``torchvision_url`` replaces ``https://download.pytorch.org/models/`` (env
    ``HTSR_TORCHVISION_URL``), ``hf_endpoint`` is the Hugging Face hub (env ``HF_ENDPOINT``),
    ``pytorchcv_url`` replaces ``https://github.com/osmr/imgclsmob`` (env ``HTSR_PYTORCHCV_URL``).
    """

    torchvision_url: str | None = None
    hf_endpoint: str | None = None
    pytorchcv_url: str | None = None

    @property
    def hub(self) -> str | None:
        """The hub endpoint in effect: ``hf_endpoint``, else ``$HF_ENDPOINT``, else None."""
        return self.hf_endpoint or os.environ.get("HF_ENDPOINT") or None


#: The public defaults (or the environment variables).
DEFAULT_ENDPOINTS = Endpoints()


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
    git_sha1: str = ""
    record: str = ""  # a file recording the sha256 of the first download (source url)
    pin: str = ""  # where expected_sha256 comes from, if not the table's sha256 column

    @property
    def verified_by(self) -> str:
        """How the file is checked, in words (written to the sidecar and the provenance)."""
        if self.record:
            return "recorded at first download"
        if self.expected_sha256:
            return self.pin or "table sha256"
        if self.kind == "pytorchcv":
            return "store sha1 of the zip's member"
        if self.kind == "hub":
            return "hub sha256" if not self.git_sha1 else "hub git blob sha1"
        if self.hash_prefix:
            return "hash in file name"
        return "unverified"


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _staging(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.staging")


def read_sidecar(dest: Path) -> dict[str, Any] | None:
    path = _sidecar(dest)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("%s: ignoring unreadable checksum sidecar %s: %s", dest.stem, path, err)
        return None
    return record if isinstance(record, dict) else None


def write_sidecar(dest: Path, record: dict[str, Any]) -> None:
    stat = dest.stat()
    record = {**record, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    with atomic_output(_sidecar(dest)) as tmp, open(tmp, "w") as f:
        f.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def discard(dest: Path) -> None:
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
    if src.kind == "pytorchcv" or src.git_sha1:
        return True  # verified by the check (the zip's member sha1, the git blob sha1)
    if src.record and not (reference or src.hash_prefix):
        return True  # the first download of a file nothing names a hash for: recorded now
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
    if src.expected_sha256 and not src.record:
        return f"sha256 {src.expected_sha256} ({src.pin or 'table column sha256'})"
    if src.git_sha1:
        return f"git blob sha1 {src.git_sha1} (as the hub reports it)"
    if src.record and src.expected_sha256:
        return f"sha256 {src.expected_sha256} (recorded at its first download, {src.record})"
    if reference:
        return f"sha256 {reference}"
    return f"a sha256 starting with {src.hash_prefix} (from the file name)"


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


def with_retries(
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


def env_flag(name: str) -> bool:
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


def hub_file_info(
    src: WeightsSource, endpoint: str | None, retries: int, backoff_s: float
) -> tuple[str, int | None, str]:
    """``(sha256, size, commit)`` the hub reports for the source's file at its revision."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    info = with_retries(
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
    side = read_sidecar(dest) or {}
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
            reference, ref_size, commit = hub_file_info(src, endpoint, retries, backoff_s)
    elif src.kind == "url" and not (src.expected_sha256 or src.hash_prefix or src.record):
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
            write_sidecar(dest, sidecar_record(src, sha, commit, "present file"))
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
    discard(dest)
    if offline:
        raise DownloadError(
            f"{src.model}: offline, and {dest} was corrupt ({found}; expected"
            f" {_expected_text(src, reference)}); removed it, download it again online"
        )
    return None


def sidecar_record(src: WeightsSource, sha: str, commit: Any, how: str) -> dict[str, Any]:
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
        "verified_by": src.verified_by,
        **({"sha1": src.sha1, "member": src.member} if src.kind == "pytorchcv" else {}),
    }


def no_progress_bar() -> type:
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _Quiet(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Quiet


def staged_download(
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
        local = with_retries(
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
    write_sidecar(dest, sidecar_record(src, sha, commit, "downloaded"))
    return _result(src, dest, sha, size, fetched=True, commit=commit)


def _fetch_url(
    src: WeightsSource, dest: Path, *, retries: int, backoff_s: float, progress: bool
) -> dict[str, Any]:
    import torch.hub

    if not (src.expected_sha256 or src.hash_prefix or src.record):
        raise DownloadError(
            f"{src.model}: will not download {src.url} to {dest} unverified: its file name"
            " carries no sha256 prefix (name-<hex>.pth) and the table gives no sha256"
        )

    def fetch(staging: Path) -> Path:
        part = staging / dest.name
        torch.hub.download_url_to_file(src.url, str(part), None, progress=progress)
        return part

    return staged_download(src, dest, fetch, url=src.url, retries=retries, backoff_s=backoff_s)


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

    return staged_download(
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

    expected, expected_size, commit = hub_file_info(src, endpoint, retries, backoff_s)
    url = hf_hub_url(src.repo_id, src.filename, revision=commit, endpoint=endpoint)

    def fetch(staging: Path) -> str:
        return hf_hub_download(
            src.repo_id,
            src.filename,
            revision=commit,
            endpoint=endpoint,
            local_dir=staging,
            cache_dir=staging / ".cache",  # hermetic: no other cache is consulted
            tqdm_class=None if progress else no_progress_bar(),
        )

    result = staged_download(
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


def download(
    src: WeightsSource,
    dest: str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    offline: bool = False,
    retries: int = 4,
    backoff_s: float = 1.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Fetch and verify ``src`` to ``dest`` (atomically); keep a present file that verifies.

    URL and store sources are fetched with ``torch.hub.download_url_to_file``, hub files with
    ``huggingface_hub.hf_hub_download`` at the commit ``model_info`` resolves (``endpoint``:
    the hub, default env ``HF_ENDPOINT``). ``offline`` (or env ``HTSR_OFFLINE=1``) uses only
    ``dest``. Connection errors and HTTP 5xx are retried ``retries`` times, waiting
    ``backoff_s * 2**k`` seconds. A present file that does not verify is removed and fetched
    again; a download that fails verification raises :class:`DownloadError` and leaves nothing
    at ``dest``.

    Returns ``{"model", "url", "path", "sha256", "size", "fetched", "revision", "commit"}``
    (``commit``: the hub commit the file came from, None for URL sources).
    """
    dest = Path(dest)
    offline = offline or env_flag("HTSR_OFFLINE")
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
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
