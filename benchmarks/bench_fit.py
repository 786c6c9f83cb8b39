"""Time ``htsr.spectral.fit`` against the reference implementations it reproduces, in one run.

* untruncated: ``fit_power_law(x)`` vs ``powerlaw.Fit(x, parameter_ranges={'alpha': [1, 100]})``
  of powerlaw 2.0.0 (in this process);
* truncated: ``fit_power_law(x, xmax=max(x))`` vs ``powerlaw.Fit(x, xmax=max(x))`` of powerlaw
  1.4.6 (vendored sdist, in a subprocess; the time is measured inside it, around ``Fit`` only);
* ww: ``fit_power_law_ww(x)`` vs ``weightwatcher.WW_powerlaw.WWFit(x)`` of WeightWatcher 0.7.7.

Spectra: a Marchenko-Pastur bulk (90 %) plus a Pareto tail (alpha = 2.5 and 4; 10 %), n = 500,
2000, 4096. Usage (from the repository root)::

    python benchmarks/bench_fit.py [--no-146] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reference"))

from powerlaw_refs import extract_powerlaw_146, run_powerlaw  # noqa: E402

from htsr.spectral.fit import fit_power_law, fit_power_law_ww  # noqa: E402


def bulk_tail_spectrum(n: int, alpha: float, seed: int) -> np.ndarray:
    """Eigenvalues of a Gaussian ``2m x m`` Wishart matrix (m = 0.9 n) plus a Pareto tail."""
    rng = np.random.default_rng(seed)
    m = int(0.9 * n)
    bulk = np.linalg.svd(rng.standard_normal((2 * m, m)), compute_uv=False) ** 2 / (2 * m)
    tail = 3.0 * (1.0 - rng.random(n - m)) ** (-1.0 / (alpha - 1.0))
    return np.sort(np.concatenate([bulk, tail]))


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Smallest wall time of ``repeat`` calls (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_gpu(repeat: int) -> int:
    """htsr on a numpy array (CPU) vs on a CUDA tensor (KS matrix on the GPU)."""
    import torch

    print(f"{'n':>6s} {'fit':12s} {'cpu [ms]':>9s} {'cuda [ms]':>10s} {'speed-up':>9s} same")
    for n in (2000, 4096, 10000):
        x = bulk_tail_spectrum(n, 2.5, seed=n)
        xc = torch.from_numpy(x).cuda()
        xmax = float(x.max())
        fits = {
            "untruncated": lambda v: fit_power_law(v),
            "truncated": lambda v, xmax=xmax: fit_power_law(v, xmax=xmax),
            "ww": lambda v: fit_power_law_ww(v),
        }
        for what, fit in fits.items():
            fit(xc)  # warm-up (CUDA context, kernels)
            cpu_t, cpu = best_time(lambda fit=fit, x=x: fit(x), repeat)
            gpu_t, gpu = best_time(lambda fit=fit, xc=xc: fit(xc), repeat)
            same = cpu.xmin == gpu.xmin and abs(cpu.alpha - gpu.alpha) < 1e-12
            print(
                f"{n:6d} {what:12s} {cpu_t * 1e3:9.2f} {gpu_t * 1e3:10.2f} "
                f"{cpu_t / gpu_t:8.1f}x {same}"
            )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-146", action="store_true", help="skip powerlaw 1.4.6 (slow)")
    parser.add_argument("--repeat", type=int, default=5, help="best-of repeats for htsr")
    parser.add_argument(
        "--gpu", action="store_true", help="only time htsr on numpy input vs CUDA tensors"
    )
    args = parser.parse_args()
    if args.gpu:
        return bench_gpu(args.repeat)

    import powerlaw
    from weightwatcher.WW_powerlaw import WWFit

    spectra = {
        f"n={n} alpha={a}": bulk_tail_spectrum(n, a, seed=n + int(10 * a))
        for n in (500, 2000, 4096)
        for a in (2.5, 4.0)
    }
    rows: list[tuple[str, str, float, float, float]] = []
    for name, x in spectra.items():
        ours_t, ours = best_time(lambda x=x: fit_power_law(x), args.repeat)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_t, ref = best_time(
                lambda x=x: powerlaw.Fit(x, parameter_ranges={"alpha": [1, 100]}, verbose=0), 1
            )
        rows.append((name, "untruncated vs powerlaw 2.0.0", ours_t, ref_t, ours.alpha - ref.alpha))

        ours_t, ours = best_time(lambda x=x: fit_power_law_ww(x), args.repeat)
        with contextlib.redirect_stdout(io.StringIO()):
            ref_t, ref = best_time(lambda x=x: WWFit(x[x > 1e-5]), args.repeat)
        rows.append((name, "ww vs WeightWatcher 0.7.7", ours_t, ref_t, ours.alpha - ref.alpha))

    if not args.no_146:
        with tempfile.TemporaryDirectory(prefix="htsr-pl146-") as tmp:
            refs = run_powerlaw(
                spectra, "truncated", powerlaw_146_dir=extract_powerlaw_146(Path(tmp))
            )
        for name, x in spectra.items():
            ours_t, ours = best_time(lambda x=x: fit_power_law(x, xmax=float(x.max())), args.repeat)
            ref = refs[name]
            rows.append(
                (
                    name,
                    "truncated vs powerlaw 1.4.6",
                    ours_t,
                    ref["seconds"],
                    ours.alpha - ref["alpha"],
                )
            )
    else:
        print("powerlaw 1.4.6 skipped (--no-146)")

    print(f"{'spectrum':18s} {'comparison':32s} {'htsr [ms]':>10s} {'ref [s]':>9s} "
          f"{'speed-up':>9s} {'d_alpha':>9s}")  # fmt: skip
    for name, what, ours_t, ref_t, d_alpha in rows:
        print(
            f"{name:18s} {what:32s} {ours_t * 1e3:10.2f} {ref_t:9.3f} "
            f"{ref_t / ours_t:8.0f}x {d_alpha:9.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
