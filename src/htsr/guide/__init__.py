"""α-guided training and compression: the published rules of TempBalance, Model Balancing,
AlphaDecay, AlphaPruning and FARMS, reproduced from their code (see ``docs/guide.md``).

* :mod:`htsr.guide.estimators`: the methods' α estimators (Hill at the median, ``alpha_peak``,
  FARMS) and the per-layer table :func:`layer_alphas`.
* :mod:`htsr.guide.rules`: pure functions from α to learning rates, weight decays, sparsities.
* :mod:`htsr.guide.table`: one method applied to an α table (:func:`guide_table`).
* :mod:`htsr.guide.scheduler`: optimizer parameter groups and :class:`AlphaGuide`, which refits.
* :mod:`htsr.guide.prune`: magnitude (and Wanda-style) pruning to an allocation.
"""

import importlib
from typing import Any

#: where each public name lives; the submodules are imported on first use (PEP 562), so that
#: importing ``htsr.guide.compare`` (the workflow does, to read comparison studies) does not
#: import torch
_WHERE = {
    "AlphaGuide": "scheduler",
    "METHODS": "table",
    "alpha_peak": "estimators",
    "alphadecay_wd": "rules",
    "alphapruning": "prune",
    "alphapruning_sparsity": "rules",
    "farms_eigenvalues": "estimators",
    "guide_summary": "table",
    "guide_table": "table",
    "hill_median": "estimators",
    "layer_alphas": "estimators",
    "modelbalancing_lr": "rules",
    "param_groups": "scheduler",
    "prune_model": "prune",
    "pruning_mask": "prune",
    "tempbalance_lr": "rules",
    "tempbalance_selection": "rules",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"htsr.guide.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'htsr.guide' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "AlphaGuide",
    "alpha_peak",
    "alphadecay_wd",
    "alphapruning",
    "alphapruning_sparsity",
    "farms_eigenvalues",
    "guide_summary",
    "guide_table",
    "hill_median",
    "layer_alphas",
    "modelbalancing_lr",
    "param_groups",
    "prune_model",
    "pruning_mask",
    "tempbalance_lr",
    "tempbalance_selection",
]
