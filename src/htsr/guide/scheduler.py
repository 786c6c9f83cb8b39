"""Optimizer parameter groups from an α-guided method, and a scheduler that refits α.

:func:`param_groups` gives one group per tuned layer (its module's parameters, plus those of
the BatchNorm that belongs to it) and one last group with every other parameter, as
``Tempbalance.build_optimizer_param_group(initialize=True)`` (YefanZhou/TempBalance
``tempbalance.py``) and ``modulewise_AlphaDecay.build_optimizer_param_group`` do. Each group
carries its layer name under ``"htsr_layer"`` (None for the rest), so values are set by name.

BatchNorm: ``batchnorm="name"`` (the published default, ``batchnorm_type='name'``): a
``BatchNorm2d`` named like a tuned conv with ``bn`` in place of ``conv`` (``layer1.0.bn1`` →
``layer1.0.conv1``) follows it; ``"order"``: a ``BatchNorm2d`` right after a ``Conv2d`` in
``named_modules`` order follows that conv (``batchnorm_type='order'``); None: never.

:class:`AlphaGuide` refits α every ``every`` calls of :meth:`AlphaGuide.step` (the published
intervals: TempBalance once per epoch, Model Balancing every 100 steps, AlphaDecay every 500
steps; the TempBalance issue tracker reports that refitting every step makes training ~20×
slower) and at every call sets each group's value from the latest α and the current base value
(Model Balancing re-applies its block rates at every step with the scheduler's current rate).

Example
-------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 8))
>>> guide = AlphaGuide(net, "tempbalance")
>>> opt = torch.optim.SGD(guide.param_groups(0.1), lr=0.1)
>>> [g["htsr_layer"] for g in opt.param_groups]
['1', '2', None]
>>> guide.step(opt, 0.05)  # once per epoch, with the cosine-scheduled rate
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from torch import nn

from htsr.guide.estimators import layer_alphas
from htsr.guide.table import METHODS, guide_table

__all__ = ["AlphaGuide", "followers", "param_groups"]


def followers(model: nn.Module, layers: set[str], batchnorm: str | None = "name") -> dict[str, str]:
    """BatchNorm module name → the tuned layer it follows (see the module docstring)."""
    if batchnorm is None:
        return {}
    out: dict[str, str] = {}
    if batchnorm == "name":
        for name, mod in model.named_modules():
            if isinstance(mod, nn.BatchNorm2d) and name.replace("bn", "conv") in layers:
                out[name] = name.replace("bn", "conv")
        return out
    if batchnorm != "order":
        raise ValueError(f"batchnorm must be 'name', 'order' or None, got {batchnorm!r}")
    last_conv: str | None = None
    prev_is_conv = False
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            last_conv, prev_is_conv = name, True
        elif isinstance(mod, nn.BatchNorm2d):
            if prev_is_conv and last_conv in layers:
                out[name] = str(last_conv)
            prev_is_conv = False
    return out


def param_groups(
    model: nn.Module,
    values: Mapping[str, float],
    key: str,
    base: float,
    *,
    batchnorm: str | None = "name",
) -> list[dict[str, Any]]:
    """Parameter groups: ``{params, key: values[layer], "htsr_layer": layer}`` per tuned layer
    in ``named_modules`` order (its BatchNorm's parameters in the same group here, where the
    published code gives the BatchNorm a group of its own with the same value), then
    ``{params: the rest, key: base, "htsr_layer": None}``."""
    modules = dict(model.named_modules())
    missing = [n for n in values if n not in modules]
    if missing:
        raise ValueError(f"layers not in the model: {', '.join(missing[:5])}")
    bn = followers(model, set(values), batchnorm)
    members: dict[str, list[nn.Parameter]] = {n: [] for n in values}
    seen: set[int] = set()
    for name, mod in model.named_modules():
        owner = name if name in values else bn.get(name)
        if owner is None:
            continue
        for p in mod.parameters(recurse=False) if owner != name else mod.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                members[owner].append(p)
    groups = [{"params": members[n], key: float(values[n]), "htsr_layer": n}
              for n in modules if n in values]  # fmt: skip
    rest = [p for p in model.parameters() if id(p) not in seen]
    groups.append({"params": rest, key: float(base), "htsr_layer": None})
    return groups


class AlphaGuide:
    """Refits per-layer α of ``model`` and sets the method's value on an optimizer's groups.

    ``method``: ``tempbalance`` / ``modelbalancing`` (learning rate) or ``alphadecay`` (weight
    decay). ``every``: refit α every this many :meth:`step` calls (default: the method's
    published interval, :data:`htsr.guide.table.METHODS`; call :meth:`step` once per epoch for
    TempBalance, once per optimizer step for the others). ``farms=True`` estimates α with FARMS.
    ``options`` go to the rule (e.g. ``lr_min_ratio``). ``table`` holds the last fit.
    """

    def __init__(
        self,
        model: nn.Module,
        method: str = "tempbalance",
        *,
        every: int | None = None,
        batchnorm: str | None = "name",
        farms: bool = False,
        **options: Any,
    ) -> None:
        if method not in METHODS or METHODS[method].key == "sparsity":
            raise ValueError(f"AlphaGuide: method must be tempbalance, modelbalancing or"
                             f" alphadecay, got {method!r}")  # fmt: skip
        self.model = model
        self.method = method
        self.spec = METHODS[method]
        self.every = int(every or self.spec.every)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.batchnorm = batchnorm
        self.farms = farms
        self.options = options
        self.calls = 0
        self.refits = 0
        self.table: pd.DataFrame = self.refit()

    @property
    def key(self) -> str:
        """The optimizer key set: ``"lr"`` or ``"weight_decay"``."""
        return self.spec.key

    def refit(self) -> pd.DataFrame:
        """Estimate α of every layer now (the method's estimator) and keep the table."""
        self.table = layer_alphas(self.model, self.spec.estimator, xmin_pos=self.spec.xmin_pos,
                                  farms=self.farms)  # fmt: skip
        self.refits += 1
        return self.table

    def values(self, base: float) -> dict[str, float]:
        """Tuned layer → value at ``base`` from the last fit."""
        g = guide_table(self.table, self.method, base=base, **self.options)
        return dict(zip(g.loc[g["tuned"], "layer"], g.loc[g["tuned"], "value"], strict=True))

    def param_groups(self, base: float) -> list[dict[str, Any]]:
        """Initial optimizer parameter groups at ``base`` (:func:`param_groups`)."""
        return param_groups(self.model, self.values(base), self.key, base,
                            batchnorm=self.batchnorm)  # fmt: skip

    def step(self, optimizer: Any, base: float) -> bool:
        """Count a call; refit α when the count is a multiple of ``every``; set every group's
        value from the latest α at ``base``. Returns whether α was refitted. Groups of layers
        no longer tuned (e.g. a refit that failed) get ``base``."""
        self.calls += 1
        refitted = self.calls % self.every == 0
        if refitted:
            self.refit()
        self.apply(optimizer, base)
        return refitted

    def apply(self, optimizer: Any, base: float) -> None:
        """Set every group's value from the last fit at ``base`` (no call counted, no refit):
        for a new scheduled rate between refits."""
        values = self.values(base)
        for group in optimizer.param_groups:
            layer = group.get("htsr_layer")
            group[self.key] = float(values.get(layer, base)) if layer is not None else base
