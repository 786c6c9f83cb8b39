"""Figures of trained networks (:mod:`htsr.experiments.grids`): one training run's metrics against
step, and an experiment's metric and quality against its grid's values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from htsr.figures.common import FAMILY_YLABELS, METRIC_SHORT, TOP1_LABEL, new_figure
from htsr.figures.spectra import layer_alpha
from htsr.studies.trends import METRIC_LABELS


def trajectory_figure(
    models: pd.DataFrame,
    spectra: Mapping[str, pd.DataFrame],
    *,
    family: str,
    metric: str = "alpha_weighted",
    quality: tuple[str, str, str] = ("top1", TOP1_LABEL, ""),
    trend: pd.Series | None = None,
) -> Figure:
    """One model's training trajectory: the headline ``metric`` and the ``quality`` (name,
    label, transform) against training step (log axis; step 0 drawn at the left edge), and α
    per layer against step as a heatmap. ``models`` holds the family's rows with a ``step``
    column; ``trend`` (its ``trends.tsv`` row) is printed when given."""
    rows = models[models["family"] == family].copy()
    rows["step"] = pd.to_numeric(rows["step"], errors="coerce")
    rows = rows.dropna(subset=["step"]).sort_values("step")
    steps = rows["step"].to_numpy(float)
    shown = np.where(steps > 0, steps, 0.5)  # step 0 on a log axis
    fig = new_figure(13.0, 7.0)
    grid = fig.add_gridspec(2, 2, width_ratios=(1.0, 1.3))
    name, label, transform = quality
    observed = rows[name].to_numpy(float) if name in rows else np.full(len(rows), np.nan)
    panels = ((METRIC_LABELS.get(metric, metric), rows[metric].to_numpy(float)),
              (label, observed))  # fmt: skip
    for i, (ylabel, values) in enumerate(panels):
        ax = fig.add_subplot(grid[i, 0])
        ax.plot(shown, values, marker="o", ms=4, color=f"C{i}")
        ax.set_xscale("log")
        ax.set_ylabel(ylabel, fontsize=9)
        if transform == "log10" and i == 1:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        if i == 1:
            ax.set_xlabel("training step (log scale; step 0 drawn at 0.5)")
    stats = ""
    if trend is not None and trend.get("status") == "ok":
        stats = (
            f"\n{name} regressed on {METRIC_SHORT.get(metric, metric)} across the steps:"
            f" R² = {trend['r2']:.2f}, τ = {trend['kendall_tau']:.2f}"
            f" [{trend['kendall_tau_low']:.2f}, {trend['kendall_tau_high']:.2f}],"
            f" p = {trend['kendall_p']:.2g} (n = {int(trend['n'])})"
        )
    ax = fig.add_subplot(grid[:, 1])
    pairs = [(int(st), m) for st, m in zip(steps, rows["model"], strict=True) if m in spectra]
    table = pd.DataFrame({st: layer_alpha(spectra[m]).set_index("layer")["alpha"]
                          for st, m in pairs})  # fmt: skip
    values = np.clip(table.to_numpy(float), 1.0, 8.0)
    image = ax.imshow(values, aspect="auto", cmap="viridis_r", vmin=1.0, vmax=8.0,
                      interpolation="nearest")  # fmt: skip
    every = max(1, table.shape[1] // 14)
    ax.set_xticks(range(0, table.shape[1], every), [str(c) for c in table.columns[::every]],
                  rotation=45, fontsize=7)  # fmt: skip
    every = max(1, table.shape[0] // 30)
    ax.set_yticks(range(0, table.shape[0], every), list(table.index[::every]), fontsize=6)
    ax.set_xlabel("training step")
    ax.set_ylabel("layer (depth order)")
    ax.set_title("α per layer (mean over its matrices; clipped to [1, 8]; blank: no fit)",
                 fontsize=10)  # fmt: skip
    fig.colorbar(image, ax=ax, label="power-law exponent α")
    fig.suptitle(f"Training trajectory of {family}: {len(rows)} checkpoints{stats}", fontsize=11)
    return fig


def experiment_figure(
    models: pd.DataFrame,
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    family: str,
    metric: str = "alpha_weighted",
    quality: tuple[str, str, str] = ("test_acc", "test accuracy (%)", ""),
    trend: pd.Series | None = None,
) -> Figure:
    """A controlled experiment's family: (left) each model's training curve, test accuracy
    against epoch, coloured by the varied setting; (middle) ``metric`` against the setting,
    every seed a point and the seeds' mean ± one standard deviation; (right) the ``quality``
    against the setting, the same way. A note compares the spread across settings (range of
    the setting means) with the seed noise (mean of the per-setting standard deviations), so a
    reader sees whether a trend is larger than seed noise. ``models`` holds the family's rows
    with ``vary``, ``setting`` and ``seed``; ``curves[model]`` the training curve
    (``epoch`` and the quality, e.g. ``test_acc``, ``test_psnr``); ``trend`` (its
    ``trends.tsv`` row for ``metric`` and
    ``quality``) is printed when given."""
    rows = models[models["family"] == family].copy()
    rows["setting"] = pd.to_numeric(rows["setting"], errors="coerce")
    vary = str(rows["vary"].iloc[0]) if len(rows) else "setting"
    settings = sorted(rows["setting"].dropna().unique())
    colors = dict(zip(settings, sns.color_palette("viridis", max(len(settings), 1)), strict=False))
    fig = new_figure(15.0, 5.2)
    axes = fig.subplots(1, 3)
    title = (f"{family}: {len(rows)} models, {len(settings)} settings of {vary} ×"
             f" {rows['seed'].nunique() if len(rows) else 0} seeds")  # fmt: skip
    ax = axes[0]
    key = quality[0] if quality[0].startswith("test_") else "test_acc"  # the curve's quality
    for rec in rows.itertuples():
        curve = [c for c in curves.get(rec.model) or [] if key in c]
        if curve:
            ax.plot([c["epoch"] for c in curve], [c[key] for c in curve], marker="o",
                    ms=3, color=colors.get(rec.setting, "0.5"), lw=1.2, alpha=0.8)  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch (graphs: optimisation step)")
    ax.set_ylabel(f"{quality[1] if key == quality[0] else 'test accuracy (%)'} during training")
    ax.set_title("training curves", fontsize=10)
    handles = [Line2D([], [], color=c, lw=2, label=f"{vary} = {s:g}") for s, c in colors.items()]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    log_x = len(settings) > 1 and min(settings) > 0 and max(settings) / min(settings) >= 8
    notes = []
    names = {metric: METRIC_SHORT.get(metric, metric), quality[0]: quality[1]}
    for ax, column, label in ((axes[1], metric, FAMILY_YLABELS.get(metric, metric)),
                              (axes[2], quality[0], quality[1])):  # fmt: skip
        values = pd.to_numeric(rows[column], errors="coerce")
        ax.scatter(rows["setting"], values, s=22, color="0.35", zorder=3, label="one seed")
        stats = values.groupby(rows["setting"]).agg(["mean", "std"]).reindex(settings)
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], color="C3", lw=1.5,
                    capsize=4, marker="s", ms=5, label="mean ± sd over seeds")  # fmt: skip
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(settings, [f"{v:g}" for v in settings])  # the grid's own values
        ax.minorticks_off()
        ax.set_xlabel(vary)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        spread = stats["mean"].max() - stats["mean"].min()
        noise = stats["std"].mean()
        notes.append(f"{names[column]}: setting means span {spread:.3g}, mean seed sd {noise:.3g}")
        ax.set_title(f"{names[column]} by {vary}", fontsize=10)
    if trend is not None and np.isfinite(trend.get("kendall_tau", np.nan)):
        notes.append(f"Kendall τ({names[metric]}, {names[quality[0]]}) over all models = "
                     f"{trend['kendall_tau']:.2f} [{trend['kendall_tau_low']:.2f},"
                     f" {trend['kendall_tau_high']:.2f}], R² = {trend['r2']:.2f}")  # fmt: skip
    fig.suptitle("\n".join([title, *notes]), fontsize=10)
    return fig
