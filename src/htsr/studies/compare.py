"""Compare two checkpoints of one architecture, and follow a training run, matrix by matrix.

:func:`compare_tables` matches the rows of two :func:`htsr.spectral.metrics.analyze` tables by
``(layer, slice)`` and sets α, λmax and the log-norm of each side by side with their
differences (B − A); a layer present in only one checkpoint is kept, with ``present`` saying
which. :func:`compare_summary` counts the layers that became more heavy-tailed (α fell) or less.
:func:`checkpoint_step` reads a training step from a file name and :func:`order_checkpoints`
sorts a run's checkpoints by it; :func:`track_table` stacks their model-level summaries.

Example
-------
>>> a = pd.DataFrame({"layer": ["fc"], "slice": [""], "alpha": [4.0], "lambda_max": [2.0],
...                   "log_norm": [0.5], "status": ["ok"]})
>>> b = a.assign(alpha=[3.0])
>>> compare_tables(a, b)[["layer", "alpha_a", "alpha_b", "alpha_diff", "present"]].values.tolist()
[['fc', 4.0, 3.0, -1.0, 'both']]
>>> [checkpoint_step(p) for p in ("run/ckpt-step00420.pt", "epoch_7.pth", "final.pt")]
[420, 7, None]
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "COMPARED",
    "checkpoint_step",
    "compare_summary",
    "compare_tables",
    "order_checkpoints",
    "track_table",
]

#: The per-matrix columns set side by side.
COMPARED: tuple[str, ...] = ("alpha", "lambda_max", "log_norm")
_KEY = ["layer", "slice"]
_STEP = re.compile(r"(?:step|epoch|iter|it|ckpt|checkpoint)[-_]?(\d+)|(\d+)", re.IGNORECASE)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def compare_tables(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Rows of two analyze tables matched by ``(layer, slice)``, in A's order then B's extras.

    Columns: ``layer, slice, layer_type, N, M``, then for each of :data:`COMPARED` ``{c}_a,
    {c}_b, {c}_diff`` (B − A; NaN where either side has no value), ``status_a, status_b`` and
    ``present`` (``both``, ``only A`` or ``only B``).
    """
    keep = [*_KEY, "layer_type", "N", "M", *COMPARED, "status"]
    left = a[[c for c in keep if c in a.columns]].copy()
    right = b[[c for c in keep if c in b.columns]].copy()
    for table in (left, right):
        table["slice"] = table["slice"].fillna("").astype(str)
    merged = left.merge(right, on=_KEY, how="outer", suffixes=("_a", "_b"), indicator=True,
                        sort=False)  # fmt: skip
    order = {key: i for i, key in enumerate(zip(left["layer"], left["slice"], strict=True))}
    extra = len(order)
    merged["_order"] = [
        order.get(key, extra + i)
        for i, key in enumerate(zip(merged["layer"], merged["slice"], strict=True))
    ]
    merged = merged.sort_values("_order", kind="stable").drop(columns="_order")
    merged["present"] = (
        merged.pop("_merge")
        .map({"both": "both", "left_only": "only A", "right_only": "only B"})
        .astype(str)
    )
    for col in ("layer_type", "N", "M"):
        if f"{col}_a" in merged.columns:
            merged[col] = merged[f"{col}_a"].where(merged[f"{col}_a"].notna(), merged[f"{col}_b"])
        else:
            merged[col] = np.nan
    out = merged[[*_KEY, "layer_type", "N", "M"]].copy()
    for col in COMPARED:
        out[f"{col}_a"] = merged[f"{col}_a"].astype(float)
        out[f"{col}_b"] = merged[f"{col}_b"].astype(float)
        out[f"{col}_diff"] = out[f"{col}_b"] - out[f"{col}_a"]
    out["status_a"] = merged["status_a"].fillna("")
    out["status_b"] = merged["status_b"].fillna("")
    out["present"] = merged["present"]
    return out.reset_index(drop=True)


def compare_summary(table: pd.DataFrame, summary_a: pd.Series, summary_b: pd.Series) -> dict:
    """α̂ of each checkpoint, and how many matrices fitted in both became more heavy-tailed
    (α fell), less heavy-tailed (α rose) or stayed (equal α), plus the layers in only one."""
    both = table[(table["present"] == "both") & table["alpha_diff"].notna()]
    return {
        "alpha_weighted_a": float(summary_a["alpha_weighted"]),
        "alpha_weighted_b": float(summary_b["alpha_weighted"]),
        "more_heavy_tailed": int((both["alpha_diff"] < 0).sum()),
        "less_heavy_tailed": int((both["alpha_diff"] > 0).sum()),
        "unchanged": int((both["alpha_diff"] == 0).sum()),
        "only_a": sorted(dict.fromkeys(table.loc[table["present"] == "only A", "layer"])),
        "only_b": sorted(dict.fromkeys(table.loc[table["present"] == "only B", "layer"])),
    }


def checkpoint_step(path: str | os.PathLike[str]) -> int | None:
    """The training step in a checkpoint's file name: the number after ``step``, ``epoch``,
    ``iter``, ``it``, ``ckpt`` or ``checkpoint`` if there is one, else the last number in the
    name; None if the name has no digits."""
    name = Path(path).name
    for suffix in CHECKPOINT_SUFFIXES:
        name = name.removesuffix(suffix)
    tagged = [m.group(1) for m in _STEP.finditer(name) if m.group(1)]
    if tagged:
        return int(tagged[-1])
    numbers = re.findall(r"\d+", name)
    return int(numbers[-1]) if numbers else None


def order_checkpoints(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, int]]:
    """Checkpoints with their steps, sorted by step; a directory stands for its checkpoint
    files (:data:`CHECKPOINT_SUFFIXES`). ``ValueError`` naming the file whose name carries no
    step number, or two files with the same step."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in CHECKPOINT_SUFFIXES)
            if not found:
                raise ValueError(f"{p}: no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})")
            files += found
        else:
            files.append(p)
    out = []
    for f in files:
        step = checkpoint_step(f)
        if step is None:
            raise ValueError(f"{f}: no step number in the file name to order it by")
        out.append((f, step))
    steps = [s for _, s in out]
    dup = sorted({s for s in steps if steps.count(s) > 1})
    if dup:
        raise ValueError(f"several checkpoints with step {dup[0]}: "
                         + ", ".join(str(f) for f, s in out if s == dup[0]))  # fmt: skip
    return sorted(out, key=lambda fs: fs[1])


def track_table(
    rows: Sequence[tuple[str, int, pd.Series]], metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per checkpoint: ``checkpoint, step`` and its model-level summary
    (:func:`htsr.studies.trends.summarize`), sorted by step."""
    records = []
    for name, step, summary in rows:
        keep = summary if metrics is None else summary[list(metrics)]
        records.append({"checkpoint": name, "step": step, **keep.to_dict()})
    table = pd.DataFrame(records)
    counts = {c: "int64" for c in ("n_matrices", "n_rows") if c in table.columns}
    table = table.astype(counts)  # counts, not measurements: written as 28, not 28.0
    return table.sort_values("step", kind="stable").reset_index(drop=True) if len(table) else table


def alpha_by_layer(tables: Sequence[tuple[int, pd.DataFrame]]) -> pd.DataFrame:
    """α per matrix (rows: ``layer[slice]`` in the first table's order) and step (columns),
    for the heatmap of a training run; NaN where a matrix has no fit."""
    columns = {}
    index: list[str] = []
    for step, table in tables:
        names = [f"{lay}[{sl}]" if str(sl) not in ("", "nan") else str(lay)
                 for lay, sl in zip(table["layer"], table["slice"], strict=True)]  # fmt: skip
        for n in names:
            if n not in index:
                index.append(n)
        alpha = table["alpha"].where(table["status"] == "ok").to_numpy(float)
        columns[step] = pd.Series(alpha, index=names)
    return pd.DataFrame(columns).reindex(index).astype(float)
