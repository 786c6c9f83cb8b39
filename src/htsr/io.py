"""File helpers every job uses: atomic writes, checksums, and a job's log file.

:func:`atomic_output` is the one way outputs are written: to a temporary file in the same
directory, moved into place with ``os.replace`` only once complete, so a killed writer never
leaves a partial file under the final name. :func:`job_log` sends a pipeline job's logging,
warnings and uncaught tracebacks to its Snakemake log file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


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


#: Table formats :func:`write_table` writes, by the file's suffix.
TABLE_SUFFIXES: tuple[str, ...] = (".tsv", ".csv", ".parquet")


def write_table(path: str | os.PathLike[str], table: pd.DataFrame) -> None:
    """Write ``table`` atomically as TSV, CSV or parquet (pyarrow), chosen by ``path``'s suffix
    (:data:`TABLE_SUFFIXES`; ``ValueError`` naming the path for any other). Array-valued
    columns (``evals``) are written by parquet as lists, by TSV/CSV as their text."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(
            f"{path}: unknown table format {suffix or '(no suffix)'!r}"
            f" (one of {', '.join(TABLE_SUFFIXES)})"
        )
    with atomic_output(path) as tmp:
        if suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, sep="\t" if suffix == ".tsv" else ",", index=False)


def sha256_file(path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20) -> tuple[str, int]:
    """``(sha256 hex digest, size in bytes)`` of a file, read in chunks of ``chunk_bytes``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
