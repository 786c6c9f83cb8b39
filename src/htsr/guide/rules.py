"""α-guided rules: per-layer learning rates, weight decays and sparsities from per-layer α.

Pure functions of arrays (no model): ``alpha`` holds one α per layer in model order, ``names``
the layer names, ``n_params`` their weight counts. Each reproduces the published code:

* TempBalance (Zhou et al., NeurIPS 2023; YefanZhou/TempBalance ``tempbalance.py``
  ``Tempbalance.build_optimizer_param_group`` and ``get_layer_temps('tb_linear_map')``):
  :func:`tempbalance_selection` drops the first and the last layer, then every layer with
  fewer than 50 eigenvalues; :func:`tempbalance_lr` maps α linearly onto
  ``[0.5·lr, 1.5·lr]``, ``lr_t = interp(α, [α_min, α_max], [0.5 lr, 1.5 lr])`` (``lr`` the
  scheduled rate of the epoch, cosine in ``main_tb.py``): the most heavy-tailed layer (smallest
  α, best trained) gets the smallest rate.
* Model Balancing (Liu et al., EMNLP 2024; ZihangHLiu/ModelBalancing
  ``transformers/src/transformers/utils/esd_utils.py`` ``get_layer_temps('tb_layer_blocks',
  schedule_func='sigmoid', tb_unit='block')``): :func:`modelbalancing_lr` averages α per
  transformer block (the first integer in the dotted name, regex ``(.*?)\\.(\\d+)\\.(.*)``), takes
  each block's deviation ``x = ᾱ_b − mean_b ᾱ_b`` and sets ``lr_b = lr · 10^f(x)`` with
  ``f(x) = s·(σ(T·x) − 1/2)``, σ the logistic function, ``T = exp_temp = 10``,
  ``s = sigmoid_max`` for x > 0 else ``sigmoid_min`` (defaults 1 and 2 in
  ``training_args.py``); a layer outside every block keeps ``lr``.
* AlphaDecay (He et al. 2025; hed-ucas/AlphaDecay ``LLaMa-pretraining/WeightDecayUnbalance.py``
  ``modulewise_AlphaDecay.get_layer_temps('tb_linear_map')``): :func:`alphadecay_wd` maps α
  linearly onto ``[0.666·wd, 3·wd]`` (``torchrun_main.py`` defaults; the README's runs give
  0.6666): lighter tails (larger α) get stronger decay. The same layer selection as TempBalance.
* AlphaPruning (Lu et al., NeurIPS 2024; haiquanlu/AlphaPruning ``lib/prune.py``
  ``ww_sparsity``): :func:`alphapruning_sparsity` averages α per block (``mapping_type=
  'block_wise'``), maps it linearly onto ``[1 − ε, 1 + ε]`` and rescales so that the
  parameter-weighted mean sparsity equals the target: ``s_l = S·r_l·Σ_k P_k / Σ_k P_k r_k``.

Example
-------
>>> alpha = np.array([2.0, 3.0, 4.0])
>>> tempbalance_lr(alpha, 0.1).round(3).tolist()
[0.05, 0.1, 0.15]
>>> s = alphapruning_sparsity(alpha, np.array([100, 100, 200]), 0.5, epsilon=0.2)
>>> s.round(4).tolist(), float(np.average(s, weights=[100, 100, 200]))
([0.381, 0.4762, 0.5714], 0.5)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "AlphaDecayDefaults",
    "alphadecay_wd",
    "alphapruning_sparsity",
    "block_index",
    "block_means",
    "linear_map",
    "modelbalancing_lr",
    "tempbalance_lr",
    "tempbalance_selection",
]

FloatArray = NDArray[np.float64]

#: Model Balancing's block pattern: the first integer component of a dotted module name.
BLOCK_PATTERN = re.compile(r"(.*?)\.(\d+)\.(.*)")


class AlphaDecayDefaults:
    """AlphaDecay's published constants (``torchrun_main.py`` argparse defaults)."""

    wd_min_ratio = 0.666
    wd_max_ratio = 3.0
    every = 500  # --unbalancedWD_every: refit α every 500 optimizer steps


def linear_map(alpha: ArrayLike, low: float, high: float) -> FloatArray:
    """``np.interp(α, [min α, max α], [low, high])``: the smallest α gets ``low``, the largest
    ``high``, linearly between (all equal α: ``high``, as ``np.interp`` does)."""
    a = np.asarray(alpha, dtype=np.float64)
    return np.interp(a, [a.min(), a.max()], [low, high])


def tempbalance_selection(
    eigs_num: ArrayLike,
    *,
    remove_first: bool = True,
    remove_last: bool = True,
    eigs_thresh: int = 50,
) -> NDArray[np.bool_]:
    """Which layers TempBalance tunes: all but the first and the last (in model order), then
    only those whose pooled ESD has ≥ ``eigs_thresh`` eigenvalues (``build_optimizer_param_group``
    drops rows 0 and the last, then filters ``eigs_num``)."""
    n = np.asarray(eigs_num)
    keep = np.ones(len(n), dtype=bool)
    if remove_first and len(n):
        keep[0] = False
    if remove_last and len(n) > 1:
        keep[-1] = False
    return keep & (n >= eigs_thresh)


def tempbalance_lr(
    alpha: ArrayLike, lr: float, lr_min_ratio: float = 0.5, lr_max_ratio: float = 1.5
) -> FloatArray:
    """TempBalance's ``tb_linear_map``: ``interp(α, [α_min, α_max], [lr_min_ratio·lr,
    lr_max_ratio·lr])`` for the selected layers (``get_layer_temps``)."""
    return linear_map(alpha, lr_min_ratio * lr, lr_max_ratio * lr)


def alphadecay_wd(
    alpha: ArrayLike,
    wd: float,
    wd_min_ratio: float = AlphaDecayDefaults.wd_min_ratio,
    wd_max_ratio: float = AlphaDecayDefaults.wd_max_ratio,
) -> FloatArray:
    """AlphaDecay's ``tb_linear_map``: ``interp(α, [α_min, α_max], [wd_min_ratio·wd,
    wd_max_ratio·wd])``."""
    return linear_map(alpha, wd_min_ratio * wd, wd_max_ratio * wd)


def block_index(name: str) -> int | None:
    """The block number of a layer name (``roberta.encoder.layer.3.attention.self.query`` → 3),
    the first integer component between dots, or None (Model Balancing's regex)."""
    m = BLOCK_PATTERN.search(name)
    return int(m.group(2)) if m else None


def block_means(alpha: ArrayLike, blocks: Sequence[object]) -> FloatArray:
    """Each layer's α replaced by the mean α of its block (``blocks[i]`` the block label of
    layer i; a None label keeps the layer's own α)."""
    a = np.asarray(alpha, dtype=np.float64)
    out = a.copy()
    labels = [b for b in dict.fromkeys(blocks) if b is not None]
    for b in labels:
        idx = [i for i, x in enumerate(blocks) if x == b]
        out[idx] = np.mean(a[idx])
    return out


def modelbalancing_lr(
    alpha: ArrayLike,
    names: Sequence[str],
    lr: float,
    *,
    sigmoid_min: float = 2.0,
    sigmoid_max: float = 1.0,
    exp_temp: float = 10.0,
    unit: str = "block",
) -> FloatArray:
    """Model Balancing's block-wise sigmoid rule (``tb_layer_blocks``, ``sigmoid``, ``block``).

    Block means ``ᾱ_b`` in order of first appearance; ``x_b = ᾱ_b − mean(ᾱ)``;
    ``f = sigmoid_max·(σ(T x) − ½)`` if ``x > 0`` else ``sigmoid_min·(σ(T x) − ½)``;
    ``lr_b = lr·10^f``; layers outside any block (no integer component) get ``lr``.
    ``unit="layer"`` (not in the published script, whose ``tb_unit`` is ``block``): every layer
    is a block of its own, for networks without numbered blocks (a plain CNN), where the block
    rule would tune nothing.
    """
    a = np.asarray(alpha, dtype=np.float64)
    if unit not in ("block", "layer"):
        raise ValueError(f"unit must be 'block' or 'layer', got {unit!r}")
    blocks = [block_index(n) for n in names] if unit == "block" else list(range(len(a)))
    order = [b for b in dict.fromkeys(blocks) if b is not None]
    out = np.full(len(a), float(lr))
    if not order:
        return out
    means = np.array([np.mean([a[i] for i, b in enumerate(blocks) if b == k]) for k in order])
    diffs = means - np.mean(means)

    def stage(x: float) -> float:
        s = sigmoid_max if x > 0 else sigmoid_min
        return s * (1 / (1 + np.exp(-1 * exp_temp * x)) - 0.5)

    values = lr * 10 ** np.array([stage(x) for x in diffs])
    for k, v in zip(order, values, strict=True):
        out[[i for i, b in enumerate(blocks) if b == k]] = v
    return out


def alphapruning_sparsity(
    alpha: ArrayLike,
    n_params: ArrayLike,
    sparsity: float,
    *,
    epsilon: float = 0.3,
    blocks: Sequence[object] | None = None,
) -> FloatArray:
    """AlphaPruning's per-layer sparsities (``ww_sparsity``).

    ``α`` is first averaged per block when ``blocks`` is given (``mapping_type='block_wise'``),
    then ``r = (α − α_min)/(α_max − α_min)·2ε + (1 − ε)`` and ``s = r·S·ΣP/Σ(P·r)``, so that
    ``Σ P s / Σ P = S``. Layers with larger α (lighter tails, less trained) are pruned more.
    The sparsities are not clipped: a large ε with a high target can give s > 1, and
    :func:`htsr.guide.prune.prune_model` refuses those. All α equal: every layer gets ``S``.
    """
    a = np.asarray(alpha, dtype=np.float64)
    p = np.asarray(n_params, dtype=np.float64)
    if a.shape != p.shape:
        raise ValueError(f"alpha {a.shape} and n_params {p.shape} differ in shape")
    if not np.isfinite(a).all():
        raise ValueError("alphapruning_sparsity: alpha has NaN/inf entries")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {sparsity}")
    if blocks is not None:
        a = block_means(a, blocks)
    span = a.max() - a.min()
    if span == 0:
        return np.full(len(a), float(sparsity))
    s1, s2 = 1.0 - epsilon, 1.0 + epsilon  # the published s1, s2 (prune_*_ww)
    ratios = (a - a.min()) / span * (s2 - s1) + s1
    return ratios * (p.sum() * sparsity / (p * ratios).sum())
