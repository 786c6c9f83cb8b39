"""``source = torchvision``: a torchvision weights enum (``weights_tag``, e.g.
``ResNet18_Weights.IMAGENET1K_V1``) of architecture ``model_id``.

The file is the enum's torch.hub URL (or the row's ``url``), verified by the sha256 prefix in its
name (``resnet18-f37072fd.pth``) or the table's ``sha256``. It is loaded through torchvision's
own pretrained-weights path reading our verified file, so torchvision's fix-ups (DenseNet's
legacy key renaming, GoogLeNet dropping its auxiliary heads) run unchanged.
"""

from __future__ import annotations

import os
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from htsr.weights.download import (
    DEFAULT_ENDPOINTS,
    DownloadError,
    Endpoints,
    WeightsSource,
    hash_prefix,
)
from htsr.weights.sources import cell, single_file_download

COLUMNS = ("model_id", "weights_tag")
#: load() returns the architecture with the weights loaded, not bare tensors.
ARCHITECTURE = True

URL_PREFIX = "https://download.pytorch.org/models/"
"""Prefix of torchvision's weight URLs; ``Endpoints.torchvision_url`` replaces it."""


def problems(row: Mapping[str, str]) -> list[str]:
    """A torchvision row's ``url``, if set, must name a torch.save file."""
    if row.get("url", "").endswith(".safetensors"):
        return ["a torchvision row's url must name a torch.save file, not .safetensors"]
    return []


def url_suffix(url: str) -> str:
    """``.safetensors`` when the URL's file name ends so, else ``.pth``."""
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return ".safetensors" if name.endswith(".safetensors") else ".pth"


def suffix(row: Mapping[str, Any]) -> str:
    url = cell(row, "url")
    return url_suffix(url) if url else ".pth"


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
    url = cell(row, "url")
    if url and "://" not in url:
        url = urllib.parse.urljoin((base or URL_PREFIX).rstrip("/") + "/", url)
    elif not url:
        if row["source"] != "torchvision":
            raise ValueError(f"{model}: a {row['source']} row without a url column has no URL")
        import torchvision.models

        try:
            url = torchvision.models.get_weight(row["weights_tag"]).url
        except (ValueError, KeyError, AttributeError) as err:
            raise ValueError(
                f"{model}: torchvision has no weights named {row['weights_tag']!r}: {err}"
            ) from err
    if base and url.startswith(URL_PREFIX):
        url = base.rstrip("/") + "/" + url[len(URL_PREFIX) :]
    return url


def url_source(row: Mapping[str, Any], endpoints: Endpoints) -> WeightsSource:
    """A ``kind="url"`` source: :func:`weights_url`, verified by the table's ``sha256`` or the
    hash prefix in the file name."""
    url = weights_url(row, endpoints.torchvision_url)
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return WeightsSource(
        model=str(row["model"]),
        kind="url",
        url=url,
        expected_sha256=cell(row, "sha256"),
        hash_prefix=hash_prefix(name),
    )


def resolve(row: Mapping[str, Any], endpoints: Endpoints = DEFAULT_ENDPOINTS) -> WeightsSource:
    return url_source(row, endpoints)


download = single_file_download(resolve)


def build(row: Mapping[str, Any]) -> Any:
    """``torchvision.models.get_model(model_id, weights=None)``, shaped as the row's weights
    build it: a builder that takes a backbone's weights gets ``weights_backbone=None`` (nothing
    is downloaded), and one with ``aux_loss`` (FCN, DeepLabV3) gets ``aux_loss=True``, as
    torchvision sets it for its pretrained segmentation weights."""
    import inspect

    import torchvision.models

    builder = torchvision.models.get_model_builder(row["model_id"])
    takes = inspect.signature(builder).parameters
    kwargs: dict[str, Any] = {}
    if "weights_backbone" in takes:
        kwargs["weights_backbone"] = None
    if "aux_loss" in takes and cell(row, "weights_tag"):
        kwargs["aux_loss"] = True
    return builder(weights=None, **kwargs)


_HUB_DIR_LOCK = threading.Lock()


@contextmanager
def _torch_hub_cache_holding(path: Path, filename: str) -> Iterator[None]:
    """Make ``torch.hub`` find ``path`` as its cached download ``checkpoints/<filename>``.

    torchvision's builders load pretrained weights with
    ``load_state_dict_from_url(weights.url)``, which uses a file already in the torch.hub cache
    instead of downloading. Pointing a temporary cache at our verified file lets torchvision's
    own loading code run unchanged. The hub directory is restored afterwards; a lock keeps
    threads apart.
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


def load(row: Mapping[str, Any], path: str | os.PathLike[str]) -> Any:
    """``get_model(model_id, weights=weights_tag)`` reading ``path`` (strict), in eval mode."""
    import torchvision.models

    path = Path(path)
    if path.suffix == ".safetensors":
        raise ValueError("torchvision rows need a torch.save file, not .safetensors")
    weights = torchvision.models.get_weight(row["weights_tag"])
    filename = urllib.parse.urlsplit(weights.url).path.rsplit("/", 1)[-1]
    with _torch_hub_cache_holding(path, filename):
        return torchvision.models.get_model(row["model_id"], weights=weights)


__all__ = ["COLUMNS", "DownloadError", "build", "download", "load", "problems", "resolve",
           "suffix", "weights_url"]  # fmt: skip
