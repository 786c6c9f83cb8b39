"""α-guided training through the experiments' trainer: :class:`GuideHooks`.

:func:`htsr.experiments.train.train` calls a :class:`~htsr.experiments.train.TrainingHooks`
around plain training; :class:`GuideHooks` makes that run one of the published methods, as their
training scripts call them:

* ``tempbalance`` (YefanZhou/TempBalance ``main_tb.py``): the optimizer starts with
  :meth:`htsr.guide.AlphaGuide.param_groups` at the base rate; after each epoch α is refitted
  and every tuned layer's rate set from it at the epoch's scheduled (cosine) rate
  (:meth:`~htsr.guide.AlphaGuide.step` once per epoch).
* ``modelbalancing`` (ZihangHLiu/ModelBalancing): per-layer rates from α at every optimizer
  step with the current scheduled rate, α refitted every ``every`` steps (published 100).
* ``alphadecay`` (hed-ucas/AlphaDecay): per-layer weight decay around the base ``weight_decay``
  at every optimizer step, α refitted every ``every`` steps (published 500); the rate follows
  the schedule unchanged.
* no method: the plain run (the comparisons' baseline), which may still start from
  ``init_state`` (fine-tuning).

``init_state``: a state_dict loaded into the built model before the optimizer exists (strict:
a missing or unexpected key raises, naming it). ``options`` go to the rule
(:func:`htsr.guide.table.guide_table`), e.g. ``unit="layer"`` for Model Balancing on a network
without numbered blocks.

Example
-------
>>> from htsr.experiments import train
>>> model, result = train.train("mini_alexnet", {"epochs": 2, "schedule": "cosine"}, data, 0,
...                             hooks=GuideHooks("tempbalance"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from htsr.experiments.train import TrainingHooks
from htsr.guide.scheduler import AlphaGuide

__all__ = ["GUIDED", "GuideHooks"]

#: The methods :class:`GuideHooks` trains with, and the optimizer key each sets.
GUIDED = {"tempbalance": "lr", "modelbalancing": "lr", "alphadecay": "weight_decay"}


class GuideHooks(TrainingHooks):
    """Training hooks for ``method`` (see the module docstring; None: plain training).

    ``every``: the refit interval in the method's calls (None: published). After training,
    ``refits`` holds the number of α fits, ``steps`` the optimizer steps this process took and
    ``guide`` the :class:`AlphaGuide` (its ``table`` the last fit)."""

    def __init__(
        self,
        method: str | None = None,
        *,
        every: int | None = None,
        init_state: Mapping[str, torch.Tensor] | None = None,
        **options: Any,
    ) -> None:
        if method is not None and method not in GUIDED:
            raise ValueError(f"method must be one of {', '.join(GUIDED)} or None, got {method!r}")
        self.method = method
        self.every = every
        self.init_state = init_state
        self.options = options
        self.guide: AlphaGuide | None = None
        self.lr = 0.0
        self.wd = 0.0
        self.steps = 0

    @property
    def refits(self) -> int:
        """α fits so far (the first, at the start, included)."""
        return self.guide.refits if self.guide is not None else 0

    def prepare(self, model: nn.Module) -> None:
        if self.init_state is not None:
            model.load_state_dict(dict(self.init_state), strict=True)

    def param_groups(self, model: nn.Module, hp: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        self.lr, self.wd = float(hp["lr"]), float(hp["weight_decay"])
        if self.method is None:
            return None
        self.guide = AlphaGuide(model, self.method, every=self.every, **self.options)
        base = self.wd if GUIDED[self.method] == "weight_decay" else self.lr
        return self.guide.param_groups(base)

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.steps += 1
        if self.method == "modelbalancing":
            self.guide.step(optimizer, self.lr)
        elif self.method == "alphadecay":
            self.guide.step(optimizer, self.wd)

    def set_lr(self, optimizer: torch.optim.Optimizer, lr: float) -> None:
        self.lr = float(lr)
        if self.method == "tempbalance":
            self.guide.step(optimizer, self.lr)  # refit once per epoch, as published
        elif self.method == "modelbalancing":
            self.guide.apply(optimizer, self.lr)  # the new rate, until the next step's refit
        else:
            super().set_lr(optimizer, self.lr)
