"""Provenance of a pipeline run: versions, hashes, logs, and atomic writes of every output.

:func:`collect_provenance` gathers what is needed to say where a set of results came from: the
versions of the packages that computed them, the configuration, the SHA-256 of every weight
file, the git commit of the code (and whether the tree had uncommitted changes), and when.
:func:`atomic_output` is the one way pipeline outputs are written: to a temporary file in the
same directory, moved into place with ``os.replace`` only once complete. :func:`job_log` sends
a pipeline job's logging, warnings and uncaught tracebacks to its Snakemake log file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def job_log(path: str | os.PathLike[str], name: str) -> logging.Logger:
    """Route this process's logging, warnings, stdout and stderr to the log file ``path``.

    For Snakemake rule scripts: everything a job prints (progress, library warnings, the
    traceback of an uncaught exception) lands in its ``log:`` file, line-buffered so that a
    killed job's log shows how far it got. Returns the logger ``name``.
    """
    stream = open(path, "w", buffering=1, encoding="utf-8")  # open until the job ends
    sys.stdout = sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    return logging.getLogger(name)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it to ``path`` (``os.replace``).

    On an exception the temporary file is removed and ``path`` is left as it was, so a killed
    or failed writer never leaves a partial file under the final name. The temporary name
    starts with a dot and keeps the suffix, so writers that infer a format from it still work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", "utf-8")


def write_tsv(path: str | os.PathLike[str], table: pd.DataFrame) -> None:
    """Write ``table`` as a tab-separated file without index to ``path`` atomically."""
    with atomic_output(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` if absent), plus ``python``."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def sha256_file(path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20) -> tuple[str, int]:
    """``(sha256 hex digest, size in bytes)`` of a file, read in chunks of ``chunk_bytes``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def weight_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"path", "size", "sha256", "sha256_from", ...}`` of a weight file (size in bytes).

    The hash comes from the download's checksum sidecar ``<file>.sha256`` (JSON written by
    :func:`htsr.zoo.download_weights`) when its recorded size and mtime match the file
    (``sha256_from: "sidecar"``, plus the sidecar's ``url`` and ``commit``), and is recomputed
    from the file's bytes otherwise (``sha256_from: "file"``).
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
        record |= {k: side.get(k) for k in ("url", "commit")}
    else:
        record |= {"sha256": sha256_file(p)[0], "sha256_from": "file"}
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
