"""Rule metrics_comparison_figure: R² of each metric per family, for the family's headline
quality (htsr.plots)."""

import pandas as pd

from htsr import plots
from htsr.provenance import job_log
from htsr.studies import headline_functions

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "metrics_comparison_figure")
study = smk.params.study
headline, _ = headline_functions(study)
trends = pd.read_csv(smk.input.trends, sep="\t", keep_default_na=False, na_values=[""])
figure = plots.metrics_comparison_figure(
    trends, headline=lambda family: headline(family)[0], families=study["families"]
)
plots.save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%d fitted family/quality/metric triples", (trends.status == "ok").sum())
