"""Time htsr's WeightWatcher diagnostics against WeightWatcher 0.7.7's, in one process.

(a) ``htsr.spectral.mp.mp_fit`` against ``weightwatcher.RMT_Util.fit_density_with_range`` (the
    core of WW's ``mp_fit``: WW re-estimates the kernel density for every σ of its grid, htsr
    once) on random N × M Gaussian matrices with a few planted spikes; the σ both find is
    printed (equal to round-off).
(b) ``htsr.analyze(model, "ww", randomize=True, mp_fit=True, detX=True, vectors=True)`` against
    ``WeightWatcher(model).analyze(...)`` with the same options on a random-init MLP.

Every time is the best of ``--repeat`` runs (default 3). Usage::

    python benchmarks/bench_diagnostics.py [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from torch import nn


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import weightwatcher as ww
    from weightwatcher import RMT_Util

    import htsr
    from htsr.spectral.mp import mp_fit

    logging.getLogger("weightwatcher").setLevel(logging.CRITICAL)
    rng = np.random.default_rng(0)
    print("mp_fit           N x M     htsr s    WW s   WW/htsr  sigma htsr / WW")
    for n, m in ((400, 100), (1000, 500), (2000, 1000)):
        w = rng.normal(size=(n, m)) / np.sqrt(n)
        w[:3, :3] += 3.0
        ev = np.sort(np.linalg.eigvalsh(w.T @ w))
        t_h, fit = _best(lambda ev=ev, n=n, m=m: mp_fit(ev, n, m), args.repeat)
        scaled = ev * len(ev) / ev.sum()
        t_w, (s_w, _) = _best(
            lambda s=scaled, q=n / m: RMT_Util.fit_density_with_range(s, q, bw=0.1), args.repeat
        )
        print(f"mp_fit   {n:5d} x {m:4d}  {t_h:8.3f} {t_w:7.3f} {t_w / t_h:8.1f}  "
              f"{fit.sigma_mp:.12f} / {s_w:.12f}")  # fmt: skip
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 10))
    kw = dict(randomize=True, mp_fit=True, detX=True, vectors=True)
    t_h, _ = _best(lambda: htsr.analyze(model, "ww", dtype="float64", **kw), args.repeat)
    t_w, _ = _best(lambda: ww.WeightWatcher(model=model).analyze(**kw), args.repeat)
    print(f"analyze MLP 784-512-256-10, all four diagnostics: htsr {t_h:.2f} s, WW {t_w:.2f} s,"
          f" WW/htsr {t_w / t_h:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
