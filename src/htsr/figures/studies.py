"""Figures of a study's conclusions: the cross-study answer (:mod:`htsr.studies.summary`) and
our values against the papers' printed ones (:mod:`htsr.studies.paper`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from htsr.figures.common import MARKERS, METRIC_SHORT, _note, new_figure

#: Panels of :func:`paper_comparison_figure`: a title and the printed statistics it gathers.
COMPARISON_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("R² of the family fit", ("R2",)),
    ("RMSE of the family fit (pp of top-1)", ("RMSE",)),
    ("Kendall τ of metric and top-1 (error for the SI)",
     ("Kendall-tau", "Kendall-tau (vs Top1 error; sign as printed)")),
    ("α̂ of each model (2019 tables)", ("alpha_hat",)),
)  # fmt: skip


def paper_comparison_figure(table: pd.DataFrame) -> Figure:
    """Ours against printed, one panel per statistic (:data:`COMPARISON_PANELS`), the diagonal
    y = x drawn, one colour per method (our result table); the panel title counts the cells
    within the printed rounding. ``table`` is :func:`htsr.studies.paper.compare`'s."""
    fig = new_figure(11.0, 9.5)
    axes = fig.subplots(2, 2).ravel()
    fig.suptitle("The papers' printed numbers against this run's")
    methods = list(dict.fromkeys(table["method"])) if len(table) else []
    for ax, (title, stats) in zip(axes, COMPARISON_PANELS, strict=True):
        sub = table[table["statistic"].isin(stats)]
        ax.set_xlabel("printed in the paper")
        ax.set_ylabel("this run")
        ax.grid(alpha=0.3)
        if sub.empty:
            ax.set_title(title, fontsize=10)
            _note(ax, "no printed cell of this kind in this run's model sets")
            continue
        for i, method in enumerate(methods):
            part = sub[sub["method"] == method]
            if part.empty:
                continue
            marker = MARKERS[i % len(MARKERS)]
            ax.scatter(part["printed"], part["ours"], s=18, alpha=0.75, color=f"C{i}",
                       marker=marker, label=f"{method} (n={len(part)})")  # fmt: skip
        values = np.concatenate([sub["printed"].to_numpy(float), sub["ours"].to_numpy(float)])
        values = values[np.isfinite(values)]
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.3", lw=1, ls="--",
                label="y = x (ours = printed)")  # fmt: skip
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        share = int(sub["within_rounding"].astype(bool).sum())
        ax.set_title(f"{title}\n{share} of {len(sub)} within the printed rounding", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    return fig


#: Colours of :func:`answer_figure` by verdict.
VERDICT_COLORS = {"holds": "C2", "fails": "C3", "undecided": "0.55"}


def answer_figure(table: pd.DataFrame, *, metric: str = "alpha_weighted") -> Figure:
    """Kendall τ between ``metric`` and each family's quality, turned so that > 0 is what the
    paper predicts (better quality with a smaller metric), with its 95 % bootstrap interval:
    one line per family, grouped by study (the ImageNet reference block first), coloured by
    verdict, the zero line drawn. ``table`` is :func:`htsr.studies.summary.answer_table`'s, one row
    per
    family (its headline quality) for ``metric``."""
    rows = table[table["metric"] == metric].copy()
    rows["order"] = ~rows["reference"].astype(bool)
    rows = rows.sort_values(["order", "study"], kind="stable").reset_index(drop=True)
    fig = new_figure(11.0, 2.0 + 0.32 * max(len(rows), 1))
    ax = fig.subplots()
    ax.axvline(0.0, color="0.3", lw=1.0)
    if rows.empty:
        _note(ax, f"no family has {metric} fitted")
    for i, rec in rows.iterrows():
        sign = -1.0 if rec["higher_is_better"] else 1.0
        lo, hi = sorted((sign * rec["kendall_tau_low"], sign * rec["kendall_tau_high"]))
        color = VERDICT_COLORS[rec["verdict"]]
        ax.plot([lo, hi], [i, i], color=color, lw=2.2, solid_capstyle="butt")
        ax.plot([rec["claim_tau"]], [i], "o", color=color, ms=6)
    labels = [f"{r.study}: {r.family} ({r.quality}, n={r.n})" for r in rows.itertuples()]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel(f"Kendall τ of {METRIC_SHORT.get(metric, metric)} and the quality, signed so"
                  " that > 0 agrees with the paper\n(better quality with a smaller metric);"
                  " dot: τ, bar: its 95 % bootstrap interval over the models")  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=c, lw=2.2, marker="o", label=v)
               for v, c in VERDICT_COLORS.items()]  # fmt: skip
    ax.legend(handles=handles, title="verdict", fontsize=8, title_fontsize=8,
              loc="upper left", bbox_to_anchor=(1.01, 1.0))  # fmt: skip
    ax.set_title("Does the heavy-tailed trend hold beyond ImageNet? One line per family",
                 fontsize=10)  # fmt: skip
    return fig
