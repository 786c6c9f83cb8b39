"""``source = pytorchcv``: a model of the OSMR model store (imgclsmob / pytorchcv), the
"sandbox" models of both papers.

The file is the store's zip ``{name}-{error}-{sha1[:8]}.pth.zip`` of a GitHub release
(``url``, exactly as pytorchcv's ``get_model_file`` builds it), kept zipped and verified by the
store's SHA-1 (``sha1``) of the ``.pth`` inside (:mod:`htsr.weights.osmr`). It is analysed from its
tensors, read from inside the zip with torch's ``weights_only`` loader, so no pytorchcv version
of the time has to be installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from htsr.weights import osmr
from htsr.weights.download import DEFAULT_ENDPOINTS, Endpoints, WeightsSource
from htsr.weights.sources import cell, single_file_download

COLUMNS = ("model_id", "weights_tag", "url")

_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def problems(row: Mapping[str, str]) -> list[str]:
    """A pytorchcv row must name its store file exactly as the OSMR model store does."""
    if not _SHA1.match(row["sha1"]):
        return [
            f"a pytorchcv row needs the store's sha1 (40 lowercase hex digits, got {row['sha1']!r})"
        ]
    try:
        store = osmr.parse_store_url(row["url"])
    except ValueError as err:
        return [f"a pytorchcv row's url must be its model-store URL: {err}"]
    expected = osmr.store_url(store.name, store.error, row["sha1"], row["weights_tag"])
    if store.name != row["model_id"] or row["url"] != expected:
        return [
            f"url {row['url']!r} is not the store URL of model_id {row['model_id']!r}, release"
            f" {row['weights_tag']!r} (weights_tag) and sha1 {row['sha1'][:8]}...:"
            f" expected {expected!r}"
        ]
    return []


def suffix(row: Mapping[str, Any]) -> str:
    return ".pth.zip"


def store_url(row: Mapping[str, Any], base_url: str | None = None) -> str:
    """The model-store URL of a row, as pytorchcv's ``get_model_file`` builds it
    (:func:`htsr.weights.osmr.store_url`), with ``https://github.com/osmr/imgclsmob`` replaced by
    ``base_url`` (default: env ``HTSR_PYTORCHCV_URL``) for a mirror or the test server."""
    store = osmr.parse_store_url(cell(row, "url"))
    base = base_url or os.environ.get("HTSR_PYTORCHCV_URL") or osmr.IMGCLSMOB_REPO_URL
    return osmr.store_url(store.name, store.error, cell(row, "sha1"), row["weights_tag"], base)


def resolve(row: Mapping[str, Any], endpoints: Endpoints = DEFAULT_ENDPOINTS) -> WeightsSource:
    url = store_url(row, endpoints.pytorchcv_url)
    return WeightsSource(
        model=str(row["model"]),
        kind="pytorchcv",
        url=url,
        expected_sha256=cell(row, "sha256"),
        sha1=cell(row, "sha1"),
        member=osmr.parse_store_url(url).member,
    )


download = single_file_download(resolve)


def build(row: Mapping[str, Any]) -> Any:
    """Today's ``pytorchcv.model_provider.get_model(model_id, pretrained=False)`` (needs the
    ``pytorchcv`` package; the pipeline never builds these)."""
    try:
        from pytorchcv.model_provider import get_model
    except ImportError as err:
        raise ValueError(
            "building a pytorchcv architecture needs the pytorchcv package"
            " (pip install pytorchcv); its weight files are analysed without it"
        ) from err
    return get_model(row["model_id"], pretrained=False)


def load(row: Mapping[str, Any], path: str | os.PathLike[str]) -> Any:
    """The zip's state_dict (:func:`htsr.weights.checkpoints.load_state_dict`)."""
    from htsr.weights.checkpoints import load_state_dict  # torch, only when loading

    return load_state_dict(path)
