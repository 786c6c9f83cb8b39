"""Rule comparison_allocation: AlphaPruning's allocation on pinned pretrained weights and its
distance from uniform (htsr.guide.runs.allocation_table), tables and figure."""

from htsr.figures.common import save_figure
from htsr.figures.comparisons import allocation_figure
from htsr.guide import runs
from htsr.io import job_log, write_tsv

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "comparison_allocation")
spec = smk.params.spec
layers, summary = runs.allocation_table(spec["weights"], spec["sparsities"],
                                        epsilon=spec["epsilon"])  # fmt: skip
summary.insert(0, "comparison", smk.wildcards.comparison)
write_tsv(smk.output.layers, layers)
write_tsv(smk.output.summary, summary)
save_figure(allocation_figure(layers, summary, title=spec["title"]),
            [smk.output.png, smk.output.pdf])  # fmt: skip
for rec in summary.itertuples():
    log.info("%s at %.2f: %.3f-%.3f, mean |s - S| %.4f, %d layer(s) >= 1", rec.model, rec.target,
             rec.sparsity_min, rec.sparsity_max, rec.distance_mean, rec.over_one)  # fmt: skip
