"""Rule comparison_figure: every seed's paired difference with the mean and its 95 % interval,
read from the saved differences.tsv (htsr.figures.comparisons.differences_figure)."""

import pandas as pd

from htsr.figures.common import save_figure
from htsr.figures.comparisons import differences_figure

smk = snakemake  # noqa: F821 - injected by Snakemake
spec = smk.params.spec
diff = pd.read_csv(smk.input[0], sep="\t", keep_default_na=False, na_values=[""])
fig = differences_figure(diff, title=spec["title"], quality_label=spec["quality_label"])
save_figure(fig, smk.output)
