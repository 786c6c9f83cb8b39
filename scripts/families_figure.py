"""Rule families_figure: a study's headline metric (α̂) against each family's headline quality,
one panel per family with three or more models, the fits read from the saved trends table
(htsr.figures.trends.families_figure)."""

import pandas as pd

from htsr.figures.common import save_figure
from htsr.figures.trends import families_figure
from htsr.io import job_log
from htsr.studies.study import headline_functions
from htsr.studies.trends import with_more_families

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "families_figure")
study = smk.params.study
headline, _ = headline_functions(study)
models = pd.read_csv(smk.input.models, sep="\t", keep_default_na=False, na_values=[""])
models = with_more_families(models, study["more_families"])
trends = pd.read_csv(smk.input.trends, sep="\t", keep_default_na=False, na_values=[""])
figure = families_figure(
    models, trends=trends, headline=headline, families=study["families"],
    group_by=study["group_by"],
    title=f"{study['name']}: α̂ against the headline quality, per family",
)  # fmt: skip
save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%d models drawn to %s and %s", len(models), smk.output.png, smk.output.pdf)
