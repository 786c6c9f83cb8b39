"""Controlled experiments: a study whose models the pipeline trains itself.

A study's YAML may declare an ``experiment`` instead of ``tables`` (schema:
``workflow/schemas/study.schema.yaml``)::

    experiment:
      dataset: {name: cifar10}      # htsr.experiments.datasets: cifar10, mnist, digits, planetoid,
      file seeds: [0, 1, 2]                         # every setting is trained once per seed
      fixed: {epochs: 20, lr: 0.01}            # hyperparameters shared by every model
      families:                                # one family per varied hyperparameter
        - {architecture: mini_alexnet, vary: batch_size, values: [16, 32, 64, 128, 256, 512]}
      quick:                                   # the smoke grid (config experiment_grid: quick)
        seeds: [0, 1]
        fixed: {epochs: 2, train_size: 5000}   # merged over `fixed`
        values: {mini_alexnet_batch_size: [32, 512]}   # per family; default first and last

Each setting × seed is one model (:func:`grid_table`): key ``{family}-{value}-s{seed}``,
family ``{architecture}_{vary}``, source ``trained``, its hyperparameters as JSON; a family's
optional ``layers`` pattern (:func:`htsr.studies.table.select_layers`) keeps its model-level metrics
to the matrices it names (a graph network's classes × hidden output layer has as many eigenvalues
as classes, too few to fit a tail). Its quality
columns (``test_acc``, ``train_acc``, ``gap``, ...) are empty until training has run: the
pipeline's aggregate fills them from each model's ``{weights}.training.json``
(:func:`quality_from_results`). The grid is fixed by the YAML before any run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "GRIDS", "RESULT_SUFFIX", "dataset_key", "family_name", "grid_table", "quality_from_results",
    "read_results", "value_text",
]  # fmt: skip

GRIDS = ("default", "quick")
#: A trained model's result file is ``{weights}{RESULT_SUFFIX}`` beside its checkpoint.
RESULT_SUFFIX = ".training.json"


def family_name(family: Mapping[str, Any]) -> str:
    """The family's ``name`` if it has one, else ``{architecture}_{vary}``: the family of one
    varied hyperparameter."""
    return str(family.get("name") or f"{family['architecture']}_{family['vary']}")


def dataset_key(spec: Mapping[str, Any]) -> str:
    """The prepared file's key: ``cifar10``, ``planetoid-Cora``, ``text-{file stem}``, or a
    ``file``'s stem."""
    if spec["name"] == "planetoid":
        return f"planetoid-{spec['dataset']}"
    if spec["name"] == "planted_partition":
        return "planted_partition-" + "-".join(
            f"{k}{spec[k]}" for k in ("nodes", "features", "classes", "within", "seed") if k in spec
        )
    if spec["name"] == "file":
        stem = re.sub(r"\.pt$", "", str(spec["path"]).rsplit("/", 1)[-1])
        return f"file-{stem}"
    if spec["name"] == "mnist_scenes":
        keys = ("train", "test", "canvas", "digits", "digit_size", "ink", "seed", "split_seed")
        return "mnist_scenes" + "".join(f"-{k}{spec[k]}" for k in keys if k in spec)
    if spec["name"] == "text":
        return "text-" + re.sub(r"(\.txt)?(\.gz)?$", "", str(spec["file"]))
    return str(spec["name"])


def value_text(value: Any) -> str:
    """A setting as it appears in a model key: ``0.01`` → ``0.01``, ``1e-05`` → ``1e-05``, any
    character outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def grid_table(study: str, experiment: Mapping[str, Any], grid: str = "default") -> pd.DataFrame:
    """One row per model of the experiment's ``grid`` (``default`` or ``quick``), in the
    model-table layout (:mod:`htsr.studies.table`), quality columns left to training."""
    if grid not in GRIDS:
        raise ValueError(f"study {study}: experiment_grid must be one of {GRIDS}, got {grid!r}")
    quick = experiment.get("quick") or {}
    seeds = list(experiment["seeds"])
    if grid == "quick":
        seeds = list(quick.get("seeds", seeds))
    fixed = dict(experiment.get("fixed") or {})
    if grid == "quick":
        fixed |= dict(quick.get("fixed") or {})
    rows = []
    for fam in experiment["families"]:
        name = family_name(fam)
        values = list(fam["values"])
        if grid == "quick":
            values = list((quick.get("values") or {}).get(name, [values[0], values[-1]]))
        for value in values:
            hp = {**fixed, **dict(fam.get("fixed") or {}), fam["vary"]: value}
            for seed in seeds:
                key = f"{name}-{value_text(value)}-s{seed}"
                rows.append({
                    "model": key, "family": name, "source": "trained", "set": "core",
                    "weights": key, "label": f"{fam['vary']}={value} s{seed}",
                    "architecture": fam["architecture"], "vary": fam["vary"],
                    "setting": value, "seed": seed,
                    "hyperparameters": json.dumps(hp, sort_keys=True),
                    "dataset": dataset_key(experiment["dataset"]),
                    "layers": str(fam.get("layers") or ""),
                    "quality_source": f"trained by this pipeline (study {study}, grid {grid}):"
                                      f" resources/weights/{key}{RESULT_SUFFIX}",
                })  # fmt: skip
    table = pd.DataFrame(rows)
    twice = table["model"][table["model"].duplicated()].tolist()
    if twice:
        raise ValueError(f"study {study}: the experiment grid repeats model(s) {twice}")
    return table


def read_results(paths: Sequence[str | os.PathLike[str]]) -> dict[str, dict[str, Any]]:
    """The training results in ``paths`` (``{weights}.training.json`` files), by weights key."""
    results = {}
    for path in map(Path, paths):
        results[path.name.removesuffix(RESULT_SUFFIX)] = json.loads(path.read_text("utf-8"))
    return results


def quality_from_results(
    rows: pd.DataFrame, results: Mapping[str, Mapping[str, Any]], quality: Sequence[str]
) -> pd.DataFrame:
    """``rows`` with each quality column filled from its model's training result
    (``results[weights]``, a ``{weights}.training.json``); a quality the result lacks is
    NaN. Rows without a result keep theirs."""
    out = rows.copy()
    for q in quality:
        values = [results.get(w, {}).get(q) for w in out["weights"]]
        filled = pd.to_numeric(pd.Series(values, index=out.index, dtype="object"))
        out[q] = filled.where(filled.notna(), out[q] if q in out else float("nan"))
    return out
