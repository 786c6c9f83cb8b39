"""The papers' printed numbers beside ours: one row per printed cell that a run can compute.

Martin & Mahoney (SDM 2020, arXiv 1901.08278) print per-model tables (top-1 accuracy and the
weighted alpha α̂ of each model); Martin, Peng & Mahoney (Nat. Commun. 2021) print, per series
of models, the RMSE, R² and Kendall τ of the linear fit of top-1 on four metrics (Table 1 and the
supplementary tables). ``config/paper/printed_cells.tsv`` holds every printed cell with its tex
line; a *comparison spec* (``config/paper/comparison.yaml``) says which printed table our run
can recompute, from which model set and which of our result tables (``method``), how the printed
series and metric names map to ours, and which notes belong to which cells. This module turns
those three tables into the comparison: pure functions on pandas data, no files.

The per-series statistics are the ones of :func:`htsr.studies.trends.fit_trend` (RMSE with ddof 0,
in percentage points; R²; Kendall τ-b of metric and top-1). Where a paper regressed the top-1
*error* instead (``target: error``: the Nat. Commun. SI tables), RMSE and R² are unchanged and
τ changes sign, so our τ is negated before it is set beside the printed one.

Example
-------
>>> decimals("0.56"), decimals("-1.0"), decimals("3")
(2, 1, 0)
>>> within_rounding(0.954, "0.95"), within_rounding(0.954, "0.9")
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from htsr.studies.trends import family_trends

__all__ = [
    "COMPARISON_COLUMNS",
    "PrintedTable",
    "compare",
    "compare_models",
    "compare_trends",
    "decimals",
    "method_differences",
    "parse_spec",
    "within_rounding",
]

#: Columns of :func:`compare`'s table (``results/paper_comparison.tsv``).
COMPARISON_COLUMNS: tuple[str, ...] = (
    "table",
    "series",
    "family",
    "statistic",
    "metric",
    "model",
    "method",
    "n_printed",
    "n_ours",
    "printed",
    "ours",
    "difference",
    "within_rounding",
    "note",
    "source",
)


@dataclass(frozen=True)
class PrintedTable:
    """One printed table that a run recomputes (an entry of the comparison spec).

    ``table`` is its name in the printed cells (column ``table``); ``kind`` is ``"trends"``
    (per-series RMSE/R²/τ) or ``"models"`` (per-model values); ``set`` is the model set whose
    models it used; ``methods`` are our result tables to set beside it (``main``: the run's
    convention; or a name of the config's ``methods``); ``statistics`` maps printed statistics to
    our columns (``trends.tsv``'s ``rmse, r2, kendall_tau``, or a ``models.tsv`` column);
    ``families`` maps printed series to our families (a series missing from it maps to itself
    after ``series_prefix`` is cut off); ``metrics`` maps printed metric names to our metrics
    (``trends`` tables; in ``models`` tables the printed metric cell names the model);
    ``target`` is ``"accuracy"`` or ``"error"``; ``relabel`` pairs, for a family, each model's
    metrics with another model's accuracy, as the authors' mislabelled data files did
    (computed as an extra method ``"<method>, authors' labels"``).
    """

    table: str
    kind: str
    set: str
    methods: tuple[str, ...]
    statistics: Mapping[str, str]
    metrics: Mapping[str, str] = field(default_factory=dict)
    families: Mapping[str, str] = field(default_factory=dict)
    series_prefix: str = ""
    target: str = "accuracy"
    relabel: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def family(self, series: str) -> str:
        """Our family name for a printed series."""
        if series in self.families:
            return self.families[series]
        return series.removeprefix(self.series_prefix)


def parse_spec(spec: Mapping[str, Any]) -> list[PrintedTable]:
    """The :class:`PrintedTable` entries of a comparison spec (the parsed YAML mapping).

    The spec has ``tables`` (a list of mappings with the fields of :class:`PrintedTable`, where
    ``metrics`` and ``statistics`` may name a shared mapping of the spec's ``maps``). Raises
    ``ValueError`` naming the table for an unknown kind or target, or a missing field.
    """
    maps = spec.get("maps", {})

    def mapping(value: Any) -> dict[str, str]:
        return dict(maps[value] if isinstance(value, str) else value)

    out = []
    for entry in spec.get("tables", []):
        name = entry.get("table", "?")
        try:
            table = PrintedTable(
                table=entry["table"],
                kind=entry["kind"],
                set=entry["set"],
                methods=tuple(entry["methods"]),
                statistics=mapping(entry["statistics"]),
                metrics=mapping(entry.get("metrics", {})),
                families=dict(entry.get("families", {})),
                series_prefix=entry.get("series_prefix", ""),
                target=entry.get("target", "accuracy"),
                relabel={k: dict(v) for k, v in entry.get("relabel", {}).items()},
            )
        except KeyError as err:
            raise ValueError(f"comparison spec, table {name!r}: missing {err}") from err
        if table.kind not in ("trends", "models"):
            raise ValueError(f"comparison spec, table {name!r}: kind must be trends or models")
        if table.target not in ("accuracy", "error"):
            raise ValueError(f"comparison spec, table {name!r}: target must be accuracy or error")
        out.append(table)
    return out


def decimals(printed: str) -> int:
    """How many decimals a printed number shows: ``"0.56"`` → 2, ``"-1.0"`` → 1, ``"3"`` → 0."""
    text = str(printed).strip()
    return len(text.split(".", 1)[1]) if "." in text else 0


def within_rounding(ours: float, printed: str) -> bool:
    """Whether ``ours`` rounds to the printed value: ``|ours - printed| ≤ ½·10^-decimals``
    (plus 1e-9 for binary round-off)."""
    if not np.isfinite(ours):
        return False
    return abs(float(ours) - float(printed)) <= 0.5 * 10.0 ** -decimals(printed) + 1e-9


def _notes_for(notes: pd.DataFrame, cell: Mapping[str, Any]) -> str:
    """The notes whose non-empty keys all match the cell (``table`` matches as a prefix)."""
    if notes is None or notes.empty:
        return ""
    found = []
    for rec in notes.itertuples(index=False):
        if rec.table and not str(cell["table"]).startswith(rec.table):
            continue
        if any(
            getattr(rec, key) and str(getattr(rec, key)) != str(cell.get(key, ""))
            for key in ("series", "statistic", "metric", "model", "method")
        ):
            continue
        found.append(rec.note)
    return "; ".join(dict.fromkeys(found))


def _relabelled(models: pd.DataFrame, family: str, pairs: Mapping[str, str]) -> pd.DataFrame:
    """``models`` with, in ``family``, each ``label``'s top-1 replaced by that of ``pairs[label]``
    (the model whose accuracy the authors' file label paired with these metrics)."""
    fam = models["family"] == family
    acc = models[fam].set_index("label")["top1"]
    out = models.copy()
    out.loc[fam, "top1"] = [
        acc.get(pairs.get(lab, lab), math.nan) for lab in models.loc[fam, "label"]
    ]
    return out


def compare_trends(
    printed: pd.DataFrame,
    spec: PrintedTable,
    models: Mapping[str, pd.DataFrame],
    trends: Mapping[str, pd.DataFrame],
) -> list[dict[str, Any]]:
    """Rows of the comparison for a ``kind: trends`` table.

    ``printed`` are its printed cells (columns ``table, series, n, statistic, metric, value,
    source``); ``models`` and ``trends`` map each method to our ``models.tsv`` / ``trends.tsv``.
    Cells whose statistic, metric or family we do not have are left out.
    """
    rows = []
    sign = -1.0 if spec.target == "error" else 1.0
    for method in spec.methods:
        if method not in trends:
            continue
        tr = trends[method]
        tr = tr[tr["set"].astype(str) == spec.set] if "set" in tr.columns else tr
        # the papers regressed top-1 accuracy (or its error): our fits of top1
        tr = tr[tr["quality"] == "top1"] if "quality" in tr.columns else tr
        variants = [(method, tr)]
        for family, pairs in spec.relabel.items():
            mod = models[method]
            mod = mod[mod["set"].astype(str) == spec.set]
            alt = _relabelled(mod, family, pairs)
            metrics = tuple(dict.fromkeys(spec.metrics.values()))
            fits = family_trends(alt[alt["family"] == family], metrics=metrics)
            variants.append((f"{method}, authors' labels", fits))
        for name, table in variants:
            for cell in printed.itertuples(index=False):
                column = spec.statistics.get(cell.statistic)
                metric = spec.metrics.get(cell.metric)
                family = spec.family(cell.series)
                if column is None or metric is None:
                    continue
                hit = table[(table["family"] == family) & (table["metric"] == metric)]
                if hit.empty:
                    continue
                fit = hit.iloc[0]
                ours = float(fit[column]) * (sign if column == "kendall_tau" else 1.0)
                rows.append(_row(cell, family, "", name, int(fit["n"]), ours, spec.target, column))
    return rows


def compare_models(
    printed: pd.DataFrame, spec: PrintedTable, models: Mapping[str, pd.DataFrame]
) -> list[dict[str, Any]]:
    """Rows of the comparison for a ``kind: models`` table: the printed ``metric`` cell names
    the model (matched case-insensitively to our ``label`` within the series' family), the
    printed ``statistic`` names the value (mapped by ``spec.statistics``)."""
    rows = []
    for method in spec.methods:
        if method not in models:
            continue
        mod = models[method]
        mod = mod[mod["set"].astype(str) == spec.set]
        by_label = {
            (fam, str(lab).lower()): rec
            for fam, lab, rec in zip(mod["family"], mod["label"], mod.to_dict("records"),
                                     strict=True)
        }  # fmt: skip
        for cell in printed.itertuples(index=False):
            column = spec.statistics.get(cell.statistic)
            family = spec.family(cell.series)
            rec = by_label.get((family, str(cell.metric).lower()))
            if column is None or rec is None:
                continue
            n_ours = int((mod["family"] == family).sum())
            row = _row(cell, family, rec["label"], method, n_ours, float(rec[column]),
                       spec.target, column)  # fmt: skip
            row["metric"] = column
            rows.append(row)
    return rows


def _row(
    cell: Any, family: str, model: str, method: str, n_ours: int, ours: float, target: str,
    column: str,
) -> dict[str, Any]:  # fmt: skip
    printed = str(cell.value)
    return {
        "table": cell.table,
        "series": cell.series,
        "family": family,
        "statistic": cell.statistic,
        "metric": cell.metric,
        "model": model,
        "method": method,
        "n_printed": cell.n,
        "n_ours": n_ours,
        "printed": float(printed),
        "ours": ours,
        "difference": ours - float(printed),
        "within_rounding": within_rounding(ours, printed),
        "note": "",
        "source": cell.source,
    }


def compare(
    printed: pd.DataFrame,
    specs: Sequence[PrintedTable],
    models: Mapping[str, pd.DataFrame],
    trends: Mapping[str, pd.DataFrame],
    notes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The comparison table: one row per printed cell × method that our tables can compute.

    ``printed``: the printed cells (``config/paper/printed_cells.tsv``, read with ``dtype=str``
    so that the printed precision is kept); ``specs``: :func:`parse_spec`'s entries; ``models``
    and ``trends``: our tables per method (``main`` and the config's methods); ``notes``: a
    table with columns ``table, series, statistic, metric, model, method, note`` (empty cells
    match anything; ``table`` matches as a prefix). Returns :data:`COMPARISON_COLUMNS`; a spec
    whose set is not in ``models`` gives no rows (that set was not run).
    """
    rows: list[dict[str, Any]] = []
    for spec in specs:
        cells = printed[printed["table"] == spec.table]
        have = [m for m in spec.methods if m in models and (models[m]["set"] == spec.set).any()]
        if cells.empty or not have:
            continue
        if spec.kind == "trends":
            rows += compare_trends(cells, spec, models, trends)
        else:
            rows += compare_models(cells, spec, models)
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    if notes is not None and not notes.empty:
        notes = notes.fillna("").astype(str)
        table["note"] = [_notes_for(notes, rec) for rec in table.to_dict("records")]
    return table


def method_differences(
    a: pd.DataFrame, b: pd.DataFrame, *, metric: str, names: tuple[str, str], set_name: str
) -> pd.DataFrame:
    """Per model of ``set_name``: ``metric`` in two result tables and ``b - a``.

    For the 2019 set run both ways (exact eigenvalues and the notebooks' TruncatedSVD), with
    ``metric="alpha_weighted"``. Columns ``model, label, family, {metric}_{names[0]},
    {metric}_{names[1]}, difference`` (the second minus the first).
    """
    keep = ["model", "label", "family", metric]
    left = a.loc[a["set"] == set_name, keep]
    right = b.loc[b["set"] == set_name, ["model", metric]]
    out = left.merge(right, on="model", suffixes=tuple(f"_{n}" for n in names))
    first, second = (f"{metric}_{n}" for n in names)
    out["difference"] = out[second] - out[first]
    return out
