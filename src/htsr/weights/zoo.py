"""One entry point for a model row: where its weights go, how they are fetched, what is analysed.

The work is done elsewhere, one job per module: the table in :mod:`htsr.studies.table`, verified
downloads in :mod:`htsr.weights.download`, and each ``source`` of the table in its module of
:mod:`htsr.weights.sources` (``torchvision``, ``timm``, ``pytorchcv``, ``hf``). This module
dispatches a row to its source:

* :func:`weights_path` — where the pipeline keeps the row's weights (no network, no torch);
* :func:`download_weights` — fetch and verify them (atomic, retried, resumable, offline);
* :func:`load_weights` — what :func:`htsr.analyze` reads: the loaded architecture for
  torchvision and timm rows, the file's tensors (read one at a time) for the others.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from htsr.io import sha256_file
from htsr.weights import sources
from htsr.weights.download import DownloadError, Endpoints, WeightsSource
from htsr.weights.errors import CheckpointError

__all__ = [
    "DownloadError",
    "WeightsLoadError",
    "WeightsSource",
    "build_model",
    "download_weights",
    "load_model",
    "load_weights",
    "pytorchcv_url",
    "sha256_file",
    "weights_key",
    "weights_path",
    "weights_source",
    "weights_url",
]

_cell = sources.cell
HF_WEIGHTS_FILE = sources.get("timm").HF_WEIGHTS_FILE


class WeightsLoadError(RuntimeError):
    """A weight file does not load into its architecture; the message names the model and file."""


def _endpoints(
    torchvision_base_url: str | None, hf_endpoint: str | None, pytorchcv_base_url: str | None
) -> Endpoints:
    return Endpoints(torchvision_base_url, hf_endpoint, pytorchcv_base_url)


def weights_url(row: Mapping[str, Any], base_url: str | None = None) -> str:
    """The torch.hub-style URL of a torchvision row, or of any row's ``url``
    (:func:`htsr.weights.sources.torchvision.weights_url`)."""
    return sources.get("torchvision").weights_url(row, base_url)


def pytorchcv_url(row: Mapping[str, Any], base_url: str | None = None) -> str:
    """The OSMR model-store URL of a pytorchcv row
    (:func:`htsr.weights.sources.pytorchcv.store_url`)."""
    return sources.get("pytorchcv").store_url(row, base_url)


def weights_source(
    row: Mapping[str, Any],
    *,
    torchvision_base_url: str | None = None,
    hf_endpoint: str | None = None,
    pytorchcv_base_url: str | None = None,
) -> WeightsSource:
    """Where a row's weights come from and how they are verified (its source's ``resolve``)."""
    endpoints = _endpoints(torchvision_base_url, hf_endpoint, pytorchcv_base_url)
    return sources.get(row["source"]).resolve(row, endpoints)


def weights_key(row: Mapping[str, Any]) -> str:
    """The name of a row's weight file: its ``weights`` cell, else its model key."""
    return _cell(row, "weights") or str(row["model"])


def weights_path(row: Mapping[str, Any], root: str | os.PathLike[str]) -> Path:
    """Where a row's weights live: ``{root}/{weights}{suffix}``, the suffix its source gives
    (``.pth``, ``.safetensors``, ``.pth.zip``, or ``.hf.json``, the manifest of a hub
    snapshot whose files are in ``{root}/{weights}.hf/``). Pure: no network, no torch."""
    return Path(root) / f"{weights_key(row)}{sources.get(row['source']).suffix(row)}"


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
    """Fetch and verify one row's weights to ``dest`` (atomically); skip them if present.

    The row's source does it (:mod:`htsr.weights.sources`), through :mod:`htsr.weights.download`:
    torch.hub-style URLs verified by the sha256 prefix in the file name (or the table's ``sha256``),
    hub files by the sha256 and size the hub reports at the resolved commit, OSMR store zips by the
    store's SHA-1 of the ``.pth`` inside. ``torchvision_base_url``, ``hf_endpoint`` and
    ``pytorchcv_base_url`` point at mirrors (:class:`htsr.weights.download.Endpoints`); ``offline``
    (or env ``HTSR_OFFLINE=1``) only verifies what is on disk. Connection errors and HTTP 5xx are
    retried ``retries`` times, waiting ``backoff_s * 2**k`` seconds. A download that fails
    verification raises :class:`DownloadError` and leaves nothing at ``dest``.

    Returns ``{"model", "url", "path", "sha256", "size", "fetched", "revision", "commit"}``.
    """
    endpoints = _endpoints(torchvision_base_url, hf_endpoint, pytorchcv_base_url)
    return sources.get(row["source"]).download(
        row, dest, endpoints=endpoints, offline=offline, retries=retries, backoff_s=backoff_s,
        progress=progress,
    )  # fmt: skip


def build_model(row: Mapping[str, Any]) -> Any:
    """The row's architecture with random initial weights, in eval mode (its source's
    ``build``: torchvision ``get_model(model_id, weights=None)``, timm ``create_model(name,
    pretrained=False)``, pytorchcv ``get_model(model_id, pretrained=False)``)."""
    source = sources.get(row["source"])
    if not hasattr(source, "build"):
        raise ValueError(f"{row['model']}: a {row['source']} row has no architecture to build")
    try:
        net = source.build(row)
    except (ValueError, RuntimeError, KeyError) as err:
        raise ValueError(
            f"{row['model']}: cannot build architecture {row.get('model_id')!r}"
            f" ({row['source']}): {err}"
        ) from err
    return net.eval()


def load_model(row: Mapping[str, Any], weights_path: str | os.PathLike[str]) -> Any:
    """The row's architecture with the weights in ``weights_path`` (strict load), in eval mode
    (torchvision and timm rows). A missing, extra or misshapen tensor raises
    :class:`WeightsLoadError` naming the model and the file."""
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"{row['model']}: weight file {path} does not exist")
    try:
        net = sources.get(row["source"]).load(row, path)
    except Exception as err:
        raise WeightsLoadError(
            f"{row['model']}: weight file {path} does not load into {row.get('model_id')!r}"
            f" ({row['source']}): {type(err).__name__}: {err}"
        ) from err
    return net.eval()


def load_weights(row: Mapping[str, Any], weights_path: str | os.PathLike[str]) -> Any:
    """What :func:`htsr.analyze` reads for a row (its source's ``load``): the loaded
    architecture for torchvision and timm rows; for pytorchcv and hf rows the file's tensors,
    read without building the architecture (no code from the file runs). A file that does not
    load raises :class:`WeightsLoadError` naming the model and the file."""
    if getattr(sources.get(row["source"]), "ARCHITECTURE", False):
        return load_model(row, weights_path)
    try:
        return sources.get(row["source"]).load(row, weights_path)
    except (CheckpointError, DownloadError, OSError) as err:
        raise WeightsLoadError(f"{row['model']}: {err}") from err
