"""Rules aggregate, method_aggregate: one row of model-level metrics per model of a study, and
the trends of each of its quality metrics per group (set and/or family)."""

import pandas as pd

from htsr.experiments.grids import quality_from_results, read_results
from htsr.io import job_log, write_tsv
from htsr.studies.predict import leave_one_out
from htsr.studies.table import Quality
from htsr.studies.trends import (
    ALL_LAYER_METRICS,
    BASE_ID_COLUMNS,
    METRICS,
    SUMMARY_INPUTS,
    family_trends,
    models_table,
    summarize,
    with_more_families,
)  # fmt: skip

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "aggregate")
rows = pd.DataFrame(smk.params.models)
quality = [Quality(**q) for q in smk.params.quality]
# trained models (controlled experiments): their quality is what training measured
results = read_results(smk.input.training)
if results:
    rows = quality_from_results(rows, results, [q.name for q in quality])
columns = list(dict.fromkeys(["layer", *SUMMARY_INPUTS]))
method = smk.params.method


def read_spectra(path):
    """One model's spectra: the main table, or a method's rows of its method_spectra table."""
    if method == "main":
        return pd.read_parquet(path, columns=columns)
    table = pd.read_parquet(path, columns=["method", *columns])
    rows = table[table["method"] == method].drop(columns="method").reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"{path}: no rows of method {method!r} (it has {set(table['method'])})")
    return rows


tables = {path: read_spectra(path) for path in dict.fromkeys(smk.input.spectra)}
spectra = {
    model: tables[path] for model, path in zip(rows["model"], smk.input.spectra, strict=True)
}
convention = smk.params.convention
more = smk.params.more_families
models = models_table(
    rows, spectra, lambda table: summarize(table, convention=convention),
    quality=[q.name for q in quality],
    # the further columns the rule's model rows carry (weights, step, layers, more families...)
    extra=[c for c in rows.columns if c not in {*BASE_ID_COLUMNS, *(q.name for q in quality)}],
)  # fmt: skip
# a model also joins the families its more_families columns name (e.g. a codec's quality level)
families = with_more_families(models, more)
# what `htsr predict` needs to analyse a new checkpoint the way this table was made
models.insert(models.columns.get_loc("n_matrices") + 1, "convention", convention)
models.insert(models.columns.get_loc("convention") + 1, "evals", smk.params.evals)
log.info("%d models, %d without any fitted matrix", len(models), (models.n_matrices == 0).sum())
# where rows keep a part of their checkpoint (layers), the same trends over every layer too
parts = "layers" in rows.columns and (rows["layers"].fillna("").astype(str) != "").any()
trends = family_trends(
    families, quality=quality, group_by=smk.params.group_by, n_boot=smk.params.tau_bootstrap,
    metrics=[*METRICS, *(ALL_LAYER_METRICS if parts else ())],
)  # fmt: skip
if parts:  # a family without a part: its every-layer trends are its trends; not repeated
    patterned = set(families.loc[families["layers"].fillna("").astype(str) != "", "family"])
    repeated = trends["metric"].isin(ALL_LAYER_METRICS) & ~trends["family"].isin(patterned)
    trends = trends[~repeated].reset_index(drop=True)
log.info("trends: %s", trends.status.value_counts().to_dict())
write_tsv(smk.output.models, models)
write_tsv(smk.output.trends, trends)
# every model predicted from the others of its family, for each quality and metric
loo = pd.concat(
    [
        leave_one_out(
            families, metric=m, quality=q.name, group_by=smk.params.group_by, transform=q.transform
        )
        for q in quality
        for m in METRICS
        if families[q.name].notna().sum() >= 4
    ]
    or [pd.DataFrame()],
    ignore_index=True,
)
write_tsv(smk.output.loo, loo)
log.info("leave-one-out: %d predictions, %.0f%% inside their 95%% interval",
         len(loo), 100 * loo["inside"].mean() if len(loo) else float("nan"))  # fmt: skip
