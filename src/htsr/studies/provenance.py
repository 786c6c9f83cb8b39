"""Provenance of a pipeline run: versions, configuration, weight-file hashes and code state.

:func:`collect_provenance` gathers what is needed to say where a set of results came from: the
versions of the packages that computed them, the configuration, the SHA-256 of every weight
file, the git commit of the code (and whether the tree had uncommitted changes), and when.
The file helpers (atomic writes, checksums, job logs) live in :mod:`htsr.io`.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from htsr.io import atomic_output, job_log, sha256_file, write_json, write_tsv

__all__ = [
    "atomic_output",
    "collect_provenance",
    "git_state",
    "job_log",
    "package_versions",
    "sha256_file",
    "weight_record",
    "write_json",
    "write_tsv",
]

#: Distributions whose versions are recorded (``python`` is added from the interpreter).
PACKAGES: tuple[str, ...] = (
    "htsr",
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "scipy",
    "pandas",
    "snakemake",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` if absent), plus ``python``."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def weight_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"path", "size", "sha256", "sha256_from", ...}`` of a weight file (size in bytes).

    The hash comes from the download's checksum sidecar ``<file>.sha256`` (JSON written by
    :func:`htsr.weights.zoo.download_weights`) when its recorded size and mtime match the file
    (``sha256_from: "sidecar"``, plus the sidecar's ``url``, ``commit`` and ``verified_by``: how
    the download was checked), and is recomputed
    from the file's bytes otherwise (``sha256_from: "file"``); the sidecar's fields are kept
    whenever its hash is the file's. For the manifest of a hub
    snapshot (``*.hf.json``, :mod:`htsr.weights.sources.hf`) the record adds its ``repo``,
    ``revision``, resolved ``commit`` and ``files`` (each file's sha256 or git blob id, size).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"provenance: weight file {p} does not exist")
    stat = p.stat()
    record: dict[str, Any] = {"path": str(p), "size": stat.st_size}
    sidecar = p.with_name(p.name + ".sha256")
    try:
        side = json.loads(sidecar.read_text("utf-8")) if sidecar.is_file() else {}
    except (OSError, ValueError):
        side = {}
    if (
        isinstance(side, dict)
        and side.get("size") == stat.st_size
        and side.get("mtime_ns") == stat.st_mtime_ns
        and isinstance(side.get("sha256"), str)
    ):
        record |= {"sha256": side["sha256"], "sha256_from": "sidecar"}
    else:
        record |= {"sha256": sha256_file(p)[0], "sha256_from": "file"}
    if isinstance(side, dict) and side.get("sha256") == record["sha256"]:
        # the file the download verified (touched since, e.g. by the workflow manager)
        record |= {k: side.get(k) for k in ("url", "commit", "verified_by")}
    if p.name.endswith(".hf.json"):  # a hub snapshot's manifest: its commit and verified files
        try:
            manifest = json.loads(p.read_text("utf-8"))
            record |= {k: manifest.get(k) for k in ("repo", "revision", "commit", "files")}
        except (OSError, ValueError):
            pass
    return record


def git_state(repo_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git work tree at ``repo_dir``.

    ``None`` values mean the directory is not a git checkout (or git is not installed); that is
    recorded, not raised, since a release tarball has no git state.
    """

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(
                ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def collect_provenance(
    config: Mapping[str, Any],
    weights: Mapping[str, str | os.PathLike[str]],
    *,
    repo_dir: str | os.PathLike[str],
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The provenance record of a run.

    ``config`` is the run's configuration, ``weights`` maps each model key to its weight file
    (hashed here), ``repo_dir`` is the checkout of the code. Keys: ``timestamp`` (UTC, ISO
    8601), ``packages``, ``git``, ``config``, ``weights`` (model → path, size, sha256).
    """
    when = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return {
        "timestamp": when.isoformat(timespec="seconds"),
        "packages": package_versions(),
        "git": git_state(repo_dir),
        "config": json.loads(json.dumps(dict(config), default=str)),
        "weights": {model: weight_record(path) for model, path in sorted(weights.items())},
    }
