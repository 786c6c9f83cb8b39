"""Rule paper_comparison: the papers' printed cells beside ours (htsr.studies.paper), the figure
of ours against printed, and the 2019 set's alpha_hat with exact and TruncatedSVD eigenvalues."""

import pandas as pd
import yaml

from htsr.figures.common import save_figure
from htsr.figures.studies import paper_comparison_figure
from htsr.io import job_log, write_tsv
from htsr.studies import paper

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "paper_comparison")
inp = smk.input


def read(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


printed = pd.read_csv(inp.printed, sep="\t", dtype=str, keep_default_na=False)
specs = paper.parse_spec(yaml.safe_load(open(inp.spec, encoding="utf-8")))
notes = pd.read_csv(inp.notes, sep="\t", dtype=str, keep_default_na=False)
models = {"main": read(inp.models)}
trends = {"main": read(inp.trends)}
for method in smk.params.methods:
    models[method] = read(inp[f"models_{method}"])
    trends[method] = read(inp[f"trends_{method}"])
table = paper.compare(printed, specs, models, trends, notes)
write_tsv(smk.output.table, table)
log.info(
    "%d printed cells compared (%d within rounding) from %d tables",
    len(table), int(table["within_rounding"].sum()), table["table"].nunique(),
)  # fmt: skip
# alpha_hat of every model run with the tsvd method beside the same models under the run's
# convention (the 2019 set both ways, as the issue asks)
frames = []
for method in smk.params.same_convention_methods:
    for set_name in models[method]["set"].unique():
        frames.append(
            paper.method_differences(
                models["main"], models[method], metric="alpha_weighted",
                names=("main", "method"), set_name=set_name,
            ).assign(set=set_name, main=smk.params.convention, method=method)
        )  # fmt: skip
diff = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
write_tsv(smk.output.methods, diff)
save_figure(paper_comparison_figure(table), [smk.output.png, smk.output.pdf])
