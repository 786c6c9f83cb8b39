"""Time ``htsr.analyze`` against WeightWatcher 0.7.7 and against the bare-SVD floor.

For each random-init torchvision model (seed 0) and convention, in one process:

(a) ``htsr.analyze(model, convention)`` with its defaults (on CPU: float32 BLAS SYRK Gram +
    LAPACK syevd, then the fits and metrics);
(b) WeightWatcher 0.7.7's ``analyze()`` with matching settings: ``ww`` = its defaults;
    ``paper`` = the closest WW settings, ``pool=False`` (one ESD per conv tap),
    ``conv2d_norm=False`` (raw eigenvalues), ``min_evals=50`` (its per-matrix ``M >= 50`` filter,
    which unlike the paper also drops linear layers with M < 50), and its default untruncated
    WWFit (WW's truncated route ``xmax="force", pl_package="powerlaw"`` fails every fit with
    powerlaw 2.0.0: ``Fit.__init__() got an unexpected keyword argument 'distribution'``);
(c) the floor: only ``torch.linalg.svdvals`` (float32, batched per layer) of the matrices (a)
    fits, nothing else;
(d) ``eig_s``: only htsr's own eigenvalue route (float32 Gram + syevd) on those matrices, no
    fits and no table: the part of (a) that is dense linear algebra.

and prints the times and the ratios a/b, a/c, a/d (what the fits and the table add to the
eigensolves) and d/b (the best a/b the eigenvalue route allows). With ``--repeat K`` every time
is the best of K runs (the first call of a process pays one-off costs: imports, allocator and
BLAS warm-up).
``--alternatives`` also times the eigenvalue routes
on the same matrices (batched svdvals float32/float64, Gram + eigvalsh float32/float64).
``--device cuda`` runs (a), (c) and (d) on the GPU (``analyze``'s CUDA default is float64; the
floor stays float32 svdvals; transfers are timed); WeightWatcher 0.7.7 then uses the GPU too
(it switches its SVD to ``torch.linalg.svdvals`` on CUDA, with weights cast to float16 first,
whenever ``torch.cuda.is_available()``). To time WeightWatcher on the CPU of a GPU machine, run
with ``CUDA_VISIBLE_DEVICES=`` and no ``--device``.
``--memory MODEL`` measures the peak RSS of ``analyze`` beyond the loaded model in a child
process (``resource.getrusage`` high-water mark after building the model vs after analyze).

Usage::

    python benchmarks/bench_analyze.py [--models resnet18 vgg16 ...] [--conventions paper ww]
        [--threads 1] [--device cpu|cuda] [--skip-ww] [--alternatives] [--memory vgg16]
        [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

DEFAULT_MODELS = ("resnet18", "resnet50", "vgg16", "densenet121", "vit_b_16")


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--conventions", nargs="+", default=["paper", "ww"], choices=["paper", "ww"])
    p.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (machine is shared)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="for (a), (c), (d)")
    p.add_argument("--skip-ww", action="store_true", help="do not run WeightWatcher")
    p.add_argument("--alternatives", action="store_true", help="time the eigenvalue routes")
    p.add_argument("--memory", default=None, help="model whose analyze peak RSS to measure")
    p.add_argument("--repeat", type=int, default=1, help="best of this many runs per timing")
    p.add_argument("--memory-child", nargs=2, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


ARGS = _args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import logging  # noqa: E402
import resource  # noqa: E402
import warnings  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

import htsr  # noqa: E402
from htsr.spectral.eigen import eigenvalues  # noqa: E402
from htsr.spectral.matrices import iter_layers, layer_matrices  # noqa: E402

torch.set_num_threads(ARGS.threads)
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)  # WeightWatcher logs per layer


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None).eval()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """Best wall time of ``--repeat`` calls, and the last call's result."""
    best = float("inf")
    for _ in range(max(1, ARGS.repeat)):
        sync()
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, out


def fitted_stacks(model: torch.nn.Module, table: pd.DataFrame, convention: str) -> list:
    """The matrix stacks ``analyze`` computed spectra for and fitted (status not too_small)."""
    used = table[~table.status.isin(["too_small", "too_large"])]
    keep = {(r.layer, r.slice) for r in used.itertuples()}
    stacks = []
    for lw in iter_layers(model, include_attention=convention == "paper"):
        s = layer_matrices(lw)
        idx = [
            i
            for i, lab in enumerate(s.slices)
            if (s.layer, lab if convention == "paper" else "") in keep
        ]
        if idx:
            stacks.append(s.matrices[idx] if len(idx) < len(s.slices) else s.matrices)
    return stacks


def route_time(stacks: list, route: str, device: str = "cpu") -> float:
    """Seconds (best of ``--repeat``) for the eigenvalues of every stack by ``route``
    (``svd-float32``, ``gram-float64``…) on ``device``, host-to-device transfers included."""
    method, dtype = route.split("-")

    def run() -> None:
        with torch.no_grad():
            for m in stacks:
                if method == "svd":
                    torch.linalg.svdvals(m.to(device=device, dtype=getattr(torch, dtype)))
                else:
                    eigenvalues(m, dtype=dtype, device=device, method="gram")

    return timed(run)[0]


def run_ww(model: torch.nn.Module, convention: str) -> pd.DataFrame:
    import weightwatcher as ww

    watcher = ww.WeightWatcher(model=model)
    if convention == "ww":
        return watcher.analyze()
    return watcher.analyze(pool=False, conv2d_norm=False, min_evals=50)


def current_rss_kib() -> int:
    """Resident set size now, from /proc/self/status (KiB)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found in /proc/self/status")


def memory_child(name: str, convention: str) -> None:
    """Print peak RSS during analyze minus the RSS with the model loaded (MiB)."""
    model = build(name)
    import gc

    gc.collect()
    before = current_rss_kib()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    htsr.analyze(model, convention)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    note = "" if peak > peak_before else " (peak set before analyze: upper bound)"
    print(f"{(peak - before) / 1024:.0f}{note}")


def main() -> None:
    if ARGS.memory_child:
        memory_child(*ARGS.memory_child)
        return
    dev = ARGS.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_analyze: --device cuda given but torch sees no CUDA device")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none visible"
    print(f"threads={ARGS.threads} torch={torch.__version__} device={dev} GPU: {gpu}")
    if dev == "cuda":  # CUDA context, cuBLAS/cuSOLVER handles: not part of any timing
        warm = torch.nn.Sequential(torch.nn.Linear(64, 64))
        for d in ("float32", "float64"):
            htsr.analyze(warm, device=dev, dtype=d)
        route_time([torch.randn(2, 64, 64)], "svd-float32", dev)
    eig_dtype = "float64" if dev == "cuda" else "float32"  # analyze's default on that device
    rows, alt_rows = [], []
    for name in ARGS.models:
        model = build(name)
        for conv in ARGS.conventions:
            t_ours, table = timed(htsr.analyze, model, conv, device=dev)
            stacks = fitted_stacks(model, table, conv)
            t_floor = route_time(stacks, "svd-float32", dev)
            t_eig = route_time(stacks, f"gram-{eig_dtype}", dev)
            t_ww = float("nan")
            if not ARGS.skip_ww:
                t_ww, _ = timed(run_ww, model, conv)
            rows.append(
                dict(model=name, convention=conv, rows=len(table), ours_s=t_ours, ww_s=t_ww,
                     floor_s=t_floor, eig_s=t_eig, ours_over_ww=t_ours / t_ww,
                     ours_over_floor=t_ours / t_floor, ours_over_eig=t_ours / t_eig,
                     eig_over_ww=t_eig / t_ww)
            )  # fmt: skip
            print(pd.DataFrame([rows[-1]]).round(3).to_string(index=False, header=len(rows) == 1))
            if ARGS.alternatives and conv == "paper":
                routes = ["svd-float32", "svd-float64", "gram-float32", "gram-float64"]
                alt_rows.append({"model": name} | {r: route_time(stacks, r, dev) for r in routes})
    print("\nanalyze vs WeightWatcher 0.7.7 vs svdvals floor (seconds)")
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    if alt_rows:
        print("\neigenvalue routes on the paper matrices (seconds)")
        print(pd.DataFrame(alt_rows).round(3).to_string(index=False))
    if ARGS.memory:
        for conv in ARGS.conventions:
            cmd = [sys.executable, __file__, "--threads", str(ARGS.threads),
                   "--memory-child", ARGS.memory, conv]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            mib = res.stdout.strip().splitlines()[-1]
            print(f"peak RSS of analyze({ARGS.memory}, {conv!r}) beyond the model: {mib} MiB")


if __name__ == "__main__":
    main()
