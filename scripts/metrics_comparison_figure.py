"""Rule metrics_comparison_figure: R² of each metric per family (htsr.plots)."""

import pandas as pd

from htsr import plots
from htsr.provenance import job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "metrics_comparison_figure")
trends = pd.read_csv(smk.input.trends, sep="\t")
figure = plots.metrics_comparison_figure(trends)
plots.save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%d fitted family/metric pairs drawn", (trends.status == "ok").sum())
