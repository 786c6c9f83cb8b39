"""A model given by path, address, module or state_dict, analysed: the weights stage's door to
:func:`htsr.spectral.metrics.analyze`, and what :func:`htsr.analyze` is.

The spectral stage works on tensors only (an ``nn.Module`` or a state_dict); reading files is
this stage's job. :func:`open_weights` turns a checkpoint path, a hub folder or manifest, or an
``hf://OWNER/REPO[@REVISION]`` address (downloaded and verified first,
:func:`htsr.weights.sources.hf.fetch_uri`) into a lazy mapping of tensors
(:func:`htsr.weights.checkpoints.open_checkpoint`), and :func:`analyze` analyses it.

Example
-------
>>> import torch
>>> table = analyze(torch.nn.Linear(100, 60))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from htsr.spectral import metrics
from htsr.weights.checkpoints import open_checkpoint
from htsr.weights.sources import hf

__all__ = ["analyze", "open_weights"]

_HF_URI = re.compile(r"^hf://")


def open_weights(path: str | os.PathLike[str]) -> Mapping[str, torch.Tensor]:
    """A lazy name → tensor mapping of the checkpoint at ``path``
    (:func:`htsr.weights.checkpoints.open_checkpoint`), where ``path`` may also be an
    ``hf://OWNER/REPO[@REVISION]`` address, downloaded and verified first
    (:func:`htsr.weights.sources.hf.fetch_uri`). A bad file raises
    :class:`htsr.weights.checkpoints.CheckpointError` naming it."""
    text = os.fspath(path)
    if _HF_URI.match(text):
        return open_checkpoint(hf.fetch_uri(text))
    return open_checkpoint(path)


def _source(model_or_path: Any) -> nn.Module | Mapping[str, torch.Tensor]:
    if isinstance(model_or_path, (str, os.PathLike)):
        return open_weights(model_or_path)
    if isinstance(model_or_path, (nn.Module, Mapping)):
        return model_or_path
    raise TypeError(
        "analyze() takes an nn.Module, a state_dict or a checkpoint path, "
        f"not {type(model_or_path).__name__}"
    )


def analyze(
    model_or_path: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike[str],
    convention: str = "paper",
    **options: Any,
) -> pd.DataFrame:
    """Spectral metrics of every weight matrix of a model, one row per matrix
    (:func:`htsr.spectral.metrics.analyze`, whose parameters ``convention`` and ``options``
    are, and whose docstring gives the columns and conventions).

    ``model_or_path`` is an ``nn.Module``, a state_dict, a checkpoint file
    (``.pth``/``.pt``/``.bin``/``.safetensors``), a folder in the Hugging Face hub's layout
    (one weights file, or a shard index and its shards, with its ``config.json``), or
    ``hf://OWNER/REPO[@REVISION]`` (downloaded and verified first,
    :func:`htsr.weights.sources.hf.fetch_uri`). Files are read one tensor at a time
    (:func:`open_weights`); a bad file raises :class:`htsr.weights.checkpoints.CheckpointError`
    naming it.
    """
    return metrics.analyze(_source(model_or_path), convention, **options)
