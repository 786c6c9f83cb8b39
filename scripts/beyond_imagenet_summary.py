"""Rule beyond_imagenet_summary: every study's trends side by side with a verdict per family,
quality and metric (htsr.studies.summary), each trained study's pooled trend over its families,
and the figure of τ per family for α̂ and its headline quality
(htsr.figures.studies.answer_figure)."""

import pandas as pd

from htsr.figures.common import save_figure
from htsr.figures.studies import answer_figure
from htsr.io import atomic_output, job_log, write_tsv
from htsr.studies.study import headline_functions
from htsr.studies.summary import POOLED, answer_table, answer_text, pooled_trends
from htsr.studies.table import Quality

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "beyond_imagenet_summary")
studies = smk.params.studies
trends = {
    name: pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    for name, path in zip(studies, smk.input.trends, strict=True)
}
# the qualities the answer judges (a rate such as bpp is regressed, not judged)
better = {(name, q["name"]): q["higher_is_better"] for name in studies
          for q in studies[name]["quality"] if q.get("answer", True)}  # fmt: skip
non_cnn = {name: spec.get("non_cnn_families") for name, spec in studies.items()}
models = {
    name: pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    for name, path in zip(studies, smk.input.models, strict=True)
}
# a trained study's families pooled: does the trend across families differ from within them?
for name, spec in studies.items():
    if spec.get("trained") and models[name]["family"].nunique() > 1:
        quality = [Quality(**q) for q in spec["quality"]]
        pooled = pooled_trends(models[name], quality, n_boot=smk.params.tau_bootstrap)
        trends[name] = pd.concat([trends[name], pooled], ignore_index=True)
table = answer_table(trends, better, non_cnn=non_cnn, models=models)
write_tsv(smk.output.table, table)
headline = {name: headline_functions(spec)[0] for name, spec in studies.items()}
pairs = zip(table["study"], table["family"], table["quality"], strict=True)
headlines = [q == headline[s](f if f != POOLED else "")[0] for s, f, q in pairs]
# each family's headline quality (a boolean Series: an empty list would select no columns)
shown = table[pd.Series(headlines, index=table.index, dtype=bool)]
# the figure: each family's declared layers (the table has the rest)
drawn = shown[(shown["layers_choice"] == "declared") & ~shown["pooled"].astype(bool)]
save_figure(answer_figure(drawn), [smk.output.png, smk.output.pdf])
with atomic_output(smk.output.text) as tmp:
    tmp.write_text(answer_text(shown), encoding="utf-8")
log.info("%d rows: %s", len(table), table["verdict"].value_counts().to_dict())
