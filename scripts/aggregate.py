"""Rule aggregate: one row of model-level metrics per model, and the per-family trends."""

import pandas as pd

from htsr.metrics import SUMMARY_INPUTS, summarize
from htsr.provenance import job_log, write_tsv
from htsr.trends import family_trends, models_table

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "aggregate")
rows = pd.DataFrame(smk.params.models)
columns = list(SUMMARY_INPUTS)
spectra = {
    model: pd.read_parquet(path, columns=columns)
    for model, path in zip(rows["model"], smk.input.spectra, strict=True)
}
models = models_table(rows, spectra, summarize)
log.info("%d models, %d without any fitted matrix", len(models), (models.n_matrices == 0).sum())
trends = family_trends(models)
log.info("trends: %s", trends.status.value_counts().to_dict())
write_tsv(smk.output.models, models)
write_tsv(smk.output.trends, trends)
