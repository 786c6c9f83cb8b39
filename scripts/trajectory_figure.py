"""Rule trajectory_figure: a training trajectory (one model's checkpoints at several steps):
the headline metric and quality against step, and α per layer against step
(htsr.figures.experiments)."""

import pandas as pd

from htsr.figures.common import save_figure
from htsr.figures.experiments import trajectory_figure
from htsr.io import job_log
from htsr.studies.study import headline_functions

smk = snakemake  # noqa: F821 - injected by Snakemake
family = smk.wildcards.family
log = job_log(smk.log[0], f"trajectory_figure {family}")
headline, _ = headline_functions(smk.params.study)
models = pd.read_csv(smk.input.models, sep="\t", keep_default_na=False, na_values=[""])
trends = pd.read_csv(smk.input.trends, sep="\t", keep_default_na=False, na_values=[""])
quality = headline(family)
hit = trends[(trends["family"] == family) & (trends["quality"] == quality[0])
             & (trends["metric"] == "alpha_weighted")]  # fmt: skip
columns = ["layer", "alpha", "status"]
spectra = {
    model: pd.read_parquet(path, columns=columns)
    for model, path in zip(smk.params.models, smk.input.spectra, strict=True)
}
figure = trajectory_figure(
    models, spectra, family=family, quality=quality, trend=hit.iloc[0] if len(hit) else None
)
save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%s: %d checkpoints drawn", family, len(spectra))
