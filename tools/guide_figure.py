"""Figure of the α-guided comparisons: every seed's paired difference (method − baseline) in
test accuracy, with the mean and its 95 % t-interval.

    python3 tools/guide_figure.py docs/guide_results docs/guide_results/comparisons
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402


def main(src: str, out: str) -> None:
    d = Path(src)
    tr = pd.read_csv(d / "mnist_training.tsv", sep="\t").pivot(
        index="seed", columns="arm", values="test_acc"
    )
    pr = pd.read_csv(d / "mnist_pruning.tsv", sep="\t")
    co = pd.read_csv(d / "cora.tsv", sep="\t").pivot(index="seed", columns="arm", values="test_acc")
    panels = {
        "MNIST\nTempBalance − cosine": (tr["tempbalance"] - tr["cosine"]).to_numpy(),
        "MNIST\nAlphaDecay − uniform wd": (tr["alphadecay"] - tr["cosine"]).to_numpy(),
        "Cora GCN\nTempBalance − cosine": (co["tempbalance"] - co["cosine"]).to_numpy(),
    }
    for s, g in pr.groupby("sparsity"):
        panels[f"MNIST pruned {s:.0%}\nAlphaPruning − uniform"] = (
            g["alphapruning"] - g["uniform"]
        ).to_numpy()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, diff in enumerate(panels.values()):
        m = diff.mean()
        h = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))
        x = i + np.linspace(-0.15, 0.15, len(diff))
        ax.scatter(x, diff, s=18, color="0.5", zorder=2, label="one seed" if i == 0 else None)
        ax.errorbar(i + 0.3, m, yerr=h, fmt="o", color="C0" if abs(m) <= h else "C3",
                    capsize=4, label="mean, 95 % interval" if i == 0 else None)  # fmt: skip
        ax.annotate(f"{m:+.3f}\n[{m - h:+.3f}, {m + h:+.3f}]", (i, 0.22), ha="center",
                    fontsize=7)  # fmt: skip
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(panels)), list(panels), fontsize=7)
    ax.set_ylabel("test accuracy difference (fraction, paired by seed)")
    ax.set_ylim(-0.85, 0.3)
    ax.set_title("α-guided methods against their baselines (5 seeds each); no interval excludes 0")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(f"{out}.{ext}", dpi=150)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
