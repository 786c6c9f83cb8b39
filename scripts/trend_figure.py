"""Rules vgg_figure, resnet_figure, families_figure: accuracy trends (htsr.plots)."""

import pandas as pd

from htsr import plots
from htsr.provenance import job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], f"{smk.params.figure}_figure")
models = pd.read_csv(smk.input.models, sep="\t")
figure = getattr(plots, f"{smk.params.figure}_figure")(models)
plots.save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%d models drawn to %s and %s", len(models), smk.output.png, smk.output.pdf)
