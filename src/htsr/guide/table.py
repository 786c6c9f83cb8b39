"""One method applied to a per-layer α table: which layers it tunes and the value each gets.

:func:`guide_table` takes the table of :func:`htsr.guide.estimators.layer_alphas` (or any
table with ``layer``, ``alpha``, ``eigs_num``, ``n_params``) and returns it with the columns
``tuned`` (the method acts on the layer), ``block``, ``factor`` (learning-rate or weight-decay
factor relative to the base value; 1 for untuned layers) or ``sparsity`` (pruning). It is pure
(no model), so the command line, the scheduler and the tests share it.

Which layers each method tunes (published code):

* ``tempbalance``, ``alphadecay``: all but the first and last Conv2d/Linear, and only layers
  with ≥ 50 eigenvalues (:func:`htsr.guide.rules.tempbalance_selection`).
* ``modelbalancing``: layers with ≥ 50 eigenvalues (``net_esd_estimator(eigs_num_thresh=50)``),
  the last one dropped (``remove_last_layer=True`` in the published script); the rate is set per
  block, layers outside blocks keep the base rate.
* ``alphapruning``: the layers inside numbered blocks (LLaMA's ``model.layers.{i}``, ViT's
  ``blocks.{i}``: the published code prunes ``model.model.layers`` / ``model.blocks`` only, not
  embeddings or the head), with α averaged per block; a model without numbered blocks (a plain
  CNN) has all its layers pruned layer-wise. ``blocks="layer"`` forces layer-wise on all layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from htsr.guide import rules

__all__ = ["METHODS", "MethodSpec", "guide_summary", "guide_table"]


class MethodSpec:
    """The estimator settings and optimizer key of one method."""

    def __init__(self, estimator: str, key: str, xmin_pos: float = 2, every: int = 1) -> None:
        self.estimator = estimator
        self.key = key
        self.xmin_pos = xmin_pos
        self.every = every


#: Per method: α estimator, the optimizer key it sets, ``xmin_pos`` and the published refit
#: interval in calls of :meth:`htsr.guide.scheduler.AlphaGuide.step` (TempBalance: once per
#: epoch; Model Balancing: ``esd_interval=100`` steps; AlphaDecay: ``unbalancedWD_every=500``).
METHODS: dict[str, MethodSpec] = {
    "tempbalance": MethodSpec("median", "lr", xmin_pos=2, every=1),
    "modelbalancing": MethodSpec("median", "lr", xmin_pos=1.5, every=100),
    "alphadecay": MethodSpec("median", "weight_decay", xmin_pos=2, every=500),
    "alphapruning": MethodSpec("peak", "sparsity"),
}


def _blocks(layers: pd.Series, mode: str) -> tuple[list[Any], np.ndarray]:
    names = [str(x) for x in layers]
    if mode == "layer":
        return [None] * len(names), np.ones(len(names), dtype=bool)
    if mode != "auto":
        raise ValueError(f"blocks must be 'auto' or 'layer', got {mode!r}")
    idx = [rules.block_index(n) for n in names]
    inside = np.array([b is not None for b in idx])
    if not inside.any():
        return [None] * len(names), np.ones(len(names), dtype=bool)
    return idx, inside


def guide_table(
    table: pd.DataFrame,
    method: str,
    *,
    base: float = 1.0,
    sparsity: float | None = None,
    epsilon: float = 0.3,
    blocks: str = "auto",
    **options: Any,
) -> pd.DataFrame:
    """``table`` with the method's ``tuned``, ``block`` and ``factor``/``value`` or ``sparsity``.

    ``base``: the scheduled learning rate or weight decay (``value = factor·base``; the rules
    are evaluated at ``base`` as published). ``sparsity``/``epsilon``/``blocks``: AlphaPruning.
    ``options`` go to the rule (``lr_min_ratio``, ``lr_max_ratio``, ``wd_min_ratio``,
    ``wd_max_ratio``, ``sigmoid_min``, ``sigmoid_max``, ``exp_temp``, ``eigs_thresh``).
    Layers whose α is NaN (a failed fit) are never tuned.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    out = table.copy().reset_index(drop=True)
    alpha = out["alpha"].to_numpy(dtype=float)
    ok = np.isfinite(alpha)
    if method == "alphapruning":
        if sparsity is None:
            raise ValueError("alphapruning needs a target sparsity")
        labels, inside = _blocks(out["layer"], blocks)
        tuned = inside & ok
        if not tuned.any():
            raise ValueError("alphapruning: no layer with a fitted alpha to prune")
        s = np.zeros(len(out))
        s[tuned] = rules.alphapruning_sparsity(
            alpha[tuned], out["n_params"].to_numpy()[tuned], sparsity, epsilon=epsilon,
            blocks=[labels[i] for i in np.flatnonzero(tuned)] if blocks == "auto" else None,
        )  # fmt: skip
        out["block"] = labels
        out["tuned"] = tuned
        out["sparsity"] = s
        return out
    thresh = int(options.pop("eigs_thresh", 50))
    eigs = out["eigs_num"].to_numpy()
    if method == "modelbalancing":
        keep = eigs >= thresh
        pos = np.flatnonzero(keep)
        if len(pos):
            keep[pos[-1]] = False  # remove_last_layer among the analysed layers
    else:
        keep = rules.tempbalance_selection(eigs, eigs_thresh=thresh)
    tuned = keep & ok
    value = np.full(len(out), float(base))
    if tuned.any():
        a = alpha[tuned]
        if method == "tempbalance":
            value[tuned] = rules.tempbalance_lr(a, base, **options)
        elif method == "alphadecay":
            value[tuned] = rules.alphadecay_wd(a, base, **options)
        else:
            names = out["layer"].astype(str).to_numpy()[tuned].tolist()
            value[tuned] = rules.modelbalancing_lr(a, names, base, **options)
    out["block"] = [rules.block_index(str(n)) for n in out["layer"]]
    out["tuned"] = tuned
    out["value"] = value
    out["factor"] = value / base if base else np.nan
    return out


def guide_summary(guided: pd.DataFrame, method: str) -> dict[str, Any]:
    """Model-level summary: layers tuned; the factor range; for pruning the parameter-weighted
    mean sparsity of the pruned layers (= the target) and of the whole table."""
    tuned = guided["tuned"].to_numpy(dtype=bool)
    out: dict[str, Any] = {"method": method, "n_layers": int(len(guided)),
                           "n_tuned": int(tuned.sum())}  # fmt: skip
    if method == "alphapruning":
        p = guided["n_params"].to_numpy(dtype=float)
        s = guided["sparsity"].to_numpy(dtype=float)
        out["weighted_sparsity_tuned"] = float(np.sum(p[tuned] * s[tuned]) / np.sum(p[tuned]))
        out["weighted_sparsity_all"] = float(np.sum(p * s) / np.sum(p))
        out["sparsity_min"] = float(s[tuned].min())
        out["sparsity_max"] = float(s[tuned].max())
    elif tuned.any():
        f = guided["factor"].to_numpy(dtype=float)[tuned]
        out["factor_min"] = float(f.min())
        out["factor_max"] = float(f.max())
    return out
