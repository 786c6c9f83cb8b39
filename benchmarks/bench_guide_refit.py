"""The cost of refitting α in guided training: every optimizer step against once per epoch,
against the floor (the same training without α: the cosine baseline).

Trains the comparisons' small CNN (:mod:`htsr.experiments.nets` ``mini_alexnet``, convs
``--width`` wide, fc 384 and 192) with TempBalance's rule
(:class:`htsr.guide.training.GuideHooks`, :class:`htsr.guide.AlphaGuide`) on random images of
the MNIST subset's shape (``--n`` × 1 × 28 × 28, 10 classes, batch 128), three ways, each
``--repeat`` times (the best CPU time kept):

* ``floor``: no α (the baseline arm);
* ``epoch``: α refitted once per epoch (TempBalance as published);
* ``step``: α refitted after every optimizer step (``every=1`` on the step hook), the setting
  the TempBalance issue tracker reports as ~20× slower on GPU.

    python benchmarks/bench_guide_refit.py --threads 1 [--epochs 2] [--n 4000] [--repeat 2]

Prints one row per mode (CPU seconds, wall seconds, α fits, optimizer steps) and the ratios
step/floor, epoch/floor and step/epoch on the last line. Time is CPU time of this process
(``time.process_time``), so a loaded machine inflates the wall time, not the ratio much.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from htsr.experiments import train
from htsr.guide.training import GuideHooks


class StepRefit(GuideHooks):
    """TempBalance's rule, α refitted after every optimizer step (at the current rate)."""

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.guide.step(optimizer, self.lr)


def fake_mnist(n: int, test: int = 200) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "x_train": torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
        "y_train": torch.randint(0, 10, (n,), generator=g),
        "x_test": torch.randint(0, 256, (test, 1, 28, 28), generator=g, dtype=torch.uint8),
        "y_test": torch.randint(0, 10, (test,), generator=g),
        "meta": {"kind": "images", "channels": 1, "size": 28, "classes": 10, "mean": [0.5],
                 "std": [0.29]},
    }  # fmt: skip


def run(mode: str, data: dict, hp: dict) -> dict:
    hooks = {"floor": None, "epoch": GuideHooks("tempbalance"),
             "step": StepRefit("tempbalance")}[mode]  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    train.train("mini_alexnet", hp, data, 0, hooks=hooks)
    return {"mode": mode, "cpu_s": time.process_time() - cpu,
            "wall_s": time.perf_counter() - wall,
            "fits": hooks.refits if hooks is not None else 0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n", type=int, default=4000, help="training images (4000: the MNIST subset)")
    p.add_argument("--width", type=int, default=16, help="conv width (16: the comparisons')")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = fake_mnist(args.n)
    hp = {"epochs": args.epochs, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4,
          "schedule": "cosine", "conv_width": args.width}  # fmt: skip
    steps = args.epochs * -(-args.n // 128)
    best = {}
    for _ in range(args.repeat):
        for mode in ("floor", "epoch", "step"):
            r = run(mode, data, hp)
            if mode not in best or r["cpu_s"] < best[mode]["cpu_s"]:
                best[mode] = r
    print(f"alpha refit cost: mini_alexnet width {args.width}, {args.n} images, {args.epochs}"
          f" epochs, {steps} steps, threads {args.threads}, best of {args.repeat}")  # fmt: skip
    print(f"{'mode':6} {'cpu_s':>8} {'wall_s':>8} {'fits':>5} {'steps':>6}")
    for r in best.values():
        print(f"{r['mode']:6} {r['cpu_s']:8.2f} {r['wall_s']:8.2f} {r['fits']:5d} {steps:6d}")
    ratios = {
        "step_over_floor": best["step"]["cpu_s"] / best["floor"]["cpu_s"],
        "epoch_over_floor": best["epoch"]["cpu_s"] / best["floor"]["cpu_s"],
        "step_over_epoch": best["step"]["cpu_s"] / best["epoch"]["cpu_s"],
    }
    print(json.dumps({k: round(v, 3) for k, v in ratios.items()}))


if __name__ == "__main__":
    main()
