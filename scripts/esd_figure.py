"""Rule esd_figure: the ESD of a model's largest matrix with its power-law fit
(htsr.figures.commands)."""

import pandas as pd

from htsr.figures.commands import esd_figure, largest_matrix
from htsr.figures.common import save_figure
from htsr.io import job_log
from htsr.studies.table import select_layers

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "esd_figure")
# the model's part of its checkpoint (a row's layers pattern), or all of it
spectra = select_layers(pd.read_parquet(smk.input.spectra[0]), smk.params.layers)
figure = esd_figure(spectra, smk.wildcards.model)
save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%s: %s", smk.wildcards.model, largest_matrix(spectra)[["layer", "N", "M"]].to_dict())
