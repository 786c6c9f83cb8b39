"""The jobs of a comparison (:mod:`htsr.guide.compare`): train one run, prune one network,
allocate on pretrained weights. Each returns plain records (one per scored quality) that
:func:`htsr.guide.compare.paired_differences` reads.

* :func:`train_run`: one :class:`~htsr.guide.compare.Run` through
  :func:`htsr.experiments.train.train` with :class:`htsr.guide.training.GuideHooks` (the
  dataset cut to the run's classes, :func:`htsr.experiments.datasets.subset_classes`; a
  fine-tuning run's ``train_size`` = max(1, round(fraction·n)) of the task's n training labels,
  drawn by the seed).
* :func:`prune_records`: a trained network pruned over its middle Conv2d/Linear layers (the first
  and the last stay dense, as the published image-classifier code prunes the body) to each
  sparsity, by uniform magnitude pruning and by AlphaPruning's allocation (``alpha_peak``,
  layer-wise; ε the first of ``epsilon`` that gives every layer a sparsity < 1), test quality
  without fine-tuning.
* :func:`allocation_table`: AlphaPruning's allocation on pinned pretrained weights (an
  installed package's file, sha256-verified, or any path or ``hf://`` address
  :func:`htsr.weights.analysis.open_weights` reads) at each target, and its distance from
  uniform: the parameter-weighted mean and the largest ``|s_l − S|``.
"""

from __future__ import annotations

import copy
import importlib.metadata
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from htsr.experiments import datasets, train
from htsr.guide.estimators import layer_alphas
from htsr.guide.prune import prune_model
from htsr.guide.table import guide_summary, guide_table
from htsr.guide.training import GuideHooks
from htsr.io import sha256_file
from htsr.weights.analysis import open_weights

__all__ = ["allocation_table", "prune_records", "resolve_weights", "run_data", "train_run"]


def run_data(run: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The prepared ``data`` as the run sees it: cut to its ``classes`` if it names some."""
    if run.get("classes"):
        return datasets.subset_classes(data, run["classes"])
    return dict(data)


def train_run(
    run: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    init_state: Mapping[str, torch.Tensor] | None = None,
    quality: str = "test_acc",
    log: Callable[[str], None] | None = None,
    device: str = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``run`` (:meth:`htsr.guide.compare.Run.as_dict`) on ``data``; returns the model and
    its record: ``run``, ``group``, ``arm``, ``seed``, ``quality`` (the result's ``quality``),
    ``train_quality``, ``refits`` (α fits), ``steps`` (optimizer steps), ``train_size``,
    ``wall_s``, ``cpu_s`` and the training result."""
    data = run_data(run, data)
    hp = dict(run["hyperparameters"])
    if run.get("label_fraction") is not None:
        n = len(data["y_train"])
        hp["train_size"] = max(1, round(float(run["label_fraction"]) * n))
    g = run.get("guide") or {}
    hooks = GuideHooks(g.get("method"), every=g.get("every"), init_state=init_state,
                       **dict(g.get("options") or {}))  # fmt: skip
    model, result = train.train(run["architecture"], hp, data, int(run["seed"]), log=log,
                                device=device, hooks=hooks)  # fmt: skip
    record = {
        "run": run["name"], "group": run["group"], "arm": run["arm"], "seed": int(run["seed"]),
        "quality": result.get(quality), "train_quality": result.get(quality.replace("test_",
                                                                                    "train_")),
        "refits": hooks.refits, "steps": hooks.steps,
        "train_size": int(hp.get("train_size") or len(data.get("y_train", []))),
        "wall_s": result["wall_s"], "cpu_s": result["cpu_s"], "result": result,
    }  # fmt: skip
    return model, record


def _middle(model: nn.Module, lower: str = "published") -> pd.DataFrame:
    table = layer_alphas(model, "peak", lower=lower)
    if len(table) < 3:
        raise ValueError(f"pruning: {len(table)} Conv2d/Linear layers, need 3 (first and last"
                         " stay dense)")  # fmt: skip
    return table.iloc[1:-1].reset_index(drop=True)


def prune_records(
    run: Mapping[str, Any],
    model: nn.Module,
    data: Mapping[str, Any],
    sparsities: Sequence[float],
    *,
    epsilon: Sequence[float] = (0.3, 0.1),
    lower: str = "published",
) -> list[dict[str, Any]]:
    """Per sparsity S: records ``uniform`` and ``alphapruning`` (group ``sparsity S %``) with the
    pruned copy's test quality, the allocation, the ε used and the achieved sparsity (see the
    module docstring). A target no ε can allocate below 1 gives ``alphapruning`` a NaN quality
    and the reason, never a silent fallback to uniform."""
    data = run_data(run, data)
    arch, hp = run["architecture"], run["hyperparameters"]
    body = _middle(model, lower)
    names = body["layer"].tolist()
    out = []
    for s in sparsities:
        start, cpu = time.perf_counter(), time.process_time()
        base = {"run": run["name"], "group": f"sparsity {s:.0%}", "seed": int(run["seed"]),
                "trained_arm": run["arm"], "target": float(s)}  # fmt: skip
        uni = copy.deepcopy(model)
        done = prune_model(uni, dict.fromkeys(names, float(s)))
        out.append({**base, "arm": "uniform", "quality": train.evaluate(uni, arch, data, hp),
                    "epsilon": None, "allocation": ";".join(f"{s:.4f}" for _ in names),
                    "achieved": _weighted(done)})  # fmt: skip
        rec = {**base, "arm": "alphapruning", "quality": float("nan"), "epsilon": None,
               "allocation": "", "achieved": float("nan")}  # fmt: skip
        for eps in epsilon:
            guided = guide_table(body, "alphapruning", sparsity=float(s), epsilon=float(eps),
                                 blocks="layer")  # fmt: skip
            if (guided["sparsity"] >= 1).any():
                rec["note"] = f"epsilon {eps}: a layer's sparsity >= 1"
                continue
            ap = copy.deepcopy(model)
            done = prune_model(ap, dict(zip(guided["layer"], guided["sparsity"], strict=True)))
            rec.update(quality=train.evaluate(ap, arch, data, hp), epsilon=float(eps),
                       allocation=";".join(f"{v:.4f}" for v in guided["sparsity"]),
                       achieved=_weighted(done))  # fmt: skip
            break
        rec["layers"] = ";".join(names)
        rec["wall_s"], rec["cpu_s"] = time.perf_counter() - start, time.process_time() - cpu
        out.append(rec)
    return out


def _weighted(done: pd.DataFrame) -> float:
    p = done["n_params"].to_numpy(dtype=float)
    return float(np.sum(p * done["achieved"].to_numpy(dtype=float)) / np.sum(p))


def resolve_weights(entry: Mapping[str, Any]) -> str:
    """Where a declared weight file is: ``{package, version, member, sha256}`` (an installed
    distribution's file, its version and sha256 checked) or ``{path}`` (a file or an ``hf://``
    address, with ``sha256`` checked when given for a file). Raises FileNotFoundError or
    ValueError naming the entry."""
    name = entry.get("name", entry.get("path", "?"))
    if "package" in entry:
        try:
            dist = importlib.metadata.distribution(entry["package"])
        except importlib.metadata.PackageNotFoundError as err:
            raise FileNotFoundError(
                f"{name}: package {entry['package']}=={entry.get('version')} is not installed"
                " (pip install -e '.[test]')"
            ) from err
        if entry.get("version") and dist.version != str(entry["version"]):
            raise ValueError(f"{name}: {entry['package']} {dist.version} installed, pinned"
                             f" {entry['version']}")  # fmt: skip
        path = Path(str(dist.locate_file(entry["member"])))
    else:
        path = Path(str(entry["path"]))
        if str(entry["path"]).startswith("hf://"):
            return str(entry["path"])
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no file {path}")
    if entry.get("sha256"):
        sha, _ = sha256_file(path)
        if sha != entry["sha256"]:
            raise ValueError(f"{name}: {path} has sha256 {sha}, pinned {entry['sha256']}")
    return str(path)


def allocation_table(
    entries: Sequence[Mapping[str, Any]],
    sparsities: Sequence[float],
    *,
    epsilon: float = 0.3,
    lower: str = "published",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AlphaPruning's allocation on each declared weight file at each target: ``(layers,
    summary)``. ``layers``: one row per (model, target, layer) with ``alpha``, ``n_params``,
    ``tuned``, ``sparsity``. ``summary``: one row per (model, target) with the tuned layers,
    ``sparsity_min``/``max``, ``weighted_sparsity`` (= the target), ``distance_mean`` (the
    parameter-weighted mean of ``|s_l − S|``), ``distance_max``, ``over_one`` (layers whose
    sparsity ≥ 1: an allocation that cannot be applied), ``cpu_s``."""
    layers, summary = [], []
    for entry in entries:
        name = str(entry.get("name") or entry.get("path"))
        start = time.process_time()
        alphas = layer_alphas(open_weights(resolve_weights(entry)), "peak", lower=lower)
        fit_s = time.process_time() - start
        for s in sparsities:
            g = guide_table(alphas, "alphapruning", sparsity=float(s), epsilon=epsilon)
            summ = guide_summary(g, "alphapruning")
            t = g[g["tuned"]]
            p = t["n_params"].to_numpy(dtype=float)
            dist = np.abs(t["sparsity"].to_numpy(dtype=float) - float(s))
            layers.append(g.assign(model=name, target=float(s))[
                ["model", "target", "layer", "layer_type", "n_params", "eigs_num", "alpha",
                 "block", "tuned", "sparsity"]])  # fmt: skip
            summary.append({
                "model": name, "target": float(s), "epsilon": epsilon,
                "n_layers": summ["n_layers"], "n_tuned": summ["n_tuned"],
                "sparsity_min": summ["sparsity_min"], "sparsity_max": summ["sparsity_max"],
                "weighted_sparsity": summ["weighted_sparsity_tuned"],
                "distance_mean": float(np.sum(p * dist) / np.sum(p)),
                "distance_max": float(dist.max()),
                "over_one": int((t["sparsity"] >= 1).sum()), "fit_cpu_s": fit_s,
            })  # fmt: skip
    return pd.concat(layers, ignore_index=True), pd.DataFrame(summary)
