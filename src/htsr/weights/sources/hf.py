"""``source = hf``: any Hugging Face hub repository, analysed from its tensors.

Columns: ``repo`` (``OWNER/NAME``), ``filename`` (one weights file, ``model.safetensors`` or
``pytorch_model.bin``, or a shard index such as ``pytorch_model.bin.index.json``, whose shards
are all fetched; empty: the first of :data:`WEIGHT_FILES` the repository has) and ``revision``
(a branch, tag or commit; default ``main``).

:func:`download` resolves the revision to a commit with one ``model_info`` call, then fetches
every file at that commit into the folder ``{weights}.hf/`` beside ``dest``: the weights file or
the index and each of its shards, and ``config.json`` when the repository has one (it gives the
layout of fused attention projections, :mod:`htsr.spectral.matrices`). Each file is verified against
what the hub reports for it: the sha256 and size of an LFS file, the git blob sha1 of a small one.
The download is staged, retried and resumable file by file, as in :mod:`htsr.weights.download`. Only
when every file is verified is ``dest``, the manifest ``{weights}.hf.json`` (repository, revision,
resolved commit, and each file's hash and size), written, atomically: the pipeline takes the
manifest as the weights, and provenance records the commit from it. Offline, the manifest's
files are verified against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from htsr.io import sha256_file, write_json
from htsr.weights.download import (
    DEFAULT_ENDPOINTS,
    DownloadError,
    Endpoints,
    WeightsSource,
    discard,
    env_flag,
    no_progress_bar,
    read_sidecar,
    sidecar_record,
    staged_download,
    with_retries,
    write_sidecar,
)
from htsr.weights.hub import WEIGHT_FILES
from htsr.weights.sources import cell

log = logging.getLogger(__name__)

COLUMNS = ("repo",)

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".index.json")
MANIFEST_SUFFIX = ".hf.json"


def problems(row: Mapping[str, str]) -> list[str]:
    out = []
    if row.get("repo") and not _REPO.match(row["repo"]):
        out.append(f"repo must be a hub repository OWNER/NAME (got {row['repo']!r})")
    name = row.get("filename", "")
    if name and not name.endswith(_WEIGHT_SUFFIXES):
        out.append(
            f"filename {name!r} is not a weights file or shard index"
            f" (expected a name ending in {', '.join(_WEIGHT_SUFFIXES)})"
        )
    return out


def suffix(row: Mapping[str, Any]) -> str:
    return MANIFEST_SUFFIX


def snapshot_dir(manifest: str | os.PathLike[str]) -> Path:
    """The folder of a manifest's files: ``X.hf.json`` → ``X.hf``."""
    p = Path(manifest)
    return p.with_name(p.name[: -len(".json")])


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """The git blob id of a file: ``sha1(b"blob <size>\\0" + content)``, what the hub reports
    for a file not stored in LFS."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _model_info(repo: str, revision: str, model: str, endpoint: str | None, retries: int,
                backoff_s: float) -> Any:  # fmt: skip
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    return with_retries(
        lambda: api.model_info(repo, revision=revision, files_metadata=True),
        model=model,
        what="model info for",
        url=f"{api.endpoint}/api/models/{repo} (revision {revision})",
        retries=retries,
        backoff_s=backoff_s,
    )


def choose_weights_file(files: Any, repo: str) -> str:
    """The first of :data:`WEIGHT_FILES` among ``files``; ``DownloadError`` if none."""
    for name in WEIGHT_FILES:
        if name in files:
            return name
    raise DownloadError(
        f"hub repository {repo} has none of {', '.join(WEIGHT_FILES)}; name the file"
        f" (it has: {', '.join(sorted(files)) or 'no files'})"
    )


def _expected(sibling: Any) -> dict[str, Any]:
    if sibling.lfs is not None:
        return {"sha256": sibling.lfs.sha256, "size": int(sibling.lfs.size)}
    return {"git_sha1": sibling.blob_id, "size": sibling.size}


def _verified(path: Path, expected: Mapping[str, Any]) -> bool:
    """Is the file at ``path`` the one described (sha256 or git blob sha1, and size)? A sidecar
    whose size and mtime match the file spares the rehash."""
    if not path.is_file():
        return False
    stat = path.stat()
    if expected.get("size") not in (None, stat.st_size):
        return False
    side = read_sidecar(path) or {}
    same = side.get("size") == stat.st_size and side.get("mtime_ns") == stat.st_mtime_ns
    if "sha256" in expected:
        sha = side.get("sha256") if same else None
        return (sha or sha256_file(path)[0]) == expected["sha256"]
    sha1 = side.get("git_sha1") if same else None
    return (sha1 or git_blob_sha1(path)) == expected["git_sha1"]


def _fetch_file(model: str, repo: str, name: str, commit: str, expected: Mapping[str, Any],
                folder: Path, *, endpoint: str | None, retries: int, backoff_s: float,
                progress: bool) -> bool:  # fmt: skip
    """Put the verified file ``name`` at ``folder/name``; True if it was downloaded."""
    from huggingface_hub import hf_hub_download, hf_hub_url

    target = folder / name
    if _verified(target, expected):
        return False
    if target.exists():
        log.warning("%s: %s does not match the hub's %s; fetching it again", model, target, name)
        discard(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    url = hf_hub_url(repo, name, revision=commit, endpoint=endpoint)
    src = WeightsSource(model=model, kind="hub", url=url, repo_id=repo, filename=name,
                        revision=commit, expected_sha256=expected.get("sha256", ""),
                        git_sha1=expected.get("git_sha1", ""))  # fmt: skip

    def fetch(staging: Path) -> str:
        return hf_hub_download(
            repo, name, revision=commit, endpoint=endpoint, local_dir=staging,
            cache_dir=staging / ".cache", tqdm_class=None if progress else no_progress_bar(),
        )  # fmt: skip

    def check(path: Path) -> str:
        if "git_sha1" in expected and git_blob_sha1(path) != expected["git_sha1"]:
            return f"git blob sha1 {git_blob_sha1(path)}"
        return ""

    result = staged_download(src, target, fetch, url=url, retries=retries, backoff_s=backoff_s,
                             expected=expected.get("sha256", ""),
                             expected_size=expected.get("size"), commit=commit,
                             check=check)  # fmt: skip
    if "git_sha1" in expected:
        record = sidecar_record(src, result["sha256"], commit, "downloaded")
        write_sidecar(target, record | {"git_sha1": expected["git_sha1"]})
    return True


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest written by :func:`download`; ``DownloadError`` naming a bad one."""
    try:
        manifest = json.loads(Path(path).read_text("utf-8"))
        manifest["files"]  # noqa: B018 - the key must be there
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DownloadError(f"{path}: not a readable hub manifest ({err})") from err
    return manifest


def _shards(index: Path, model: str) -> list[str]:
    try:
        weight_map = json.loads(index.read_text("utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DownloadError(f"{model}: shard index {index} has no weight_map ({err})") from err
    prefix = str(Path(index.name).parent) if "/" in index.name else ""
    names = dict.fromkeys(str(v) for v in weight_map.values())
    return [f"{prefix}/{n}" if prefix and prefix != "." else n for n in names]


def download(
    row: Mapping[str, Any],
    dest: str | os.PathLike[str],
    *,
    endpoints: Endpoints = DEFAULT_ENDPOINTS,
    offline: bool = False,
    retries: int = 4,
    backoff_s: float = 1.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Fetch and verify a hub row's weights (see the module docstring); write the manifest
    ``dest`` last. Returns ``{"model", "url", "path", "sha256", "size", "fetched", "revision",
    "commit", "files"}`` (``sha256`` of the manifest, ``size`` of all files together)."""
    model, repo = str(row["model"]), cell(row, "repo")
    filename, revision = cell(row, "filename"), cell(row, "revision") or "main"
    dest = Path(dest)
    folder = snapshot_dir(dest)
    endpoint = endpoints.hub
    offline = offline or env_flag("HTSR_OFFLINE")
    if offline:
        if not dest.is_file():
            raise DownloadError(
                f"{model}: offline mode, and its manifest {dest} is missing (the weights would"
                f" come from {repo}@{revision} on the hub)"
            )
        manifest = read_manifest(dest)
        bad = [n for n, e in manifest["files"].items() if not _verified(folder / n, e)]
        if bad:
            raise DownloadError(
                f"{model}: offline, and {', '.join(bad)} in {folder} do not match the manifest"
                f" {dest}; download them again online"
            )
        return _result(model, dest, manifest, fetched=False, endpoint=endpoint)
    info = _model_info(repo, revision, model, endpoint, retries, backoff_s)
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    commit = info.sha or revision
    filename = filename or choose_weights_file(siblings, repo)
    wanted = [filename] + (["config.json"] if "config.json" in siblings else [])
    files: dict[str, dict[str, Any]] = {}
    fetched = False
    while wanted:
        name = wanted.pop(0)
        sibling = siblings.get(name)
        if sibling is None:
            raise DownloadError(
                f"{model}: hub repository {repo} (revision {revision}, commit {commit}) has no"
                f" {name}; it has: {', '.join(sorted(siblings)) or 'no files'}"
            )
        files[name] = _expected(sibling)
        fetched |= _fetch_file(model, repo, name, commit, files[name], folder,
                               endpoint=endpoint, retries=retries, backoff_s=backoff_s,
                               progress=progress)  # fmt: skip
        if name == filename and name.endswith(".index.json"):
            wanted += [s for s in _shards(folder / name, model) if s not in files]
    manifest = {
        "model": model, "repo": repo, "revision": revision, "commit": commit,
        "filename": filename, "files": files,
    }  # fmt: skip
    if not dest.is_file() or read_manifest(dest) != manifest:
        write_json(dest, manifest)
    log.info("%s: %s@%s (commit %s): %d files verified", model, repo, revision, commit, len(files))
    return _result(model, dest, manifest, fetched=fetched, endpoint=endpoint)


def _result(model: str, dest: Path, manifest: Mapping[str, Any], *, fetched: bool,
            endpoint: str | None) -> dict[str, Any]:  # fmt: skip
    from huggingface_hub import hf_hub_url

    url = hf_hub_url(manifest["repo"], manifest["filename"], revision=manifest["commit"],
                     endpoint=endpoint)  # fmt: skip
    return {
        "model": model, "url": url, "path": str(dest), "sha256": sha256_file(dest)[0],
        "size": sum(int(e.get("size") or 0) for e in manifest["files"].values()),
        "fetched": fetched, "revision": manifest["revision"], "commit": manifest["commit"],
        "files": sorted(manifest["files"]),
    }  # fmt: skip


def resolve(row: Mapping[str, Any], endpoints: Endpoints = DEFAULT_ENDPOINTS) -> WeightsSource:
    """Where the row's (first) file lives, without network: for messages and provenance."""
    from huggingface_hub import hf_hub_url

    repo, name = cell(row, "repo"), cell(row, "filename") or WEIGHT_FILES[0]
    revision = cell(row, "revision") or "main"
    url = hf_hub_url(repo, name, revision=revision, endpoint=endpoints.hub)
    return WeightsSource(model=str(row["model"]), kind="hub", repo_id=repo, filename=name,
                         revision=revision, url=url)  # fmt: skip


def load(row: Mapping[str, Any], path: str | os.PathLike[str]) -> Any:
    """The manifest's tensors, read one at a time
    (:func:`htsr.weights.checkpoints.open_checkpoint`)."""
    from htsr.weights.checkpoints import open_checkpoint  # torch, only when loading

    return open_checkpoint(path)


_HF_URI = re.compile(r"^hf://(?P<repo>[^@/]+/[^@/]+)(?:@(?P<revision>[^/]+))?(?:/(?P<file>.+))?$")


def parse_uri(uri: str) -> tuple[str, str, str]:
    """``hf://OWNER/REPO[@REVISION][/FILE]`` → ``(repo, revision, filename)`` (defaults
    ``main`` and '' = chosen from :data:`WEIGHT_FILES`); ``ValueError`` otherwise."""
    match = _HF_URI.match(uri)
    if not match:
        raise ValueError(f"{uri!r} is not an hf://OWNER/REPO[@REVISION][/FILE] address")
    return match["repo"], match["revision"] or "main", match["file"] or ""


def cache_dir() -> Path:
    """Where ``hf://`` downloads go: ``$HTSR_CACHE/hf``, default ``~/.cache/htsr/hf``."""
    root = os.environ.get("HTSR_CACHE") or Path.home() / ".cache" / "htsr"
    return Path(root) / "hf"


def fetch_uri(uri: str, *, endpoints: Endpoints = DEFAULT_ENDPOINTS, **options: Any) -> Path:
    """Download ``hf://OWNER/REPO[@REVISION][/FILE]`` through :func:`download` into
    :func:`cache_dir` and return its manifest."""
    repo, revision, filename = parse_uri(uri)
    key = f"{repo.replace('/', '--')}--{revision}" + (
        f"--{filename.replace('/', '--')}" if filename else ""
    )
    row = {"model": uri, "repo": repo, "revision": revision, "filename": filename}
    dest = cache_dir() / f"{key}{MANIFEST_SUFFIX}"
    download(row, dest, endpoints=endpoints, **options)
    return dest
