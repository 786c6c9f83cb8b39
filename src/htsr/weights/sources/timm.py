"""``source = timm``: timm's pretrained model ``{model_id}.{weights_tag}``.

Without a ``url``, the file is the Hugging Face hub repository timm's pretrained config names
(``hf_hub_id``, file ``model.safetensors``), verified against the sha256 and size the hub
reports; with a ``url``, a torch.hub-style file as for torchvision rows. Loaded through timm's
own pretrained path (``create_model(..., pretrained=True, pretrained_cfg_overlay={"file"})``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from htsr.weights.download import DEFAULT_ENDPOINTS, DownloadError, Endpoints, WeightsSource
from htsr.weights.sources import cell, single_file_download
from htsr.weights.sources import torchvision as _tv

COLUMNS = ("model_id", "weights_tag")
#: load() returns the architecture with the weights loaded, not bare tensors.
ARCHITECTURE = True

HF_WEIGHTS_FILE = "model.safetensors"
"""File of a timm Hugging Face hub repository that holds the weights (what timm loads first)."""


def problems(row: Mapping[str, str]) -> list[str]:
    return []


def name(row: Mapping[str, Any]) -> str:
    """timm's pretrained name ``{model_id}.{weights_tag}``."""
    tag = cell(row, "weights_tag")
    return f"{row['model_id']}.{tag}" if tag else str(row["model_id"])


def suffix(row: Mapping[str, Any]) -> str:
    url = cell(row, "url")
    return _tv.url_suffix(url) if url else ".safetensors"


def resolve(row: Mapping[str, Any], endpoints: Endpoints = DEFAULT_ENDPOINTS) -> WeightsSource:
    """A URL source for a row with a ``url``, else the hub file timm's pretrained config names
    (revision from the ``revision`` column, else the config's pin, else ``main``). A timm row
    whose weights timm serves from a plain URL (no hub id) and that has no ``url`` raises
    :class:`DownloadError` naming that URL."""
    if cell(row, "url"):
        return _tv.url_source(row, endpoints)
    import timm.models

    model, timm_name = str(row["model"]), name(row)
    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None:
        raise DownloadError(
            f"{model}: timm {timm.__version__} has no pretrained model {timm_name!r}"
        )
    if not cfg.hf_hub_id:
        raise DownloadError(
            f"{model}: timm loads {timm_name} from {cfg.url or '(no URL)'}, not from the Hugging"
            " Face hub; set this row's url column to that URL"
        )
    repo_id, _, pinned = cfg.hf_hub_id.partition("@")
    filename = cfg.hf_hub_filename or HF_WEIGHTS_FILE
    if not filename.endswith(".safetensors"):
        raise DownloadError(
            f"{model}: timm's hub file for {timm_name} is {filename}, not a .safetensors file;"
            " set this row's url column to a torch.save file instead"
        )
    from huggingface_hub import hf_hub_url

    revision = cell(row, "revision") or pinned or "main"
    return WeightsSource(
        model=model,
        kind="hub",
        url=hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoints.hub),
        repo_id=repo_id,
        filename=filename,
        revision=revision,
        expected_sha256=cell(row, "sha256"),
    )


download = single_file_download(resolve)


def build(row: Mapping[str, Any]) -> Any:
    """``timm.create_model(name, pretrained=False)`` (the tag selects e.g. the class count)."""
    import timm

    return timm.create_model(name(row), pretrained=False)


def load(row: Mapping[str, Any], path: str | os.PathLike[str]) -> Any:
    import timm

    return timm.create_model(name(row), pretrained=True, pretrained_cfg_overlay={"file": str(path)})
