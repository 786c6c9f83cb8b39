"""Rules aggregate, method_aggregate: one row of model-level metrics per model, and the trends
per (model set, family)."""

import pandas as pd

from htsr.metrics import SUMMARY_INPUTS, summarize
from htsr.provenance import job_log, write_tsv
from htsr.trends import family_trends, models_table

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "aggregate")
rows = pd.DataFrame(smk.params.models)
columns = list(SUMMARY_INPUTS)
tables = {path: pd.read_parquet(path, columns=columns) for path in dict.fromkeys(smk.input.spectra)}
spectra = {
    model: tables[path] for model, path in zip(rows["model"], smk.input.spectra, strict=True)
}
convention = smk.params.convention
models = models_table(rows, spectra, lambda table: summarize(table, convention=convention))
log.info("%d models, %d without any fitted matrix", len(models), (models.n_matrices == 0).sum())
trends = family_trends(models)
log.info("trends: %s", trends.status.value_counts().to_dict())
write_tsv(smk.output.models, models)
write_tsv(smk.output.trends, trends)
