"""Before a family is declared: does its lever move quality beyond the seed spread?

Trains, for each family of a study (or those named), the first and last value of its declared
grid with the declared hyperparameters for ``--seeds`` seeds on the real prepared dataset
(``resources/datasets/{key}.pt`` or ``--data``), and prints the headline quality's mean and
standard deviation per value, the difference of the means and the larger of the two sds, and the
seconds per model.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/lever_check.py config/studies/gnn.yaml \\
        --data resources/datasets/planetoid-Cora.pt --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from htsr.experiments import datasets, train
from htsr.experiments.grids import dataset_key
from htsr.studies import study as studies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study")
    ap.add_argument("--data", default="")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--families", nargs="*", default=[])
    args = ap.parse_args()
    torch.set_num_threads(1)
    study = studies.read_study(args.study)
    table = study.read_table("default")
    key = dataset_key(study.experiment["dataset"])
    data = datasets.load(args.data or f"resources/datasets/{key}.pt")
    q = study.headline
    for family, rows in table.groupby("family", sort=False):
        if args.families and family not in args.families:
            continue
        ends = [rows["setting"].iloc[0], rows["setting"].iloc[-1]]
        means = {}
        for value in ends:
            rec = rows[rows["setting"] == value].iloc[0]
            hp = json.loads(rec["hyperparameters"])
            got, start = [], time.perf_counter()
            for seed in args.seeds:
                _, result = train.train(rec["architecture"], hp, data, seed)
                got.append(result[q])
            wall = (time.perf_counter() - start) / len(args.seeds)
            sd = statistics.stdev(got) if len(got) > 1 else float("nan")
            means[value] = (statistics.mean(got), sd)
            print(
                f"{study.name} {family} {rec['vary']}={value}: {q} "
                + " ".join(f"{g:.3f}" for g in got)
                + f" mean {means[value][0]:.3f} sd {sd:.3f}, {wall:.1f} s/model",
                flush=True,
            )
        (m0, s0), (m1, s1) = means.values()
        print(
            f"{study.name} {family}: difference {m1 - m0:+.3f}, largest seed sd {max(s0, s1):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
