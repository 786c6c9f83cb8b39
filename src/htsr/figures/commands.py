"""Figures of the practitioner's commands (``htsr compare``, ``htsr track``, ``htsr esd``):
two models compared layer by layer, α of each layer over training checkpoints, and one
matrix's empirical spectral density with its power-law fit.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from htsr.figures.common import METRIC_SHORT, _note, new_figure


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
    # model and matrix on lines of their own, long names wrapped: a ResNet-101 layer name and
    # its shape do not fit beside the model key on a 6.5-inch figure
    what = f"{row['layer']}{where} ({int(row['N'])}×{int(row['M'])})"
    ax.set_title("\n".join(textwrap.wrap(model, 70) + textwrap.wrap(what, 70)), fontsize=10)
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
