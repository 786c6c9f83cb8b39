"""Rule families_figure: α̂ against top-1, one panel per (model set, family) with three or more
models, the fits read from the saved trends table (htsr.plots.families_figure)."""

import pandas as pd

from htsr import plots
from htsr.provenance import job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "families_figure")
models = pd.read_csv(smk.input.models, sep="\t", keep_default_na=False, na_values=[""])
trends = pd.read_csv(smk.input.trends, sep="\t", keep_default_na=False, na_values=[""])
figure = plots.families_figure(models, trends=trends)
plots.save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%d models drawn to %s and %s", len(models), smk.output.png, smk.output.pdf)
