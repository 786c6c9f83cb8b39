"""``source = trained``: a model the pipeline trains itself (:mod:`htsr.experiments.grids`).

Its file, ``resources/weights/{weights}.trained.pt`` (a ``torch.save`` state_dict), is made by
the rule ``train_model`` (:mod:`htsr.experiments.train`) beside ``{weights}.training.json``
(accuracies, the training curve), never downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

COLUMNS = ("architecture",)
SUFFIX = ".trained.pt"


def problems(row: Mapping[str, str]) -> list[str]:
    return []


def suffix(row: Mapping[str, Any]) -> str:
    return SUFFIX


def download(row: Mapping[str, Any], dest: Any, **options: Any) -> dict[str, Any]:
    raise ValueError(
        f"{row['model']}: a trained model is made by the rule train_model, not downloaded"
    )


def load(row: Mapping[str, Any], path: str | os.PathLike[str]) -> Any:
    """The trained state_dict (:func:`htsr.weights.checkpoints.load_state_dict`)."""
    from htsr.weights.checkpoints import load_state_dict  # torch, only when loading

    return load_state_dict(path)
