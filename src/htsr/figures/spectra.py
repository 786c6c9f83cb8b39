"""Figures of the spectra themselves across models: the histogram of fitted α and the flow of α
with depth (the 2021 paper's correlation flow).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from htsr.figures.common import _note, _top1_headline, new_figure, point_names


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
    # the run's title on its own line: one line of both is wider than the figure
    what = f"\n{title}" if title else ""
    ax.set_title(f"Power-law exponent α of every fitted weight matrix{what}", fontsize=11)
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
