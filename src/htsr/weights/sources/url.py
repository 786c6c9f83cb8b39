"""``source = url``: any direct download (``url``), analysed from its tensors.

A row's file is verified, in this order, by
1. the table's ``sha256`` column, when given;
2. else the hash prefix the file name carries, where the host uses that convention
   (``name-<8+ hex digits>.ext``: torch.hub, CompressAI, mmsegmentation);
3. else the sha256 and size **recorded at its first download**, in
   ``{file}.recorded.json`` beside it (kept when the file is deleted), and checked on every later
   download: a file that changed on the server since is refused, naming both hashes.

The record also goes into the sidecar and so into ``results/provenance.json``. The file is
kept as downloaded under the URL's suffix (``.pth``, ``.pth.tar``, ``.pt``, ``.bin``, ``.ckpt``,
``.safetensors``, ``.zip``; any other name, or none, as ``.pth``) and read with
:func:`htsr.weights.checkpoints.load_state_dict`, which recognises the format from the content (a
torch zip archive or legacy pickle, safetensors, a zip holding a checkpoint; pickles through
torch's ``weights_only`` loader, or inertly: :func:`htsr.weights.checkpoints.safe_load`).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from htsr.io import atomic_output
from htsr.weights.download import DEFAULT_ENDPOINTS, Endpoints, WeightsSource
from htsr.weights.download import download as _download
from htsr.weights.sources import cell

COLUMNS = ("url",)

#: Suffixes of the files this source keeps, longest first.
SUFFIXES = (".pth.tar", ".pth.zip", ".safetensors", ".ckpt", ".pth", ".bin", ".zip", ".pt")
_PREFIX = re.compile(r"-([a-f0-9]{8,})\.")


def _name(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def problems(row: Mapping[str, str]) -> list[str]:
    url = row["url"]
    if "://" not in url:
        return [f"a url row needs an absolute URL (scheme://...), got {url!r}"]
    return []


def suffix(row: Mapping[str, Any]) -> str:
    """The local file's suffix: the URL's when it is one of :data:`SUFFIXES`, else ``.pth``
    (``.th``, ``.pt.tar``, ``.model``, none). Only a name: the file is read by its content
    (:func:`htsr.weights.checkpoints.detect_format`)."""
    name = _name(cell(row, "url"))
    return next((s for s in SUFFIXES if name.endswith(s)), ".pth")


def record_path(dest: str | os.PathLike[str]) -> Path:
    """Where the hash of a file's first download is recorded: ``{file}.recorded.json``."""
    p = Path(dest)
    return p.with_name(p.name + ".recorded.json")


def verified_by(row: Mapping[str, Any]) -> str:
    """How the row's file is verified: ``table sha256``, ``hash in file name`` or
    ``recorded at first download`` (:attr:`htsr.weights.download.WeightsSource.verified_by`)."""
    return resolve(row).verified_by


def resolve(
    row: Mapping[str, Any], endpoints: Endpoints = DEFAULT_ENDPOINTS, dest: Any = None
) -> WeightsSource:
    url = cell(row, "url")
    match = _PREFIX.search(_name(url))
    expected, record = cell(row, "sha256"), ""
    if not expected and not match:
        record = str(record_path(dest)) if dest is not None else "(first download)"
        if dest is not None and record_path(dest).is_file():
            expected = json.loads(record_path(dest).read_text("utf-8"))["sha256"]
    return WeightsSource(model=str(row["model"]), kind="url", url=url, expected_sha256=expected,
                         hash_prefix=match.group(1) if match else "", record=record)  # fmt: skip


def download(
    row: Mapping[str, Any],
    dest: str | os.PathLike[str],
    *,
    endpoints: Endpoints = DEFAULT_ENDPOINTS,
    **options: Any,
) -> dict[str, Any]:
    """Fetch and verify the row's file (see the module docstring); record the first download's
    hash when nothing else names one."""
    src = resolve(row, endpoints, dest)
    result = _download(src, dest, endpoint=endpoints.hub, **options)
    record = record_path(dest)
    if src.record and not record.is_file():
        with atomic_output(record) as tmp:
            tmp.write_text(json.dumps({"url": src.url, "sha256": result["sha256"],
                                       "size": result["size"]}, indent=2) + "\n")  # fmt: skip
    return result | {"verified_by": src.verified_by}


def load(row: Mapping[str, Any], path: str | os.PathLike[str]) -> Any:
    """The file's state_dict (:func:`htsr.weights.checkpoints.load_state_dict`)."""
    from htsr.weights.checkpoints import load_state_dict  # torch, only when loading

    return load_state_dict(path)
