# htsr: heavy-tailed self-regularization metrics of pretrained models, regressed on their
# published quality, one study at a time (config studies; outputs in results/{study}/). By
# default the ImageNet study of the two papers' own models and every printed number they can
# recompute (Martin & Mahoney, SDM 2020; Nat. Commun. 2021).
# `snakemake --cores N` runs everything (docs/pipeline.md);
# `snakemake --report results/report.html` then builds the report.
import re

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# only the studies, models and weight files of the selection, the weight file formats the
# sources write, the selected model sets and families, and the configured methods
wildcard_constraints:
    study="|".join(re.escape(name) for name in STUDIES) or "^$",
    model="|".join(re.escape(model) for model in MODELS.index),
    weights="|".join(re.escape(weights) for weights in WEIGHTS.index),
    ext="pth|safetensors|pth\\.zip|hf\\.json|pth\\.tar|pt|bin|ckpt|zip",
    set="|".join(re.escape(name) for name in SETS),
    family="|".join(re.escape(name) for name in dict.fromkeys(MODELS["family"])),
    method="|".join(re.escape(name) for name in METHODS) or "^$",
    comparison="|".join(re.escape(name) for name in COMPARISONS) or "^$",
    run="|".join(re.escape(r.name) for c in COMPARISONS.values() for r in c.runs)
    or "^$",


include: "workflow/rules/download.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/comparisons.smk"
include: "workflow/rules/spectra.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/provenance.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
    localrule: True
