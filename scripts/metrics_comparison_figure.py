"""Rule metrics_comparison_figure: R² of each metric per family, for the family's headline
quality (htsr.figures.trends)."""

import pandas as pd

from htsr.figures.common import save_figure
from htsr.figures.trends import metrics_comparison_figure
from htsr.io import job_log
from htsr.studies.study import headline_functions

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "metrics_comparison_figure")
study = smk.params.study
headline, _ = headline_functions(study)
trends = pd.read_csv(smk.input.trends, sep="\t", keep_default_na=False, na_values=[""])
figure = metrics_comparison_figure(
    trends, headline=lambda family: headline(family)[0], families=study["families"]
)
save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%d fitted family/quality/metric triples", (trends.status == "ok").sum())
