"""Rules alpha_histogram, set_alpha_histogram: α of every fitted matrix of every model (of one
model set), each weight file counted once (htsr.figures.spectra)."""

import pandas as pd

from htsr.figures.common import save_figure
from htsr.figures.spectra import alpha_histogram_figure
from htsr.io import job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "alpha_histogram")
tables = [pd.read_parquet(path, columns=["alpha", "status"]) for path in smk.input.spectra]
alphas = pd.concat(tables, ignore_index=True).query("status == 'ok'")["alpha"]
figure = alpha_histogram_figure(
    alphas.to_numpy(float), n_models=len(tables), title=smk.params.title
)
save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%d alphas from %d models", len(alphas), len(tables))
