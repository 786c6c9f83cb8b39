"""α-guided training and compression: the published rules of TempBalance, Model Balancing,
AlphaDecay, AlphaPruning and FARMS, reproduced from their code (see ``docs/guide.md``).

* :mod:`htsr.guide.estimators`: the methods' α estimators (Hill at the median, ``alpha_peak``,
  FARMS) and the per-layer table :func:`layer_alphas`.
* :mod:`htsr.guide.rules`: pure functions from α to learning rates, weight decays, sparsities.
* :mod:`htsr.guide.table`: one method applied to an α table (:func:`guide_table`).
* :mod:`htsr.guide.scheduler`: optimizer parameter groups and :class:`AlphaGuide`, which refits.
* :mod:`htsr.guide.prune`: magnitude (and Wanda-style) pruning to an allocation.
"""

from htsr.guide.estimators import alpha_peak, farms_eigenvalues, hill_median, layer_alphas
from htsr.guide.prune import alphapruning, prune_model, pruning_mask
from htsr.guide.rules import (
    alphadecay_wd,
    alphapruning_sparsity,
    modelbalancing_lr,
    tempbalance_lr,
    tempbalance_selection,
)
from htsr.guide.scheduler import AlphaGuide, param_groups
from htsr.guide.table import METHODS, guide_summary, guide_table

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
