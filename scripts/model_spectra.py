"""Rules model_spectra, method_spectra: the per-matrix spectra and power-law fits of one weight
file, under the run's convention or one of the config's methods.

Writes htsr.analyze(..., keep_evals=True) as parquet (the eigenvalues as a list column),
atomically: a killed job leaves no file under the output name.
"""

import time

import torch

import htsr
from htsr.io import atomic_output, job_log
from htsr.weights import zoo

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "model_spectra")
torch.set_num_threads(smk.threads)
row, p, start = smk.params.row, smk.params, time.perf_counter()
options = dict(p.options)
name = f"{row['weights']} ({row['model']})"
log.info("%s: loading %s", name, smk.input.weights)
model = zoo.load_weights(row, smk.input.weights)
log.info("%s: analysing (%s, %s, %s)", name, options, p.device, p.dtype)
table = htsr.analyze(
    model,
    convention=options["convention"],
    evals=options["evals"],
    device=p.device,
    dtype=p.dtype,
    include_embeddings=p.include_embeddings,
    keep_evals=True,
)
if table.empty:
    raise RuntimeError(f"{name}: no weight matrices found in {smk.input.weights}")
log.info("%s: %d matrices, status %s", name, len(table), table.status.value_counts().to_dict())
with atomic_output(smk.output[0]) as tmp:
    table.to_parquet(tmp, index=False)
log.info("%s: wrote %s in %.1f s", name, smk.output[0], time.perf_counter() - start)
