"""The det X = 1 condition (WeightWatcher 0.7.7's ``detX``, also called ERG).

WeightWatcher's ``detX`` option (alias ``ERG``) tests Martin's condition that an ideally
trained layer's tail X (its largest eigenvalues, the ESD scaled to mean 1) has ``det X = 1``.
:func:`detx_condition` counts how many of the largest eigenvalues are needed: going down from
the largest, the first ``k`` whose product ``∏ λᵢ`` (i in the top k) drops below 1 marks the
start of the tail. Its size compared with the power-law tail (``num_pl_spikes``) is
``ERG_gap = detX_num − num_pl_spikes``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DetX", "detx_condition", "rescale_to_mean_one"]


@dataclass(frozen=True)
class DetX:
    """Result of :func:`detx_condition`; field names are WeightWatcher's columns.

    Attributes
    ----------
    detX_num : int
        Number of eigenvalues in the det X = 1 tail (also WW's ``num_ERG_spikes``).
    detX_idx : int
        Index (ascending order) of the tail's smallest eigenvalue.
    detX_val : float
        That eigenvalue in the input's units (squared weight units).
    detX_val_unrescaled : float
        The same eigenvalue in the rescaled units (ESD mean 1). WeightWatcher
        (weightwatcher.py:3121-3127) names them this way round, although "unrescaled" holds
        the rescaled value; kept, so its tables and ours read the same.
    """

    detX_num: int
    detX_idx: int
    detX_val: float
    detX_val_unrescaled: float


def rescale_to_mean_one(evals: np.ndarray) -> tuple[np.ndarray, float]:
    """``(W_scale² · λ, W_scale)`` with ``W_scale = √(n / Σλ)``: the ESD scaled to mean 1.

    >>> rescale_to_mean_one(np.array([1.0, 3.0]))[0]
    array([0.5, 1.5])
    """
    ev = np.asarray(evals, dtype=float)
    w_scale = float(np.sqrt(ev.size) / np.sqrt(np.sum(ev)))
    return w_scale * w_scale * ev, w_scale


def detx_condition(evals: np.ndarray) -> DetX:
    """Smallest tail of the largest eigenvalues whose product, in mean-1 units, is below 1.

    For ``idx = n−1, n−2, …, 1`` the first with ``∏_{i ≥ idx} λ̃ᵢ < 1`` (``λ̃`` = ESD scaled to
    mean 1, ascending) gives ``detX_num = n − idx``; if none, ``detX_num = n`` and ``idx = 1``
    (WW's loop leaves it there). Fewer than 2 eigenvalues, or all equal: ``(0, 0)``
    (``RMT_Util.detX_constraint``, RMT_Util.py:1116). The product is accumulated as a sum of
    logarithms from the top (the same comparison, without under- or overflow).

    Parameters
    ----------
    evals : array
        All eigenvalues of the layer (squared weight units), ascending.

    Examples
    --------
    >>> d = detx_condition(np.array([0.1, 0.2, 0.3, 0.4, 4.0]))
    >>> d.detX_num, d.detX_idx
    (3, 2)
    """
    ev = np.asarray(evals, dtype=float)
    if ev.size < 2 or not ev[0] < ev[-1]:
        return DetX(0, 0, float(ev[0]) if ev.size else float("nan"), float("nan"))
    scaled, _ = rescale_to_mean_one(ev)
    with np.errstate(divide="ignore"):
        logs = np.cumsum(np.log(scaled[::-1]))[::-1]  # logs[i] = Σ_{j ≥ i} ln λ̃_j
    below = np.nonzero(logs[1:] < 0.0)[0] + 1
    idx = int(below[-1]) if below.size else 1
    num = ev.size - idx if below.size else ev.size
    return DetX(num, idx, float(ev[idx]), float(scaled[idx]))
