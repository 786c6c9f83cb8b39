"""Every analysed matrix of the real weights (tests/real_weights.py) against the powerlaw package.

For each model, htsr's table (``htsr.analyze``, paper convention, float64) is compared matrix by
matrix with references computed from the tensors as torch/safetensors read them: numpy's SVD
for the eigenvalues, then

* ``powerlaw.Fit(evals, xmax=max(evals))`` of powerlaw 1.4.6 (vendored sdist), the truncated fit
  the paper convention reproduces: against the table's α and xmin;
* ``powerlaw.Fit(evals, parameter_ranges={'alpha': [1, 100]})`` of powerlaw 2.0.0 (installed):
  against ``htsr.spectral.fit.fit_power_law(evals)``, the untruncated fit.

Prints per model the number of matrices and the worst differences. About a second per matrix
per powerlaw version (pure-Python fits): tests/test_real_weights.py runs three spot checks, this
script all of them. Usage (from the repository root)::

    PYTHONPATH=src python3 tests/reference/real_weights_vs_powerlaw.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from powerlaw_refs import extract_powerlaw_146, run_powerlaw  # noqa: E402
from real_weights import PINNED, reference_matrices, weight_file  # noqa: E402

import htsr  # noqa: E402
from htsr.spectral.fit import fit_power_law  # noqa: E402


def main() -> int:
    total, worst = 0, {"alpha_146": 0.0, "xmin_146_rel": 0.0, "alpha_200": 0.0, "evals_rel": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        pl146 = extract_powerlaw_146(Path(tmp))
        for model, pin in PINNED.items():
            path = weight_file(model)
            source = path.parent if pin.format == "safetensors" else path
            table = htsr.analyze(source, dtype="float64", keep_evals=True)
            ok = table[table["status"] == "ok"]
            ref = reference_matrices(model)
            spectra = {}
            for r in ok.itertuples():
                w = ref[(r.layer, r.slice)]
                evals = np.sort(np.linalg.svd(w, compute_uv=False) ** 2)
                spectra[f"{r.layer}|{r.slice}"] = evals
                rel = np.max(np.abs(np.asarray(r.evals) - evals)) / evals[-1]
                worst["evals_rel"] = max(worst["evals_rel"], float(rel))
            trunc = run_powerlaw(spectra, "truncated", powerlaw_146_dir=pl146)
            untrunc = run_powerlaw(spectra, "untruncated")
            d146, dx, d200 = 0.0, 0.0, 0.0
            for r in ok.itertuples():
                key = f"{r.layer}|{r.slice}"
                d146 = max(d146, abs(r.alpha - trunc[key]["alpha"]))
                dx = max(dx, abs(r.xmin - trunc[key]["xmin"]) / trunc[key]["xmin"])
                d200 = max(d200, abs(fit_power_law(spectra[key]).alpha - untrunc[key]["alpha"]))
            worst["alpha_146"] = max(worst["alpha_146"], d146)
            worst["xmin_146_rel"] = max(worst["xmin_146_rel"], dx)
            worst["alpha_200"] = max(worst["alpha_200"], d200)
            total += len(ok)
            print(
                f"{model}: {len(ok)} matrices; max |dalpha| truncated vs powerlaw 1.4.6"
                f" {d146:.3g} (xmin rel {dx:.3g}); untruncated vs powerlaw 2.0.0 {d200:.3g}"
            )
    print(
        f"all: {total} matrices; worst |dalpha| vs powerlaw 1.4.6 {worst['alpha_146']:.3g},"
        f" xmin rel {worst['xmin_146_rel']:.3g}; vs powerlaw 2.0.0 {worst['alpha_200']:.3g};"
        f" eigenvalues vs numpy SVD, max |d|/lambda_max {worst['evals_rel']:.3g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
