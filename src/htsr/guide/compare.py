"""Controlled comparisons of the α-guided methods: the declared plan, and the verdict.

A comparison is declared in a study YAML with a top-level ``comparison`` (schema
``workflow/schemas/comparison.schema.yaml``), fixed before it runs. :func:`read_comparison`
turns it into :class:`Comparison`, whose ``runs`` are the training jobs (one per arm × seed,
fine-tuning: × label fraction, plus one pre-training per seed); :func:`paired_differences`
turns the per-seed records into the verdict.

Kinds:

* ``training``: each arm (``{guide: METHOD, every: N, options: {...}, fixed: {...}}``; no
  ``guide``: the plain run) trained on ``dataset`` with ``fixed`` hyperparameters, per seed;
  each arm − the ``baseline`` arm, paired by seed (same initialisation, same batch order).
* ``finetuning``: per seed one network pre-trained on ``pretrain.classes`` (labels renumbered
  0..k−1), then each arm fine-tunes it on ``task.classes`` with each of ``label_fractions`` of
  that task's training labels (``train_size`` = round(fraction·n), at least one).
* ``pruning``: the ``arms`` are trained as in ``training``; each network is then pruned to each
  of ``prune.sparsities`` over its middle layers (the first and last Conv2d/Linear stay dense)
  by uniform magnitude pruning (``uniform``, the baseline) and by AlphaPruning's allocation
  (``alphapruning``), no fine-tuning.
* ``allocation``: no training: AlphaPruning's allocation on pinned pretrained weights, and its
  distance from uniform (:mod:`htsr.guide.runs`).

The verdict (:func:`paired_differences`): per group (fine-tuning: label fraction; pruning:
sparsity) and arm, the differences ``d_i = q(arm, seed i) − q(baseline, seed i)``, their mean
and its 95 % t-interval ``mean ± t_{0.975, n−1}·sd/√n``; ``better`` (or ``worse``) only when the
interval excludes 0, else ``undecided``. Differences without spread (sd = 0) give a zero-width
interval that says nothing about the uncertainty, so they are named, never decided:
``identical`` when every seed's difference is 0 (the arms gave the same quality), ``degenerate``
when every seed differs by the same non-zero amount (:func:`paired_verdict`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from htsr.experiments.grids import GRIDS, value_text

__all__ = [
    "KINDS", "Comparison", "Interval", "Run", "comparison_from_dict", "paired_differences",
    "paired_verdict", "t_interval", "verdict",
]  # fmt: skip

KINDS = ("training", "finetuning", "pruning", "allocation")


class Interval(NamedTuple):
    """A mean and its two-sided t-interval."""

    mean: float
    low: float
    high: float
    n: int


def t_interval(d: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of ``d`` and its ``level`` t-interval ``mean ± t_{(1+level)/2, n−1}·s/√n``
    (``s`` the sample standard deviation, ``ddof=1``); NaN bounds for fewer than 2 values.

    >>> [round(v, 6) for v in t_interval([1.0, 2.0, 3.0])]
    [2.0, -0.484138, 4.484138, 3]
    """
    x = np.asarray(d, dtype=float)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    m = float(x.mean())
    if n < 2:
        return Interval(m, math.nan, math.nan, n)
    h = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(m, m - h, m + h, n)


def verdict(low: float, high: float, higher_is_better: bool = True) -> str:
    """``better`` / ``worse`` when the interval [low, high] of (method − baseline) excludes 0
    (in the direction of the quality), ``undecided`` otherwise (or without an interval).

    >>> verdict(0.1, 0.3), verdict(-0.1, 0.3), verdict(0.1, 0.3, higher_is_better=False)
    ('better', 'undecided', 'worse')
    """
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return "undecided"
    return "better" if (low > 0) == higher_is_better else "worse"


def paired_verdict(
    arm: Sequence[float], base: Sequence[float], level: float = 0.95, higher_is_better: bool = True
) -> tuple[Interval, str]:
    """The t-interval (:func:`t_interval`) of the paired differences ``d = arm − base`` and its
    verdict: :func:`verdict`, except when the differences have no spread (at least 2 pairs,
    max d − min d ≤ 1e-9·max |q|, float noise in a constant difference), where the zero-width
    interval carries no uncertainty: ``identical`` when every ``arm_i == base_i`` (within the same
    tolerance), ``degenerate`` when every seed differs by the same non-zero amount. Neither counts
    as a difference.

    >>> paired_verdict([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])[1]
    'identical'
    >>> paired_verdict([0.91, 0.81, 0.71], [0.9, 0.8, 0.7])[1]
    'degenerate'
    >>> paired_verdict([0.92, 0.81, 0.715], [0.9, 0.8, 0.7])[1]
    'better'
    """
    a, b = np.asarray(arm, dtype=float), np.asarray(base, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_verdict: {a.size} arm values but {b.size} baseline values")
    d = a - b
    ci = t_interval(d, level)
    if ci.n >= 2:
        tol = 1e-9 * max(float(np.abs(a).max()), float(np.abs(b).max()))
        if float(np.abs(d).max()) <= tol:
            return ci, "identical"
        if float(np.ptp(d)) <= tol:
            return ci, "degenerate"
    return ci, verdict(ci.low, ci.high, higher_is_better)


@dataclasses.dataclass(frozen=True)
class Run:
    """One training job of a comparison (a row of its plan)."""

    name: str  #: key, e.g. ``tempbalance-s0``, ``pretrain-s1``, ``modelbalancing-f0.01-s2``
    kind: str  #: ``train``, ``pretrain`` or ``finetune``
    arm: str
    group: str
    seed: int
    architecture: str
    hyperparameters: dict[str, Any]
    guide: dict[str, Any] | None = None  #: ``{method, every, options}`` or None
    classes: tuple[int, ...] | None = None  #: the classes kept (renumbered 0..k−1)
    label_fraction: float | None = None
    init: str | None = None  #: the run whose checkpoint it starts from

    def as_dict(self) -> dict[str, Any]:
        """Plain data (a rule parameter)."""
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes) if self.classes is not None else None
        return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A declared comparison (see the module docstring)."""

    name: str
    kind: str
    title: str
    dataset: dict[str, Any]
    quality: str
    quality_label: str
    higher_is_better: bool
    baseline: str
    seeds: tuple[int, ...]
    runs: tuple[Run, ...]
    prune: dict[str, Any]
    weights: tuple[dict[str, Any], ...]
    sparsities: tuple[float, ...]
    epsilon: float
    rule: str

    @property
    def scored(self) -> list[Run]:
        """The runs whose test quality enters the comparison (not the pre-training)."""
        return [r for r in self.runs if r.kind != "pretrain"]

    @property
    def pruned(self) -> list[Run]:
        """The runs pruned (kind ``pruning``), else none."""
        return list(self.runs) if self.kind == "pruning" else []


def _arm_guide(arm: Mapping[str, Any]) -> dict[str, Any] | None:
    """An arm's ``{method, every, options}``, or None for the plain run."""
    if not arm.get("guide"):
        return None
    return {"method": str(arm["guide"]), "every": arm.get("every"),
            "options": dict(arm.get("options") or {})}  # fmt: skip


def comparison_from_dict(name: str, spec: Mapping[str, Any], grid: str = "default") -> Comparison:
    """The :class:`Comparison` a study YAML's ``comparison`` declares, on ``grid`` (``default``
    or ``quick``: the smoke grid's ``seeds`` and ``fixed``, merged over the declared ones, and
    its ``label_fractions``/``sparsities`` if given). Raises ValueError naming the study."""
    c = dict(spec["comparison"] if "comparison" in spec else spec)
    if grid not in GRIDS:
        raise ValueError(f"study {name}: experiment_grid must be one of {GRIDS}, got {grid!r}")
    kind = c.get("kind")
    if kind not in KINDS:
        raise ValueError(f"study {name}: comparison kind must be one of {KINDS}, got {kind!r}")
    quick = dict(c.get("quick") or {}) if grid == "quick" else {}
    seeds = tuple(int(s) for s in quick.get("seeds", c.get("seeds", [])))
    fixed = {**dict(c.get("fixed") or {}), **dict(quick.get("fixed") or {})}
    arms = dict(c.get("arms") or {})
    baseline = str(c.get("baseline", "uniform" if kind == "pruning" else ""))
    prune = dict(c.get("prune") or {})
    if grid == "quick" and "sparsities" in quick:
        prune["sparsities"] = list(quick["sparsities"])
    sparsities = tuple(float(s) for s in quick.get("sparsities", c.get("sparsities", [])))
    if kind != "allocation":
        if len(seeds) < 2:
            raise ValueError(f"study {name}: a comparison needs at least 2 seeds")
        if kind in ("training", "finetuning") and baseline not in arms:
            raise ValueError(f"study {name}: baseline {baseline!r} is not an arm"
                             f" ({', '.join(arms)})")  # fmt: skip
        if kind in ("training", "finetuning") and len(arms) < 2:
            raise ValueError(f"study {name}: a comparison needs a baseline and an arm")
        if kind == "pruning" and not prune.get("sparsities"):
            raise ValueError(f"study {name}: pruning needs prune: sparsities")
    runs: list[Run] = []
    arch = str(c.get("architecture", ""))
    if kind in ("training", "pruning"):
        for arm, a in arms.items():
            hp = {**fixed, **dict(a.get("fixed") or {})}
            for seed in seeds:
                runs.append(Run(f"{arm}-s{seed}", "train", arm, "all", seed, arch, hp,
                                _arm_guide(a)))  # fmt: skip
    elif kind == "finetuning":
        pre, task = dict(c["pretrain"]), dict(c["task"])
        pre_fixed = {**fixed, **dict(pre.get("fixed") or {}),
                     **dict((quick.get("pretrain") or {}).get("fixed") or {})}  # fmt: skip
        fractions = [float(f) for f in quick.get("label_fractions", c["label_fractions"])]
        for seed in seeds:
            runs.append(Run(f"pretrain-s{seed}", "pretrain", "pretrain", "pretrain", seed, arch,
                            pre_fixed, None, tuple(int(k) for k in pre["classes"])))  # fmt: skip
        for frac in fractions:
            for arm, a in arms.items():
                hp = {**fixed, **dict(a.get("fixed") or {})}
                for seed in seeds:
                    runs.append(Run(
                        f"{arm}-f{value_text(frac)}-s{seed}", "finetune", arm,
                        f"labels {frac:.0%}" if frac >= 0.01 else f"labels {frac:.1%}", seed,
                        arch, hp, _arm_guide(a), tuple(int(k) for k in task["classes"]),
                        frac, f"pretrain-s{seed}",
                    ))  # fmt: skip
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"study {name}: the comparison repeats run names")
    return Comparison(
        name=name, kind=kind, title=str(c.get("title", name)),
        dataset=dict(c.get("dataset") or {}), quality=str(c.get("quality", "test_acc")),
        quality_label=str(c.get("quality_label", "test accuracy (%)")),
        higher_is_better=bool(c.get("higher_is_better", True)), baseline=baseline,
        seeds=seeds, runs=tuple(runs), prune=prune,
        weights=tuple(dict(w) for w in quick.get("weights", c.get("weights")) or []),
        sparsities=sparsities, epsilon=float(c.get("epsilon", 0.3)),
        rule=str(c.get("rule", "a difference counts only when its 95 % t-interval excludes 0")),
    )  # fmt: skip


def paired_differences(
    records: pd.DataFrame,
    baseline: str,
    *,
    quality: str = "quality",
    higher_is_better: bool = True,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per (group, arm ≠ ``baseline``): the arm's differences from the baseline paired
    by seed (``records``: columns ``group``, ``arm``, ``seed`` and ``quality``).

    Columns: ``group``, ``arm``, ``baseline``, ``n`` (seeds with both), ``arm_mean``,
    ``baseline_mean``, ``mean`` (of the differences), ``low``, ``high`` (its ``level``
    t-interval, :func:`t_interval`), ``verdict`` (:func:`paired_verdict`), ``wins`` (seeds
    where the arm is better), ``differences`` (per seed, ``seed:value;…``) and ``missing``
    (seeds without a pair, or with a non-finite quality).

    >>> r = pd.DataFrame({"group": "all", "arm": ["a", "b"] * 3, "seed": [0, 0, 1, 1, 2, 2],
    ...                   "quality": [90, 91, 92, 93.5, 91, 92]})
    >>> paired_differences(r, "a")[["arm", "mean", "verdict"]].to_dict("records")
    [{'arm': 'b', 'mean': 1.1666666666666667, 'verdict': 'better'}]
    """
    need = {"group", "arm", "seed", quality}
    if missing := need - set(records.columns):
        raise ValueError(f"paired_differences: records lack column(s) {sorted(missing)}")
    rows = []
    for group, g in records.groupby("group", sort=False):
        base = g[g["arm"] == baseline].set_index("seed")[quality]
        if base.index.duplicated().any():
            raise ValueError(f"group {group!r}: baseline {baseline!r} repeats a seed")
        for arm in dict.fromkeys(g["arm"]):
            if arm == baseline:
                continue
            other = g[g["arm"] == arm].set_index("seed")[quality]
            seeds = sorted(set(base.index) | set(other.index))
            pairs = pd.DataFrame({"arm": other, "base": base}).reindex(seeds).astype(float)
            ok = pairs.notna().all(axis=1) & np.isfinite(pairs).all(axis=1)
            d = (pairs["arm"] - pairs["base"])[ok]
            ci, decided = paired_verdict(pairs.loc[ok, "arm"], pairs.loc[ok, "base"], level,
                                         higher_is_better)  # fmt: skip
            wins = int(((d > 0) if higher_is_better else (d < 0)).sum())
            rows.append({
                "group": group, "arm": arm, "baseline": baseline, "n": ci.n,
                "arm_mean": float(pairs.loc[ok, "arm"].mean()),
                "baseline_mean": float(pairs.loc[ok, "base"].mean()),
                "mean": ci.mean, "low": ci.low, "high": ci.high,
                "verdict": decided, "wins": wins,
                "differences": ";".join(f"{s}:{v:.6g}" for s, v in d.items()),
                "missing": ";".join(str(s) for s in pairs.index[~ok]),
            })  # fmt: skip
    cols = ["group", "arm", "baseline", "n", "arm_mean", "baseline_mean", "mean", "low", "high",
            "verdict", "wins", "differences", "missing"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)
