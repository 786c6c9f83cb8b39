"""Rule esd_figures: for every model of a study, the ESD of its largest matrix with its
power-law fit (htsr.figures.commands), ``{model}.png`` and ``.pdf`` in one folder."""

from pathlib import Path

import pandas as pd

from htsr.figures.commands import esd_figure, largest_matrix
from htsr.figures.common import save_figure
from htsr.io import job_log
from htsr.studies.table import select_layers

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "esd_figures")
out = Path(smk.output[0])
out.mkdir(parents=True, exist_ok=True)
# one spectra table held at a time: rows reading the same checkpoint one after another (a
# study's rows on one file) read it once; a file that comes back later is read again
tables: dict[str, pd.DataFrame] = {}
for i, row in enumerate(smk.params.models, 1):
    model, path = row["model"], row["spectra"]
    if path not in tables:
        tables = {path: pd.read_parquet(path)}
    # the model's part of its checkpoint (a row's layers pattern), or all of it
    spectra = select_layers(tables[path], row["layers"])
    figure = esd_figure(spectra, model)
    save_figure(figure, [out / f"{model}.png", out / f"{model}.pdf"])
    log.info("%d/%d %s: %s", i, len(smk.params.models), model,
             largest_matrix(spectra)[["layer", "N", "M"]].to_dict())  # fmt: skip
