"""Run ``powerlaw.Fit`` of whichever powerlaw is importable on spectra stored in an ``.npz``.

Run in a subprocess by ``powerlaw_refs.run_powerlaw`` so that powerlaw 1.4.6 (extracted from the
vendored sdist and put first on ``PYTHONPATH``) and the installed powerlaw 2.0.0 never share a
process. Usage::

    python powerlaw_worker.py SPECTRA.npz OUT.json MODE

MODE is ``truncated`` (``Fit(x, xmax=max(x))``), ``untruncated``
(``Fit(x, parameter_ranges={'alpha': [1, 100]})``) or ``untruncated_default`` (``Fit(x)``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import warnings

import numpy as np


def _fit(powerlaw, x: np.ndarray, mode: str):  # noqa: ANN001, ANN202 - either powerlaw version
    if mode == "truncated":
        return powerlaw.Fit(x, xmax=float(np.max(x)), verbose=False)
    if mode == "untruncated":
        return powerlaw.Fit(x, parameter_ranges={"alpha": [1, 100]}, verbose=0)
    if mode == "untruncated_default":
        return powerlaw.Fit(x, verbose=0)
    raise ValueError(f"unknown mode {mode!r}")


def main(argv: list[str]) -> int:
    spectra_path, out_path, mode = argv[1:4]
    warnings.simplefilter("ignore")
    import powerlaw

    results: dict[str, dict[str, float | int | bool]] = {}
    with np.load(spectra_path) as spectra:
        for name in spectra.files:
            x = np.asarray(spectra[name], dtype=np.float64)
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()), np.errstate(all="ignore"):
                fit = _fit(powerlaw, x, mode)
            seconds = time.perf_counter() - start
            results[name] = {
                "alpha": float(fit.alpha),
                "xmin": float(fit.xmin),
                "D": float(fit.D),
                "n_tail": int(fit.n_tail),
                "sigma": float(fit.sigma),
                "noise_flag": bool(fit.noise_flag),
                "seconds": seconds,
            }
    payload = {"module_file": os.path.abspath(powerlaw.__file__), "results": results}
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
