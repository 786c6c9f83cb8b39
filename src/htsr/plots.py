"""Figures of the pipeline: accuracy trends, α histogram, ESDs and the metric comparison.

Every ``*_figure`` function is pure in the sense that it takes tables and returns a new
:class:`matplotlib.figure.Figure` (no pyplot state, no files); :func:`save_figure` writes it
atomically to PNG/PDF. Missing data (a family absent from the run, fewer than three models, a
NaN metric) yields a note inside the panel instead of an exception.

The trend panels follow the VGG and ResNet figures of Martin & Mahoney (SDM 2020): published
top-1 accuracy (%) on the x axis, the model-level metric on the y axis, one marker per series,
every point named.
The straight line drawn is the least-squares fit of top-1 on the metric
(:func:`htsr.trends.fit_trend`), i.e. ``metric = (top1 - intercept) / slope``, so that the R² and
RMSE printed in the panel (RMSE in percentage points of top-1) belong to the drawn line.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from htsr.provenance import atomic_output
from htsr.trends import METRIC_LABELS, METRICS, MIN_MODELS, fit_trend, quality_values

MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X")
TOP1_LABEL = "top-1 accuracy (%)"
DPI = 150
METRIC_SHORT: dict[str, str] = {
    "alpha_weighted": "α̂ (weighted α)",
    "log_norm": "log₁₀ ‖W‖_F",
    "log_spectral_norm": "log₁₀ λ_max",
    "log_alpha_norm": "log₁₀ ‖X‖_α^α",
    "alpha": "ᾱ (mean α)",
    "log_mean_spectral_norm": "log₁₀ mean λ_max",
}
#: Compact y-axis labels (with units) for the small panels of :func:`families_figure`; other
#: metrics use :data:`htsr.trends.METRIC_LABELS`.
FAMILY_YLABELS: dict[str, str] = {
    "alpha_weighted": "α̂ (weighted α, dimensionless)",
    "alpha": "ᾱ (mean α, dimensionless)",
}
#: Point-name font size in :func:`families_figure` (points; about 1.2 mm tall as saved).
FAMILY_LABEL_FONTSIZE = 6.5


def _top1_headline(family: str) -> tuple[str, str, str]:
    """The default headline of every family: top-1 accuracy, as published."""
    return "top1", TOP1_LABEL, ""


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


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with an Agg canvas and constrained layout (size in inches).

    It is created at the resolution it is saved with (:data:`DPI`), so text extents measured
    while placing labels are the ones rendered.
    """
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, paths: Iterable[str | os.PathLike[str]], *, dpi: int = DPI) -> None:
    """Write ``fig`` to each path, format from the suffix (.png, .pdf), atomically.

    Each file is rendered to a temporary file in the same directory and moved into place
    (:func:`htsr.provenance.atomic_output`), so an interrupted run never leaves a truncated figure.
    """
    for path in map(Path, paths):
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".").lower(), dpi=dpi)


def _note(ax: Axes, text: str) -> None:
    """Say in an empty panel why it is empty (and drop its meaningless 0-1 ticks)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=9,
        color="0.35",
        wrap=True,
    )


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


# candidate label offsets in points, (dx, dy, ha, va), nearest first
_OFFSETS: tuple[tuple[float, float, str, str], ...] = tuple(
    (sx * r, sy * r, ha, va)
    for r in (3.0, 7.0, 12.0, 18.0, 26.0)
    for sx, sy, ha, va in (
        (1, 1, "left", "bottom"),
        (1, -1, "left", "top"),
        (-1, 1, "right", "bottom"),
        (-1, -1, "right", "top"),
        (0, 1.3, "center", "bottom"),
        (0, -1.3, "center", "top"),
        (1.3, 0, "left", "center"),
        (-1.3, 0, "right", "center"),
    )
)


#: the offsets (first two radii of :data:`_OFFSETS`) among which a label avoids drawn lines
_LINE_FREE_OFFSETS = 2 * 8


#: how much farther (points) every other point must be from a label than its own point is
_CLEARER_PT = 5.0


def _distance(box: Bbox, x: float, y: float) -> float:
    """Distance from the point (x, y) to ``box`` (0 inside), in display units."""
    return math.hypot(max(box.x0 - x, 0.0, x - box.x1), max(box.y0 - y, 0.0, y - box.y1))


def place_labels(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    *,
    fontsize: float = 7.0,
) -> None:
    """Name every point without overlaps: greedy search over offsets around each point.

    For each point (in order) an offset from :data:`_OFFSETS` is free if its text box stays inside
    the axes (with a 3-pt margin) and overlaps neither an earlier label, the legend, text already
    in the axes, its own marker (a 4-pt box) nor any other marker (a 10-pt box). Of the free
    offsets the nearest is used that is clearly closer to its own point than to any other point
    (by :data:`_CLEARER_PT`, so that it is not read as a neighbour's) and, within 7 pt of the
    point, crossed by no line drawn in the axes (a fitted line); failing that the nearest
    unambiguous one, failing that the nearest free one. If none is free, the least-overlapping
    one is used with a thin leader line. Axis limits and layout must be final before calling.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    pt = fig.dpi / 72.0  # pixels per point
    own = [Bbox.from_bounds(px - 4 * pt, py - 4 * pt, 8 * pt, 8 * pt) for px, py in pts]
    near = [Bbox.from_bounds(px - 10 * pt, py - 10 * pt, 20 * pt, 20 * pt) for px, py in pts]
    legend = ax.get_legend()
    artists = [*ax.texts, *([legend] if legend is not None else [])]
    taken = [a.get_window_extent(renderer) for a in artists]  # stats box, legend
    axes_box = ax.get_window_extent(renderer).padded(-3 * pt)
    curves = [line.get_transform().transform_path(line.get_path()) for line in ax.lines]
    clearer = _CLEARER_PT * pt
    for i, (x, y, label) in enumerate(zip(xs, ys, labels, strict=True)):
        blocked = [*taken, own[i], *near[:i], *near[i + 1 :]]
        others = [*pts[:i], *pts[i + 1 :]]
        best: tuple[float, tuple[float, float, str, str], Bbox] | None = None
        free: tuple[int, tuple[float, float, str, str], Bbox] | None = None  # (rank, ...)
        for k, offset in enumerate(_OFFSETS):
            near_ring = k < _LINE_FREE_OFFSETS
            if free is not None and free[0] == 1 and not near_ring:
                break  # no better rank can follow
            dx, dy, ha, va = offset
            ann = ax.annotate(
                label, (x, y), xytext=(dx, dy), textcoords="offset points",
                ha=ha, va=va, fontsize=fontsize,
            )  # fmt: skip
            box = ann.get_window_extent(renderer)
            ann.remove()
            inside = axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1
            inside = inside and axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1
            cost = sum(_overlap(box, t) for t in blocked) + (0.0 if inside else 1e9)
            if best is None or cost < best[0]:
                best = (cost, offset, box)
            if cost > 0.0:
                continue
            d_own = _distance(box, *pts[i])
            ambiguous = any(_distance(box, ox, oy) < d_own + clearer for ox, oy in others)
            crosses = near_ring and any(c.intersects_bbox(box, filled=False) for c in curves)
            rank = 2 if ambiguous else (1 if crosses else 0)
            if free is None or rank < free[0]:
                free = (rank, offset, box)
            if rank == 0:
                break
        if free is not None:
            best = (0.0, free[1], free[2])
        assert best is not None
        cost, (dx, dy, ha, va), box = best
        leader = {"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if cost > 0.0 else None
        ax.annotate(
            label, (x, y), xytext=(dx, dy), textcoords="offset points",
            ha=ha, va=va, fontsize=fontsize, arrowprops=leader,
        )  # fmt: skip
        taken.append(box)


def _pad_limits(ax: Axes, xs: np.ndarray, ys: np.ndarray, frac: float = 0.18) -> None:
    for vals, setter in ((xs, ax.set_xlim), (ys, ax.set_ylim)):
        lo, hi = float(np.min(vals)), float(np.max(vals))
        span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
        setter(lo - frac * span, hi + frac * span)


def draw_trend_panel(
    ax: Axes, models: pd.DataFrame, panel: Panel, trends: pd.DataFrame | None = None
) -> None:
    """Draw ``panel`` on ``ax``: points, the fitted line and its statistics per family series.

    With ``trends`` (the saved ``trends.tsv``), the line and the R², RMSE and Kendall τ printed
    are that table's fit of top-1 on the metric; without it the fit is made here
    (:func:`htsr.trends.fit_trend`, the same computation). Point names are added afterwards by
    :func:`series_figure` (they need the final layout).
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


def short_name(model: str) -> str:
    """The model key without timm's pretrained tag: ``"resnet18.gluon_in1k"`` → ``"resnet18"``."""
    return model.split(".", 1)[0]


def point_names(models: pd.DataFrame) -> list[str]:
    """The names printed next to points: the ``label`` column (the model table's name for
    figures), else :func:`short_name` of the key."""
    if "label" in models.columns:
        return [str(v) if isinstance(v, str) and v else short_name(m)
                for v, m in zip(models["label"], models["model"], strict=True)]  # fmt: skip
    return [short_name(m) for m in models["model"]]


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


def _group_name(set_name: str, family: str, several: bool) -> str:
    """A family's name in figures: ``"VGG (paper2019)"`` when several model sets are drawn."""
    return f"{family} ({set_name})" if several and set_name else family


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


def alpha_histogram_figure(
    alphas: Sequence[float] | np.ndarray,
    *,
    n_models: int | None = None,
    x_range: tuple[float, float] = (1.0, 8.0),
    bins: int = 70,
    title: str | None = None,
) -> Figure:
    """Histogram of per-matrix power-law exponents α with 2 and 4 marked.

    Prints the share of finite α strictly inside (2, 4) (the SDM paper reports 70-80 %) and
    how many values fall outside ``x_range`` (those are counted in the share but not drawn).
    """
    a = np.asarray(alphas, dtype=float)
    a = a[np.isfinite(a)]
    fig = new_figure(7.0, 4.5)
    ax = fig.subplots()
    ax.set_xlabel("power-law exponent α of the ESD tail (dimensionless)")
    ax.set_ylabel("number of weight matrices")
    if a.size == 0:
        _note(ax, "no fitted matrices")
        return fig
    lo, hi = x_range
    inside = a[(a >= lo) & (a <= hi)]
    n_out = a.size - inside.size
    share = float(np.mean((a > 2.0) & (a < 4.0)))
    sns.histplot(inside, bins=np.linspace(lo, hi, bins + 1), ax=ax, color="C0", edgecolor="white")
    ax.axvspan(2.0, 4.0, color="C2", alpha=0.12, zorder=0)
    for v in (2.0, 4.0):
        ax.axvline(v, color="C3", ls="--", lw=1.2)
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # headroom for the text box
    where = f" from {n_models} models" if n_models is not None else ""
    text = f"{share:.1%} of {a.size} matrices{where} have 2 < α < 4"
    text += f"\n{n_out} α outside [{lo:g}, {hi:g}] not drawn"
    if n_out:
        text += f" (min {a.min():.2f}, max {a.max():.2f})"
    ax.text(
        0.98, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=9,
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.8"},
    )  # fmt: skip
    what = f", {title}" if title else ""
    ax.set_title(f"Power-law exponent α of every fitted weight matrix{what}")
    return fig


def largest_matrix(spectra: pd.DataFrame) -> pd.Series:
    """The row of the largest matrix (by N·M), preferring rows with ``status == "ok"``."""
    if spectra.empty:
        raise ValueError("largest_matrix: empty spectra table")
    ok = spectra[spectra["status"] == "ok"]
    pool = ok if not ok.empty else spectra
    size = pool["N"].astype(float) * pool["M"].astype(float)
    return pool.loc[size.idxmax()]


def esd_figure(spectra: pd.DataFrame, model: str, *, bins: int = 80) -> Figure:
    """Log-log ESD of the model's largest matrix (:func:`largest_matrix`) with its fitted
    power-law tail (:func:`esd_row_figure`)."""
    return esd_row_figure(largest_matrix(spectra), model, bins=bins)


def esd_row_figure(row: pd.Series, model: str, *, bins: int = 80) -> Figure:
    """Log-log ESD of one matrix (a row of ``analyze(..., keep_evals=True)``) with its fit.

    The histogram is a density over logarithmically spaced bins of the positive eigenvalues
    (zeros cannot be drawn on a log axis and are counted in the legend). The tail line is
    ``p(λ) = (n_tail/n) · (α-1)/xmin · (λ/xmin)^-α`` for ``xmin ≤ λ ≤ λ_max``: the Pareto
    density of the fit, scaled by the fraction of eigenvalues in the tail so it overlays the
    density of all eigenvalues. xmin and λmax are marked; α and the KS distance D are in the
    title.
    """
    evals = np.asarray(row["evals"], dtype=float)
    pos = evals[evals > 0]
    fig = new_figure(6.5, 4.6)
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue λ of WᵀW (squared singular value)")
    ax.set_ylabel("density p(λ)")
    slice_ = row.get("slice")
    where = f" [{slice_}]" if isinstance(slice_, str | int) and str(slice_) else ""
    ax.set_title(f"{model}: {row['layer']}{where} ({int(row['N'])}×{int(row['M'])})")
    ax.grid(alpha=0.3, which="both")
    if pos.size < 2 or pos.min() == pos.max():
        _note(ax, f"{model}: too few distinct positive eigenvalues to draw ({pos.size})")
        return fig
    edges = np.geomspace(pos.min(), pos.max() * (1 + 1e-9), bins + 1)
    n_zero = evals.size - pos.size
    hist_label = f"ESD, {evals.size} eigenvalues"
    hist_label += f" ({n_zero} zero, not drawn)" if n_zero else ""
    ax.hist(pos, bins=edges, density=True, color="C0", alpha=0.6, label=hist_label)
    alpha, xmin = float(row["alpha"]), float(row["xmin"])
    if row["status"] == "ok" and np.isfinite(alpha) and np.isfinite(xmin) and xmin > 0:
        frac = float(row["n_tail"]) / evals.size
        lam = np.geomspace(xmin, pos.max(), 50)
        dens = frac * (alpha - 1.0) / xmin * (lam / xmin) ** (-alpha)
        ax.plot(lam, dens, color="C3", lw=2, label=f"power-law fit, α = {alpha:.2f}")
        ax.axvline(xmin, color="C3", ls=":", lw=1.2, label=f"xmin = {xmin:.3g}")
        ax.axvline(float(pos.max()), color="0.3", ls="--", lw=1.0,
                   label=f"λmax = {float(pos.max()):.3g}")  # fmt: skip
        d = float(row.get("D", np.nan))
        stats = f"α = {alpha:.2f}" + (f", KS distance D = {d:.3f}" if np.isfinite(d) else "")
        ax.set_title(f"{ax.get_title()}\n{stats}", fontsize=10)
    else:
        ax.plot([], [], " ", label=f"no power-law fit (status {row['status']})")
    ax.legend(fontsize=8, loc="lower left")
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
    within the printed rounding. ``table`` is :func:`htsr.paper.compare`'s."""
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


def compare_figure(table: pd.DataFrame, name_a: str, name_b: str) -> Figure:
    """α of every matrix of two checkpoints by depth (the compare table's row order), A and B
    as two series, each change drawn as a segment from A to B (red: α fell, the layer became
    more heavy-tailed; blue: α rose); matrices present in only one side are drawn alone."""
    fig = new_figure(max(7.0, 0.05 * len(table) + 5.0), 4.8)
    ax = fig.subplots()
    depth = np.arange(len(table))
    a, b = table["alpha_a"].to_numpy(float), table["alpha_b"].to_numpy(float)
    both = np.isfinite(a) & np.isfinite(b)
    for i in np.flatnonzero(both & (a != b)):
        ax.plot([depth[i], depth[i]], [a[i], b[i]], color="C3" if b[i] < a[i] else "C0",
                lw=1.0, alpha=0.7)  # fmt: skip
    ax.scatter(depth, a, s=14, color="0.45", marker="o", label=f"A: {name_a}")
    ax.scatter(depth, b, s=14, color="C1", marker="^", label=f"B: {name_b}")
    ax.plot([], [], color="C3", label="α fell (more heavy-tailed)")
    ax.plot([], [], color="C0", label="α rose (less heavy-tailed)")
    for v in (2.0, 6.0):
        ax.axhline(v, color="0.6", ls=":", lw=1,
                   label="α = 2 and 6 (warning thresholds)" if v == 2.0 else None)  # fmt: skip
    ax.set_xlabel("matrix, in layer order (depth)")
    ax.set_ylabel("power-law exponent α (dimensionless)")
    fell, rose = int(np.sum(both & (b < a))), int(np.sum(both & (b > a)))
    ax.set_title(f"α by depth: {fell} matrices more heavy-tailed in B, {rose} less", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def track_figure(track: pd.DataFrame, alpha: pd.DataFrame) -> Figure:
    """A training run: α̂, mean log-norm and ᾱ against step (left column), and a heatmap of α
    per matrix (rows, in layer order) against step (right)."""
    fig = new_figure(12.0, 7.5)
    grid = fig.add_gridspec(3, 2, width_ratios=(1.0, 1.4))
    for i, metric in enumerate(("alpha_weighted", "log_norm", "alpha")):
        ax = fig.add_subplot(grid[i, 0])
        if metric in track.columns:
            ax.plot(track["step"], track[metric], marker="o", color=f"C{i}")
        ax.set_ylabel(METRIC_SHORT.get(metric, metric), fontsize=9)
        ax.grid(alpha=0.3)
        if i == 2:
            ax.set_xlabel("training step (from the file names)")
    ax = fig.add_subplot(grid[:, 1])
    values = alpha.to_numpy(float)
    shown = np.clip(values, 1.0, 8.0)
    image = ax.imshow(shown, aspect="auto", cmap="viridis_r", vmin=1.0, vmax=8.0,
                      interpolation="nearest")  # fmt: skip
    ax.set_xticks(range(alpha.shape[1]), [str(c) for c in alpha.columns], rotation=45, fontsize=8)
    step = max(1, alpha.shape[0] // 30)
    ax.set_yticks(range(0, alpha.shape[0], step), list(alpha.index[::step]), fontsize=6)
    ax.set_xlabel("training step")
    ax.set_ylabel("matrix (layer order)")
    ax.set_title("α per matrix (clipped to [1, 8]; blank: no fit)", fontsize=10)
    fig.colorbar(image, ax=ax, label="power-law exponent α")
    fig.suptitle("Training run: model-level metrics and α per matrix against step")
    return fig


def layer_alpha(spectra: pd.DataFrame) -> pd.DataFrame:
    """α by layer depth: one row per layer (in the table's order) with ``depth`` (0-based),
    ``layer`` and ``alpha``, the mean α of its fitted matrices (NaN when none is fitted)."""
    ok = spectra.assign(alpha=spectra["alpha"].where(spectra["status"] == "ok").astype(float))
    layers = list(dict.fromkeys(ok["layer"]))
    mean = ok.groupby("layer", sort=False)["alpha"].mean().reindex(layers)
    return pd.DataFrame({"depth": range(len(layers)), "layer": layers, "alpha": mean.to_numpy()})


def correlation_flow_figure(
    models: pd.DataFrame,
    spectra: Mapping[str, pd.DataFrame],
    *,
    headline: Callable[[str], tuple[str, str, str]] | None = None,
    higher_is_better: Callable[[str], bool] | None = None,
    families: Sequence[str] = (),
    title: str = "Correlation flow: α by layer depth, best and worst model of each family",
) -> Figure:
    """Nat. Commun. 2021's "correlation flow": α of each layer against its depth (relative, 0 =
    first layer, 1 = last) for the best and the worst model of each family by its headline
    quality, one panel per family (families with at least 2 models with that quality).

    ``spectra`` maps model keys to their per-matrix tables; ``headline(family)`` gives
    ``(quality, label, transform)`` and ``higher_is_better(quality)`` which end is best.
    """
    headline = headline or _top1_headline
    better = higher_is_better or (lambda quality: True)
    if families:
        models = models[models["family"].isin(families)]
    groups = []
    for family, group in models.groupby("family", sort=False):
        quality, label, _ = headline(family)
        ok = group[np.isfinite(group.get(quality, pd.Series(np.nan, group.index)).astype(float))]
        ok = ok[ok["model"].isin(list(spectra))]
        if len(ok) >= 2:
            ranked = ok.sort_values(quality, ascending=not better(quality))
            groups.append((family, quality, label, ranked.iloc[0], ranked.iloc[-1]))
    ncols = min(3, max(len(groups), 1))
    nrows = max(math.ceil(len(groups) / ncols), 1)
    fig = new_figure(5.0 * ncols, 3.8 * nrows + 0.6)
    fig.suptitle(title)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    if not groups:
        _note(axes[0], "no family has two models with a quality and spectra")
    for ax, (family, quality, _label, best, worst) in zip(axes, groups, strict=False):
        for row, style, color in ((best, "-", "C2"), (worst, "--", "C3")):
            flow = layer_alpha(spectra[row["model"]])
            depth = flow["depth"] / max(len(flow) - 1, 1)
            fitted = np.isfinite(flow["alpha"].to_numpy(float))  # the line joins fitted layers
            name = point_names(pd.DataFrame([row]))[0]
            ax.plot(depth[fitted], flow["alpha"][fitted], style, marker=".", ms=4, color=color,
                    lw=1.0,
                    label=f"{name} ({quality} = {float(row[quality]):.4g})")  # fmt: skip
        ax.set_title(f"{family}: best and worst by {quality}", fontsize=10)
        ax.set_xlabel("relative layer depth (0 first, 1 last; unfitted layers skipped)",
                      fontsize=9)  # fmt: skip
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylabel("α of the layer (mean over its matrices)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes[max(len(groups), 1) :]:
        ax.set_visible(False)
    return fig


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


#: Colours of :func:`answer_figure` by verdict.
VERDICT_COLORS = {"holds": "C2", "fails": "C3", "undecided": "0.55"}


def answer_figure(table: pd.DataFrame, *, metric: str = "alpha_weighted") -> Figure:
    """Kendall τ between ``metric`` and each family's quality, turned so that > 0 is what the
    paper predicts (better quality with a smaller metric), with its 95 % bootstrap interval:
    one line per family, grouped by study (the ImageNet reference block first), coloured by
    verdict, the zero line drawn. ``table`` is :func:`htsr.summary.answer_table`'s, one row per
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
