"""Rules aggregate, method_aggregate: one row of model-level metrics per model, and the trends
per (model set, family)."""

import pandas as pd

from htsr.metrics import SUMMARY_INPUTS, summarize
from htsr.predict import leave_one_out
from htsr.provenance import job_log, write_tsv
from htsr.trends import METRICS, family_trends, models_table

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
# what `htsr predict` needs to analyse a new checkpoint the way this table was made
models.insert(models.columns.get_loc("n_matrices") + 1, "convention", convention)
models.insert(models.columns.get_loc("convention") + 1, "evals", smk.params.evals)
log.info("%d models, %d without any fitted matrix", len(models), (models.n_matrices == 0).sum())
trends = family_trends(models)
log.info("trends: %s", trends.status.value_counts().to_dict())
write_tsv(smk.output.models, models)
write_tsv(smk.output.trends, trends)
# every model predicted from the others of its family, for each metric: the practitioner's test
loo = pd.concat([leave_one_out(models, metric=m) for m in METRICS], ignore_index=True)
write_tsv(smk.output.loo, loo)
log.info("leave-one-out: %d predictions, %.0f%% inside their 95%% interval",
         len(loo), 100 * loo["inside"].mean() if len(loo) else float("nan"))  # fmt: skip
