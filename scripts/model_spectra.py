"""Rule model_spectra: the per-matrix spectra and power-law fits of one pretrained model.

Writes htsr.analyze(..., keep_evals=True) as parquet (the eigenvalues as a list column),
atomically: a killed job leaves no file under the output name.
"""

import time

import torch

import htsr
from htsr import zoo
from htsr.provenance import atomic_output, job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "model_spectra")
torch.set_num_threads(smk.threads)
row, p, start = smk.params.row, smk.params, time.perf_counter()
log.info("%s: loading %s", row["model"], smk.input.weights)
model = zoo.load_model(row, smk.input.weights)
log.info("%s: analysing (%s convention, %s, %s)", row["model"], p.convention, p.device, p.dtype)
table = htsr.analyze(
    model,
    convention=p.convention,
    device=p.device,
    dtype=p.dtype,
    include_embeddings=p.include_embeddings,
    keep_evals=True,
)
if table.empty:
    raise RuntimeError(f"{row['model']}: no weight matrices found in {smk.input.weights}")
log.info(
    "%s: %d matrices, status %s", row["model"], len(table), table.status.value_counts().to_dict()
)
with atomic_output(smk.output[0]) as tmp:
    table.to_parquet(tmp, index=False)
log.info("%s: wrote %s in %.1f s", row["model"], smk.output[0], time.perf_counter() - start)
