"""Rule trend_figure: one figure of a study's figure table, from the saved models and trends
tables (htsr.figures.trends.trend_figure; the fits are read, not redone)."""

import pandas as pd

from htsr.figures.common import save_figure
from htsr.figures.trends import trend_figure
from htsr.io import job_log
from htsr.studies.table import Quality

smk = snakemake  # noqa: F821 - injected by Snakemake
spec = smk.params.spec
log = job_log(smk.log[0], f"trend_figure {spec['figure']}")
quality = next(Quality(**q) for q in smk.params.study["quality"] if q["name"] == spec["quality"])
models = pd.read_csv(smk.input.models, sep="\t", keep_default_na=False, na_values=[""])
trends = pd.read_csv(smk.input.trends, sep="\t", keep_default_na=False, na_values=[""])
figure = trend_figure(
    models[models["set"] == spec["set"]],
    trends,
    families=spec["families"],
    metrics=spec["metrics"],
    title=spec["title"],
    set_name=spec["set"],
    quality=quality.name,
    quality_label=quality.axis_label,
    transform=quality.transform,
)
save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%s (set %s) drawn to %s and %s", spec["figure"], spec["set"], *smk.output)
