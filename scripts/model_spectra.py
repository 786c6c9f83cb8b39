"""Rules model_spectra, model_spectra_with_methods: the per-matrix spectra and power-law fits of
one weight file under the run's convention and, for the second, under each method its model
sets name (one table, column ``method``), every matrix decomposed once where they coincide
(:func:`htsr.spectral.metrics.analyze_methods`).

Writes htsr.analyze(..., keep_evals=True) as parquet (the eigenvalues as a list column),
atomically: a killed job leaves no file under the output name.
"""

import time

import pandas as pd
import torch

from htsr.io import atomic_output, job_log
from htsr.spectral.metrics import analyze_methods
from htsr.weights import zoo

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "model_spectra")
torch.set_num_threads(smk.threads)
row, p, start = smk.params.row, smk.params, time.perf_counter()
runs = {"main": dict(p.options), **{m: dict(o) for m, o in p.methods.items()}}
if "main" in p.methods:
    raise ValueError(f"{row['weights']}: a config method may not be called 'main'")
name = f"{row['weights']} ({row['model']})"
log.info("%s: loading %s", name, smk.input.weights)
model = zoo.load_weights(row, smk.input.weights)
log.info("%s: analysing (%s, %s, %s)", name, runs, p.device, p.dtype)
tables = analyze_methods(
    model,
    runs,
    device=p.device,
    dtype=p.dtype,
    include_embeddings=p.include_embeddings,
    keep_evals=True,
)
for method, table in tables.items():
    if table.empty:
        raise RuntimeError(f"{name}: no weight matrices found in {smk.input.weights} ({method})")
    log.info("%s: %s: %d matrices, status %s", name, method, len(table),
             table.status.value_counts().to_dict())  # fmt: skip
outputs = [(smk.output[0], tables.pop("main"))]
if "methods" in smk.output.keys():
    methods = [t.assign(method=m)[["method", *t.columns]] for m, t in tables.items()]
    outputs.append((smk.output.methods, pd.concat(methods, ignore_index=True) if methods
                    else pd.DataFrame(columns=["method"])))  # fmt: skip
for path, table in outputs:
    with atomic_output(path) as tmp:
        table.to_parquet(tmp, index=False)
log.info("%s: wrote %s in %.1f s", name, ", ".join(o for o, _ in outputs),
         time.perf_counter() - start)  # fmt: skip
