"""What every figure of :mod:`htsr.figures` shares: markers, axis labels, a pyplot-free
figure, atomic saving and the placement of point names.

Every ``*_figure`` function is pure in the sense that it takes tables and returns a new
:class:`matplotlib.figure.Figure` (no pyplot state, no files); :func:`save_figure` writes it
atomically to PNG/PDF. Missing data (a family absent from the run, fewer than three models, a
NaN metric) yields a note inside the panel (:func:`_note`) instead of an exception.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from htsr.io import atomic_output

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
#: metrics use :data:`htsr.studies.trends.METRIC_LABELS`.
FAMILY_YLABELS: dict[str, str] = {
    "alpha_weighted": "α̂ (weighted α, dimensionless)",
    "alpha": "ᾱ (mean α, dimensionless)",
}


def _top1_headline(family: str) -> tuple[str, str, str]:
    """The default headline of every family: top-1 accuracy, as published."""
    return "top1", TOP1_LABEL, ""


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
    (:func:`htsr.studies.provenance.atomic_output`), so an interrupted run never leaves a truncated
    figure.
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


#: labels placed farther than this (points) from their point get a thin leader line
_LEADER_PT = 10.0


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
    one is used. A thin leader line joins a label to its point when it overlaps or stands
    farther than :data:`_LEADER_PT` from it. Axis limits and layout must be final before calling.
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
        # a leader line ties a label to its point when it overlaps something or stands off
        # beyond the nearest rings (then several points' labels can sit side by side)
        far = math.hypot(dx, dy) > _LEADER_PT
        leader = {"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if cost > 0.0 or far else None
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


def _group_name(set_name: str, family: str, several: bool) -> str:
    """A family's name in figures: ``"VGG (paper2019)"`` when several model sets are drawn."""
    return f"{family} ({set_name})" if several and set_name else family
