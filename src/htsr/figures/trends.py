"""Trend figures: the model-level metric against published quality, per family and model set.

The trend panels follow the VGG and ResNet figures of Martin & Mahoney (SDM 2020): published
top-1 accuracy (%) on the x axis, the model-level metric on the y axis, one marker per series,
every point named.
The straight line drawn is the least-squares fit of top-1 on the metric
(:func:`htsr.studies.trends.fit_trend`), i.e. ``metric = (top1 - intercept) / slope``, so that
the R² and RMSE printed in the panel (RMSE in percentage points of top-1) belong to the drawn
line. Shared pieces (labels, saving, label placement) are in :mod:`htsr.figures.common`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from htsr.figures.common import (
    FAMILY_YLABELS,
    MARKERS,
    METRIC_SHORT,
    TOP1_LABEL,
    _group_name,
    _note,
    _pad_limits,
    _top1_headline,
    new_figure,
    place_labels,
    point_names,
)
from htsr.studies.trends import METRIC_LABELS, METRICS, MIN_MODELS, fit_trend, quality_values

#: Point-name font size in :func:`families_figure` (points; about 1.2 mm tall as saved).
FAMILY_LABEL_FONTSIZE = 6.5


@dataclass(frozen=True)
class Panel:
    """One trend panel: ``metric`` (y) against top-1 (x) for each family in ``families``.

    ``set``, when given, restricts the panel to the models of that model set (a family name
    such as "VGG" can occur in several sets, each with its own trend).
    """

    metric: str
    families: tuple[str, ...]
    title: str
    set: str | None = None
    quality: str = "top1"
    quality_label: str = TOP1_LABEL
    transform: str = ""  # "log10": the quality is drawn (and was regressed) as its log10

    def x(self, models: pd.DataFrame) -> np.ndarray:
        """The panel's quality values of ``models`` as drawn (log10 under that transform)."""
        if self.quality not in models.columns:
            return np.full(len(models), np.nan)
        return quality_values(models[self.quality], self.transform)


def _panel_models(models: pd.DataFrame, panel: Panel, family: str | None = None) -> pd.DataFrame:
    """The rows of ``models`` in the panel's set and (one of) its families."""
    keep = models["family"].isin(panel.families if family is None else (family,))
    if panel.set is not None and "set" in models.columns:
        keep &= models["set"] == panel.set
    return models[keep]


def _trend_row(trends: pd.DataFrame, panel: Panel, family: str) -> pd.Series | None:
    """The saved fit of ``family`` on the panel's metric (``trends.tsv``), None if absent."""
    hit = (trends["family"] == family) & (trends["metric"] == panel.metric)
    if "quality" in trends.columns:
        hit &= trends["quality"] == panel.quality
    if panel.set is not None and "set" in trends.columns:
        hit &= trends["set"].astype(str) == panel.set
    rows = trends[hit]
    return rows.iloc[0] if len(rows) else None


def draw_trend_panel(
    ax: Axes, models: pd.DataFrame, panel: Panel, trends: pd.DataFrame | None = None
) -> None:
    """Draw ``panel`` on ``ax``: points, the fitted line and its statistics per family series.

    With ``trends`` (the saved ``trends.tsv``), the line and the R², RMSE and Kendall τ printed
    are that table's fit of top-1 on the metric; without it the fit is made here
    (:func:`htsr.studies.trends.fit_trend`, the same computation). Point names are added afterwards
    by :func:`series_figure` (they need the final layout).
    """
    metric = panel.metric
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(panel.quality_label)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    if metric not in models.columns:
        _note(ax, f"metric {metric!r} is not in the models table")
        return
    all_x, all_y, lines, notes = [], [], [], []
    for i, family in enumerate(panel.families):
        sub = _panel_models(models, panel, family)
        ok = sub[np.isfinite(sub[metric].astype(float)) & np.isfinite(panel.x(sub))]
        if ok.empty:
            notes.append(f"{family}: no models with {METRIC_SHORT.get(metric, metric)} here")
            continue
        x = panel.x(ok)
        y = ok[metric].to_numpy(float)
        color = f"C{i}"
        ax.scatter(x, y, marker=MARKERS[i % len(MARKERS)], s=36, color=color, label=family)
        all_x.append(x)
        all_y.append(y)
        fit = _trend_row(trends, panel, family) if trends is not None else None
        if fit is None:
            fit = pd.Series(asdict(fit_trend(y, x)))  # the quality regressed on the metric
        if fit["status"] == "ok" and float(fit["slope"]) != 0.0:
            xx = np.linspace(x.min(), x.max(), 2)
            lines.append((xx, (xx - float(fit["intercept"])) / float(fit["slope"]), color))
            unit = " pp" if panel.quality_label.endswith("(%)") else ""
            interval = ""
            if np.isfinite(float(fit.get("kendall_tau_low", np.nan))):
                interval = f" [{fit['kendall_tau_low']:.2f}, {fit['kendall_tau_high']:.2f}]"
            n = int(fit["n"])
            notes.append(
                f"{family}: R² = {fit['r2']:.2f}, RMSE = {fit['rmse']:.3g}{unit} (n={n})"
                f"\nτ = {fit['kendall_tau']:.2f}{interval and f', 95% interval{interval}'}"
            )
        else:
            notes.append(f"{family}: n={int(fit['n'])}, no fit ({fit['status']})")
    if not all_x:
        _note(ax, "\n".join(notes) or "no models")
        return
    xs = np.concatenate(all_x)
    ys = np.concatenate([*all_y, *(yy for _, yy, _ in lines)])  # the lines stay inside
    _pad_limits(ax, xs, ys)
    ax.set_ylim(ax.get_ylim()[0] - 0.25 * np.ptp(ax.get_ylim()), ax.get_ylim()[1])
    for xx, yy, color in lines:
        ax.plot(xx, yy, color=color, lw=1.2, alpha=0.8)
    ax.text(
        0.02, 0.02, "\n".join(notes), transform=ax.transAxes, fontsize=8, va="bottom",
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.9},
    )  # fmt: skip
    ax.legend(loc="upper right", fontsize=8)


def series_figure(
    models: pd.DataFrame,
    panels: Sequence[Panel],
    *,
    ncols: int = 2,
    title: str | None = None,
    trends: pd.DataFrame | None = None,
) -> Figure:
    """A grid of :func:`draw_trend_panel` panels (about 5.5 × 4.6 inches each), the fits read
    from ``trends`` when given."""
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(5.5 * ncols, 4.6 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    if title:
        fig.suptitle(title)
    fig.canvas.draw()  # fix the layout before labels are placed in display coordinates
    for ax, panel in zip(axes, panels, strict=False):
        draw_trend_panel(ax, models, panel, trends)
    fig.canvas.draw()
    for ax, panel in zip(axes, panels, strict=False):
        _label_panel(ax, models, panel)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.set_layout_engine("none")  # keep label positions where they were placed
    return fig


def _label_panel(ax: Axes, models: pd.DataFrame, panel: Panel, *, fontsize: float = 7.0) -> None:
    if panel.metric not in models.columns:
        return
    sub = _panel_models(models, panel)
    ok = sub[np.isfinite(sub[panel.metric].astype(float)) & np.isfinite(panel.x(sub))]
    if not ok.empty:
        names = point_names(ok)
        xs, ys = panel.x(ok), ok[panel.metric].to_numpy(float)
        place_labels(ax, xs, ys, names, fontsize=fontsize)


def parse_panels(
    families: str, metrics: str, *, set_name: str | None = None, **quality: str
) -> list[Panel]:
    """Panels from a figure table's cells: ``families`` lists panel rows separated by ';',
    families drawn together in one panel joined by '+' (``"VGG+VGG_BN;ResNet"``); ``metrics``
    lists the metrics, one panel column each (``"log_norm;alpha_weighted"``)."""
    groups = [tuple(f.strip() for f in g.split("+") if f.strip()) for g in families.split(";")]
    names = [m.strip() for m in metrics.split(";") if m.strip()]
    if not any(groups) or not names:
        raise ValueError(f"a figure needs families and metrics, got {families!r}, {metrics!r}")
    return [
        Panel(
            metric,
            group,
            f"{' / '.join(group)}: {METRIC_SHORT.get(metric, metric)}",
            set_name,
            **quality,
        )  # fmt: skip
        for group in groups
        if group
        for metric in names
    ]


def trend_figure(
    models: pd.DataFrame,
    trends: pd.DataFrame,
    *,
    families: str,
    metrics: str,
    title: str,
    set_name: str | None = None,
    **quality: str,
) -> Figure:
    """A figure of a study's figure table (``config/studies/imagenet_figures.tsv``): one row of
    panels per family group, one column per metric (:func:`parse_panels`; with a single metric
    the families wrap into rows of up to four panels), the fits read from ``trends``.
    ``quality``: the Panel fields ``quality``, ``quality_label``, ``transform`` (default
    top-1)."""
    panels = parse_panels(families, metrics, set_name=set_name, **quality)
    ncols = len([m for m in metrics.split(";") if m.strip()])
    if ncols == 1:  # one metric: wrap the families into rows of up to four panels
        ncols = min(4, len(panels))
    return series_figure(models, panels, ncols=ncols, title=title, trends=trends)


def families_figure(
    models: pd.DataFrame,
    *,
    metric: str = "alpha_weighted",
    min_n: int = MIN_MODELS,
    trends: pd.DataFrame | None = None,
    headline: Callable[[str], tuple[str, str, str]] | None = None,
    families: Sequence[str] = (),
    group_by: Sequence[str] = ("set", "family"),
    title: str | None = None,
) -> Figure:
    """One panel per (set, family) with at least ``min_n`` models with a finite ``metric``.

    Each panel shows the family's models (every point named by :func:`short_name`), the
    least-squares line of the family's headline quality on the metric and its R²/RMSE/τ; one
    figure-level legend explains the marker and the line. Families with fewer models are listed
    in a footnote, not drawn. ``headline(family)`` gives ``(quality column, axis label,
    transform)`` (default top-1); ``families`` restricts the panels (default all); with
    ``group_by`` ``("family",)`` a family's panel spans its model sets.
    """
    if "set" not in models.columns:
        models = models.assign(set="")
    if families:
        models = models[models["family"].isin(families)]
    if "set" not in group_by:
        models = models.assign(set="")
    headline = headline or _top1_headline
    finite = models[np.isfinite(models.get(metric, pd.Series(np.nan, models.index)).astype(float))]
    counts = finite.groupby(["set", "family"], sort=False).size()
    keep = [key for key, n in counts.items() if n >= min_n]
    several = models["set"].nunique() > 1
    everything = dict.fromkeys(zip(models["set"], models["family"], strict=True))
    left_out = [_group_name(s_, f, several) for s_, f in everything if (s_, f) not in keep]
    ncols = min(4, max(len(keep), 1))
    nrows = max(math.ceil(len(keep) / ncols), 1)
    height = 3.8 * nrows + 1.1
    fig = new_figure(max(4.4 * ncols, 6.5), height)
    # The title and the legend share a band above the panels (constrained layout would put a
    # figure legend "outside upper center" on top of the suptitle).
    fig.get_layout_engine().set(rect=(0.0, 0.0, 1.0, 1.0 - 0.75 / height))
    qualities = {headline(f)[1] for _, f in keep}
    what = qualities.pop() if len(qualities) == 1 else "the family's headline quality"
    title = title or f"{METRIC_SHORT.get(metric, metric)} against {what}, per family"
    fig.suptitle(title, y=1.0 - 0.06 / height, va="top", in_layout=False)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    if not keep:
        _note(axes[0], f"no family has {min_n} or more models with {metric}")
    panels = [
        Panel(
            metric,
            (f,),
            _group_name(s_, f, several),
            s_ if "set" in group_by else None,
            *headline(f),
        )  # fmt: skip
        for s_, f in keep
    ]
    for ax, panel in zip(axes, panels, strict=False):
        draw_trend_panel(ax, models, panel, trends)
        ax.set_ylabel(FAMILY_YLABELS.get(metric, METRIC_LABELS.get(metric, metric)), fontsize=9)
        ax.set_xlabel(textwrap.fill(panel.quality_label, 48), fontsize=9)  # 4 panels a row
        ax.tick_params(labelsize=8)
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    for ax in axes[max(len(keep), 1) :]:  # the first panel carries the note when none is drawn
        ax.set_visible(False)
    if keep:
        handles = [
            Line2D([], [], ls="", marker=MARKERS[0], ms=6, color="C0", label="models"),
            Line2D([], [], lw=1.2, alpha=0.8, color="C0", label="least-squares fit (R² in panel)"),
        ]
        fig.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0 - 0.36 / height),
            ncols=2, fontsize=9, frameon=False,
        )  # fmt: skip
    if left_out:
        fig.supxlabel(
            f"Not drawn (fewer than {min_n} models): " + ", ".join(left_out), fontsize=8, x=0.01,
            ha="left", wrap=True,
        )  # fmt: skip
    fig.canvas.draw()  # fix the layout before labels are placed in display coordinates
    for ax, panel in zip(axes, panels, strict=False):
        _label_panel(ax, models, panel, fontsize=FAMILY_LABEL_FONTSIZE)
    fig.set_layout_engine("none")  # keep label positions where they were placed
    return fig


def metrics_comparison_figure(
    trends_table: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    headline: Callable[[str], str] | None = None,
    families: Sequence[str] = (),
) -> Figure:
    """Grouped bars: R² of the family's headline quality against each metric, per family (Nat.
    Commun. 2021 style). ``headline(family)`` names the quality (default: ``top1``, or the
    table's only quality); ``families`` restricts the bars (default all).

    Only fitted (``status == "ok"``) family/metric pairs are drawn; families without any fit
    are listed under the axes.
    """
    table = trends_table if "set" in trends_table.columns else trends_table.assign(set="")
    if families:
        table = table[table["family"].isin(families)]
    if "quality" in table.columns:
        pick = headline or (lambda family: "top1")
        table = table[[q == pick(f) for q, f in zip(table["quality"], table["family"],
                                                     strict=True)]]  # fmt: skip
    several = table["set"].astype(str).nunique() > 1
    table = table.assign(
        family=[_group_name(str(s_), f, several) for s_, f in zip(table["set"], table["family"],
                                                                   strict=True)]
    )  # fmt: skip
    ok = table[(table["status"] == "ok") & table["metric"].isin(metrics)]
    families = list(dict.fromkeys(ok["family"]))
    skipped = [f for f in dict.fromkeys(table["family"]) if f not in families]
    fig = new_figure(max(7.0, 0.9 * len(families) + 3.0), 5.5)
    ax = fig.subplots()
    ax.set_ylabel("R² of the linear fit of the quality on the metric")
    ax.set_xlabel("architecture family")
    if ok.empty:
        _note(ax, "no family has enough models for a fit")
    else:
        data = ok.assign(metric=ok["metric"].map(lambda m: METRIC_SHORT.get(m, m)))
        order = [METRIC_SHORT.get(m, m) for m in metrics if m in set(ok["metric"])]
        sns.barplot(data=data, x="family", y="r2", hue="metric", hue_order=order, ax=ax)
        ax.set_ylim(0.0, 1.05)
        ax.tick_params(axis="x", labelrotation=40)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ncols = min(3, len(order))  # six metrics do not fit one row of a narrow figure
        ax.legend(title="metric", fontsize=8, title_fontsize=8, ncols=ncols, loc="upper left")
        ax.set_ylim(0.0, 1.0 + 0.2 * math.ceil(len(order) / ncols))
        ax.set_yticks(np.linspace(0.0, 1.0, 6))
    ax.set_title("How well each metric predicts the headline quality within a family")
    if skipped:
        fig.supxlabel(
            f"Not fitted (fewer than {MIN_MODELS} models): " + ", ".join(skipped), fontsize=8,
            x=0.01, ha="left", wrap=True,
        )  # fmt: skip
    return fig
