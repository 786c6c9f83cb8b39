"""Time the papers' methods against the default: ``evals="tsvd"`` (the M - 1 largest eigenvalues
that scikit-learn's ``TruncatedSVD(n_components=M-1, n_iter=7)`` returned exactly to round-off,
as the 2019 notebooks and WeightWatcher 0.2.7 computed them; computed exactly in float64) against
the exact eigenvalues, and against scikit-learn's TruncatedSVD itself (the route ``tsvd`` replaced,
``evals="tsvd_sklearn"``; its floor: the same calls without fits or table).

For each random-init torchvision model (seed 0), in one process:

(a) ``htsr.analyze(model, "paper", dtype="float64")`` (exact eigenvalues, rule ``model_spectra``);
(b) ``htsr.analyze(model, "paper", evals="tsvd")`` (method ``tsvd``; the pipeline's rule
``model_spectra_with_methods`` computes it beside (a) from the same eigendecomposition);
(c) ``htsr.analyze(model, "ww2020", evals="tsvd")`` (method ``ww2020``);
(d) the floor of the scikit-learn route: ``TruncatedSVD(n_components=M-1, n_iter=7).fit(W)`` of
    every matrix (b) analyses, nothing else (``--skip-sklearn``: not run, NaN);
(e) ``htsr.spectral.metrics.analyze_methods`` of (a), (b) and (c) together, as the pipeline's
    rule ``model_spectra_with_methods`` runs a file of both papers' sets (one eigendecomposition
    per matrix);

and prints the seconds, the ratios b/a and c/a (what a tsvd job costs against an exact one: the
pipeline's ``EVALS_COST_FACTOR``), d/b (how much faster the exact route is than scikit-learn's
alone) and e/(a+b+c) (the shared job against three separate analyses). Seconds per million
parameters are printed too (the pipeline's ``SPECTRA_S_PER_MPARAM`` basis).

Usage::

    python benchmarks/bench_methods.py [--models resnet18 vgg11 ...] [--threads 2] [--skip-sklearn]
        [--repeat 3] [--clock cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from sklearn.decomposition import TruncatedSVD

import htsr
from htsr.spectral.eigen import TSVD_N_ITER
from htsr.spectral.matrices import iter_layers, layer_matrices
from htsr.spectral.metrics import analyze_methods


def _floor(model: torch.nn.Module, clock=time.perf_counter) -> float:
    """scikit-learn's TruncatedSVD of every matrix the paper convention fits (min side >= 50
    for conv taps, every Linear), as the tsvd_sklearn route calls it."""
    start = clock()
    for layer in iter_layers(model, include_attention=True):
        stack = layer_matrices(layer)
        m = stack.shape[1]
        if m < 2 or (stack.layer_type != "linear" and m < 50):
            continue
        for w in stack.matrices:
            w = w.detach().to(torch.float64).numpy()
            if stack.layer_type != "linear" and w.shape[0] < w.shape[1]:
                w = w.T
            TruncatedSVD(n_components=min(w.shape) - 1, n_iter=TSVD_N_ITER,
                         random_state=42).fit(w)  # fmt: skip
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "densenet121", "resnet50"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--skip-sklearn", action="store_true", help="do not time scikit-learn (d): minutes on VGG"
    )
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs of (a), (b), (c)")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall seconds, or this process's CPU seconds (all threads): steadier on a shared"
        " machine",
    )  # fmt: skip
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; {args.clock} seconds, best of {args.repeat}; b/a, c/a = tsvd"
          " against exact, d/b = scikit-learn's TruncatedSVD alone against tsvd, e/(a+b+c) ="
          " the three in one analyze_methods call against separate calls")  # fmt: skip
    print(
        "| model | Mparams | a exact | b tsvd | c ww2020 tsvd | d sklearn floor | e a+b+c shared "
        "| b/a | c/a | d/b | e/(a+b+c) | a s/Mparam | b s/Mparam |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs = {"a": {"convention": "paper", "dtype": "float64"},
            "b": {"convention": "paper", "evals": "tsvd"},
            "c": {"convention": "ww2020", "evals": "tsvd"}}  # fmt: skip
    for name in args.models:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval()
        mparams = sum(p.numel() for p in model.parameters()) / 1e6
        times = [float("inf")] * 4
        for _ in range(args.repeat):
            for i, kwargs in enumerate(runs.values()):
                start = clock()
                htsr.analyze(model, **kwargs)
                times[i] = min(times[i], clock() - start)
            start = clock()
            analyze_methods(model, {k: {**kw, "dtype": "float64"} for k, kw in runs.items()})
            times[3] = min(times[3], clock() - start)
        floor = float("nan") if args.skip_sklearn else _floor(model, clock)
        a, b, c, e = times
        print(
            f"| {name} | {mparams:.1f} | {a:.2f} | {b:.2f} | {c:.2f} | {floor:.2f} | {e:.2f} "
            f"| {b / a:.2f} | {c / a:.2f} | {floor / b:.1f} | {e / (a + b + c):.2f} "
            f"| {a / mparams:.3f} | {b / mparams:.3f} |"
        )


if __name__ == "__main__":
    main()
