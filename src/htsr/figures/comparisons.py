"""Figures of the α-guided comparisons (:mod:`htsr.guide.compare`), drawn from their saved
tables: every seed's paired difference with the mean and its 95 % interval, and AlphaPruning's
allocation on pretrained weights against uniform.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from htsr.figures.common import new_figure

__all__ = ["allocation_figure", "differences_figure"]

VERDICT_COLOURS = {"better": "C2", "worse": "C3", "undecided": "C0", "identical": "0.2",
                   "degenerate": "C1"}  # fmt: skip


def _seed_values(text: object) -> list[tuple[int, float]]:
    if not isinstance(text, str) or not text:
        return []
    return [(int(s), float(v)) for s, v in (p.split(":") for p in text.split(";"))]


def differences_figure(differences: pd.DataFrame, *, title: str, quality_label: str) -> Figure:
    """One column per (group, arm) row of ``differences`` (:func:`paired_differences`): each
    seed's difference arm − baseline (grey, its seed written above it), the mean with its 95 %
    t-interval (coloured by the verdict) and the numbers above; 0 drawn."""
    rows = differences.reset_index(drop=True)
    width = max(7.0, 1.8 * len(rows) + 3.0)
    fig = new_figure(width, 5.0)
    ax = fig.add_subplot()
    top = []
    for i, rec in rows.iterrows():
        seeds = _seed_values(rec["differences"])
        xs = i - 0.1 + np.linspace(-0.2, 0.2, max(len(seeds), 1))[: len(seeds)]
        ys = [v for _, v in seeds]
        ax.scatter(xs, ys, s=22, color="0.45", zorder=3, label="one seed" if i == 0 else None)
        for x, (s, v) in zip(xs, seeds, strict=True):
            ax.annotate(str(s), (x, v), xytext=(0, 4), textcoords="offset points", fontsize=7,
                        color="0.35", ha="center", va="bottom")  # fmt: skip
        colour = VERDICT_COLOURS.get(rec["verdict"], "C0")
        if np.isfinite(rec["low"]):
            ax.errorbar(i + 0.25, rec["mean"], yerr=[[rec["mean"] - rec["low"]],
                        [rec["high"] - rec["mean"]]], fmt="o", color=colour, capsize=5,
                        zorder=4)  # fmt: skip
        else:
            ax.plot(i + 0.25, rec["mean"], "o", color=colour, zorder=4)
        top.append(max([*ys, rec["high"] if np.isfinite(rec["high"]) else rec["mean"]]))
    span = np.nanmax(np.abs(ax.get_ylim())) or 1.0
    for i, rec in rows.iterrows():
        ax.annotate(f"{rec['mean']:+.3g} [{rec['low']:+.3g}, {rec['high']:+.3g}]\n"
                    f"{rec['verdict']}, n = {rec['n']}", (i, top[i] + 0.06 * span), ha="center",
                    va="bottom", fontsize=7)  # fmt: skip
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.25 * (hi - lo))
    ax.axhline(0, color="k", lw=0.8, zorder=1)
    present = set(rows["verdict"])
    for verdict, colour in VERDICT_COLOURS.items():
        if verdict not in present and verdict not in ("better", "worse", "undecided"):
            continue
        ax.errorbar([], [], yerr=[], fmt="o", color=colour, capsize=5,
                    label=f"mean, 95 % t-interval: {verdict}")  # fmt: skip
    labels = [f"{r['arm']} − {r['baseline']}" + (f"\n{r['group']}" if r["group"] != "all" else "")
              for _, r in rows.iterrows()]  # fmt: skip
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(f"difference in {quality_label}\n(arm − baseline, paired by seed)")
    ax.set_title(textwrap.fill(title, int(width * 13)), fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig


def allocation_figure(layers: pd.DataFrame, summary: pd.DataFrame, *, title: str) -> Figure:
    """AlphaPruning's per-layer sparsity on each model (one panel per model) against the layer
    index, one line per target with the uniform allocation dashed; the distance from uniform
    (parameter-weighted mean |s − S|) in the legend."""
    models = list(dict.fromkeys(layers["model"]))
    fig = new_figure(6.5 * len(models), 4.6)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        m = layers[(layers["model"] == model) & layers["tuned"].astype(bool)]
        for k, (target, g) in enumerate(m.groupby("target")):
            s = summary[(summary["model"] == model) & (summary["target"] == target)].iloc[0]
            x = np.arange(len(g))
            label = (f"target {target:.0%}: range {s['sparsity_min']:.2f}–{s['sparsity_max']:.2f},"
                     f" mean |s−S| {s['distance_mean']:.3f}")  # fmt: skip
            if s["over_one"]:
                label += f", {int(s['over_one'])} layer(s) ≥ 1"
            ax.plot(x, g["sparsity"], "-o", ms=3, color=f"C{k}", label=label)
            ax.axhline(target, color=f"C{k}", ls="--", lw=0.8)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_xlabel("pruned layer (order in the model)")
        ax.set_ylabel("sparsity (fraction of weights set to 0)")
        ax.set_title(f"{model} (dashed: uniform)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    return fig
