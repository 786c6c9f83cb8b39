"""Regenerate ``powerlaw_refs.json``: powerlaw 2.0.0 and 1.4.6 fits of every case in CASES.

Run from the repository root (takes a few minutes on 2 cores; powerlaw 1.4.6 runs one scipy
``fmin`` per candidate xmin)::

    python tests/reference/make_powerlaw_refs.py

The spectra come from fixed seeds (``powerlaw_refs.make_spectrum``); they are stored in
``powerlaw_refs_spectra.npz`` and their sha256 with the results, so the tests fit the very numbers
the references were computed from (a spectrum regenerated on another processor may differ in its
last bits).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from powerlaw_refs import (  # noqa: E402
    CASES,
    REFS_JSON,
    SPECTRA_NPZ,
    extract_powerlaw_146,
    make_spectrum,
    run_powerlaw,
    spectrum_digest,
)


def main() -> int:
    spectra = {case.name: make_spectrum(case) for case in CASES}
    print(f"{len(spectra)} spectra; running powerlaw 2.0.0 (untruncated) ...", flush=True)
    untruncated = run_powerlaw(spectra, "untruncated")
    print("running powerlaw 1.4.6 (truncated, xmax=max) ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="htsr-pl146-") as tmp:
        pl146 = extract_powerlaw_146(Path(tmp))
        truncated = run_powerlaw(spectra, "truncated", powerlaw_146_dir=pl146)
    cases = {}
    for case in CASES:
        x = spectra[case.name]
        cases[case.name] = {
            "kind": case.kind,
            "params": case.params,
            "n": int(x.size),
            "digest": spectrum_digest(x),
            "powerlaw_2_0_0_untruncated": untruncated[case.name],
            "powerlaw_1_4_6_truncated": truncated[case.name],
        }
        u, t = untruncated[case.name], truncated[case.name]
        print(
            f"{case.name:32s} n={x.size:5d}  2.0: a={u['alpha']:.4f} ({u['seconds']:.1f}s)"
            f"  1.4.6: a={t['alpha']:.4f} ({t['seconds']:.1f}s)"
        )
    payload = {
        "generator": "tests/reference/make_powerlaw_refs.py",
        "versions": {
            "powerlaw_untruncated": version("powerlaw"),
            "powerlaw_truncated": "1.4.6 (vendored sdist tests/reference/powerlaw-1.4.6.tar.gz)",
            "numpy": np.__version__,
            "scipy": version("scipy"),
            "torch": version("torch"),
            "torchvision": version("torchvision"),
            "python": platform.python_version(),
        },
        "calls": {
            "powerlaw_2_0_0_untruncated": "powerlaw.Fit(x, parameter_ranges={'alpha': [1, 100]})",
            "powerlaw_1_4_6_truncated": "powerlaw.Fit(x, xmax=max(x))",
        },
        "cases": cases,
    }
    tmp_npz = SPECTRA_NPZ.with_suffix(".tmp.npz")
    np.savez_compressed(tmp_npz, **spectra)
    os.replace(tmp_npz, SPECTRA_NPZ)
    tmp_path = REFS_JSON.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    os.replace(tmp_path, REFS_JSON)
    print(f"wrote {REFS_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
