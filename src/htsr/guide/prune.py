"""Unstructured pruning of a model to per-layer sparsities (AlphaPruning's allocation or uniform).

:func:`pruning_mask` is the published masking rule. Per tensor (magnitude, haiquanlu/AlphaPruning
``lib/prune.py`` ``prune_magnitude`` and ``image_classifiers/prune_utils.py`` ``compute_mask``):
``thresh = sort(score.flatten())[int(numel·s)]``, prune ``score <= thresh`` — that is
``int(numel·s) + 1`` weights (more on ties), one more than ``numel·s``; reproduced. Per output
row (Wanda, ``prune_wanda``): the ``int(cols·s)`` smallest scores of each row (stable sort).
A sparsity of 0 prunes nothing (the published rule would prune the smallest weight).

The score defaults to ``|W|`` (magnitude). A Wanda-style score is passed as ``score``:
``score(name, module) -> tensor`` of the weight's shape, e.g. :func:`wanda_score` with input
norms from :func:`input_norms` (``WrappedGPT.add_batch`` in ``lib/layerwrapper.py``).

:func:`alphapruning` estimates α (``alpha_peak``), allocates (:func:`htsr.guide.table.guide_table`)
and prunes; :func:`prune_model` applies any allocation, e.g. uniform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from htsr.guide.estimators import layer_alphas
from htsr.guide.table import guide_summary, guide_table

__all__ = ["alphapruning", "input_norms", "prune_model", "pruning_mask", "wanda_score"]

Score = Callable[[str, nn.Module], torch.Tensor]


def pruning_mask(score: torch.Tensor, sparsity: float, *, per_row: bool = False) -> torch.Tensor:
    """Boolean mask of the weights to prune (True = set to 0), by the published rules above."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if sparsity == 0:
        return torch.zeros_like(score, dtype=torch.bool)
    if per_row:
        s2 = score.reshape(score.shape[0], -1)
        mask = torch.zeros_like(s2, dtype=torch.bool)
        idx = torch.sort(s2, dim=-1, stable=True)[1][:, : int(s2.shape[1] * sparsity)]
        mask.scatter_(1, idx, True)
        return mask.reshape(score.shape)
    thresh = torch.sort(score.flatten())[0][int(score.numel() * sparsity)]
    return score <= thresh


def wanda_score(weight: torch.Tensor, input_sq_norm: torch.Tensor) -> torch.Tensor:
    """Wanda's score ``|W_ij| · sqrt(mean_n ‖x_j‖²)`` for a Linear weight (out × in) and the
    per-input-feature mean squared norm of its inputs (``WrappedGPT.scaler_row``)."""
    return weight.abs() * torch.sqrt(input_sq_norm.reshape(1, -1))


def input_norms(
    model: nn.Module, layers: Iterable[str], batches: Iterable[Any]
) -> dict[str, torch.Tensor]:
    """``scaler_row`` of each named Linear: the running mean over samples of ``‖x_j‖²``, x the
    layer's input (all leading dimensions flattened to rows), as ``WrappedGPT.add_batch``."""
    modules = dict(model.named_modules())
    stats: dict[str, list[Any]] = {}
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def add(_: nn.Module, inp: tuple[torch.Tensor, ...], __: Any) -> None:
            x = inp[0].detach()
            if x.ndim == 2:
                x = x.unsqueeze(0)
            tmp = x.shape[0]
            x = x.reshape(-1, x.shape[-1]).t().float()
            row, n = stats.setdefault(name, [torch.zeros(x.shape[0]), 0])
            row *= n / (n + tmp)
            n += tmp
            row += torch.norm(x, p=2, dim=1) ** 2 / n
            stats[name] = [row, n]

        return add

    for name in layers:
        handles.append(modules[name].register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for h in handles:
            h.remove()
    return {k: v[0] for k, v in stats.items()}


def prune_model(
    model: nn.Module,
    sparsities: Mapping[str, float],
    *,
    score: Score | None = None,
    per_row: bool = False,
) -> pd.DataFrame:
    """Zero the weights of each named layer to its sparsity, in place. Returns one row per layer:
    ``layer``, ``n_params``, ``target``, ``achieved`` (fraction of zeros after pruning)."""
    modules = dict(model.named_modules())
    rows = []
    with torch.no_grad():
        for name, s in sparsities.items():
            if name not in modules or not isinstance(getattr(modules[name], "weight", None),
                                                      torch.Tensor):  # fmt: skip
                raise ValueError(f"prune_model: no layer {name!r} with a weight in the model")
            w = modules[name].weight
            if not 0.0 <= s < 1.0:
                raise ValueError(f"prune_model: layer {name}: sparsity {s:.4f} outside [0, 1)")
            sc = w.abs() if score is None else score(name, modules[name])
            mask = pruning_mask(sc, float(s), per_row=per_row)
            w[mask] = 0
            rows.append({"layer": name, "n_params": int(w.numel()), "target": float(s),
                         "achieved": float((w == 0).sum().item() / w.numel())})  # fmt: skip
    return pd.DataFrame(rows, columns=["layer", "n_params", "target", "achieved"])


def alphapruning(
    model: nn.Module,
    sparsity: float,
    *,
    epsilon: float = 0.3,
    blocks: str = "auto",
    lower: str = "published",
    farms: bool = False,
    table: pd.DataFrame | None = None,
    score: Score | None = None,
    per_row: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Prune ``model`` in place to ``sparsity`` with AlphaPruning's allocation.

    α is ``alpha_peak`` of each Conv2d/Linear layer (:func:`layer_alphas`, FARMS's with
    ``farms=True``, or a given ``table``);
    the allocation is :func:`htsr.guide.table.guide_table` (``epsilon``, ``blocks``); the mask
    :func:`pruning_mask`. Returns the guided table with ``achieved`` per layer and the summary
    (its ``weighted_sparsity_tuned`` equals ``sparsity``).
    """
    if table is None:
        table = layer_alphas(model, "peak", lower=lower, farms=farms)
    guided = guide_table(table, "alphapruning", sparsity=sparsity, epsilon=epsilon, blocks=blocks)
    tuned = guided.loc[guided["tuned"]]
    alloc = dict(zip(tuned["layer"], tuned["sparsity"], strict=True))
    done = prune_model(model, alloc, score=score, per_row=per_row)
    guided = guided.merge(done[["layer", "achieved"]], on="layer", how="left")
    summary = guide_summary(guided, "alphapruning")
    p = done["n_params"].to_numpy(dtype=float)
    summary["achieved_weighted_sparsity"] = float(np.sum(p * done["achieved"]) / np.sum(p))
    return guided, summary
