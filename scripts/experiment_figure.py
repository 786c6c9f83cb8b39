"""Rule experiment_figure: one family of a controlled experiment, its training curves and its
metric and quality by the varied hyperparameter with the seeds' spread
(htsr.figures.experiments)."""

import pandas as pd

from htsr.experiments.grids import read_results
from htsr.figures.common import save_figure
from htsr.figures.experiments import experiment_figure
from htsr.io import job_log
from htsr.studies.study import headline_functions

smk = snakemake  # noqa: F821 - injected by Snakemake
family = smk.wildcards.family
log = job_log(smk.log[0], f"experiment_figure {family}")
headline, _ = headline_functions(smk.params.study)
models = pd.read_csv(smk.input.models, sep="\t", keep_default_na=False, na_values=[""])
trends = pd.read_csv(smk.input.trends, sep="\t", keep_default_na=False, na_values=[""])
curves = {r["model"]: r["curve"] for r in read_results(smk.input.training).values()}
quality = headline(family)
hit = trends[(trends["family"] == family) & (trends["quality"] == quality[0])
             & (trends["metric"] == "alpha_weighted")]  # fmt: skip
figure = experiment_figure(models, curves, family=family, quality=quality,
                                 trend=hit.iloc[0] if len(hit) else None)  # fmt: skip
save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%s: %d models drawn", family, len(curves))
