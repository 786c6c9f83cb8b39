# The controlled comparisons of the alpha-guided methods (studies with a `comparison`,
# htsr.guide.compare; docs/guide.md): one training job per arm x seed (and per pre-training),
# pruning of each trained network, then the paired differences and their figure.


def comparison_run(comparison, run):
    """The plan's run ``run`` of ``comparison`` (htsr.guide.compare.Run)."""
    for r in COMPARISONS[comparison].runs:
        if r.name == run:
            return r
    raise ValueError(f"comparison {comparison}: no run {run!r}")


def comparison_dataset(wildcards):
    return f"resources/datasets/{dataset_key(COMPARISONS[wildcards.comparison].dataset)}.pt"


def comparison_run_inputs(wildcards):
    """The prepared dataset, and a fine-tuning run's pre-trained checkpoint."""
    run = comparison_run(wildcards.comparison, wildcards.run)
    out = {"dataset": comparison_dataset(wildcards)}
    if run.init:
        out["init"] = f"resources/comparisons/{wildcards.comparison}/{run.init}.pt"
    return out


def comparison_records(wildcards):
    """Every scored record file of a comparison: each run's (pruning: each pruned network's)."""
    c = COMPARISONS[wildcards.comparison]
    if c.kind == "pruning":
        return [f"results/{c.name}/pruned/{r.name}.json" for r in c.pruned]
    return [f"results/{c.name}/runs/{r.name}.json" for r in c.runs]


def comparison_spec(name):
    """What the table and figure rules need of a comparison, as plain data."""
    c = COMPARISONS[name]
    return {
        "title": c.title,
        "kind": c.kind,
        "baseline": c.baseline,
        "quality": c.quality,
        "quality_label": c.quality_label,
        "higher_is_better": c.higher_is_better,
        "rule": c.rule,
        "weights": list(c.weights),
        "sparsities": list(c.sparsities),
        "epsilon": c.epsilon,
    }


def comparison_outputs(name):
    """A comparison's final targets: its tables and figure (PNG and PDF)."""
    if COMPARISONS[name].kind == "allocation":
        return [
            f"results/{name}/allocation.tsv",
            f"results/{name}/allocation_summary.tsv",
            *expand(f"results/{name}/figures/allocation.{{ext}}", ext=FORMATS),
        ]
    return [
        f"results/{name}/runs.tsv",
        f"results/{name}/differences.tsv",
        *expand(f"results/{name}/figures/differences.{{ext}}", ext=FORMATS),
    ]


# One arm x seed: the experiments' trainer with the method's hooks (htsr.guide.training).
rule comparison_run:
    input:
        unpack(comparison_run_inputs),
    output:
        weights="resources/comparisons/{comparison}/{run}.pt",
        record="results/{comparison}/runs/{run}.json",
    log:
        "logs/comparison_run/{comparison}/{run}.log",
    benchmark:
        "logs/benchmarks/comparison_run/{comparison}/{run}.tsv"
    conda:
        "../../envs/experiments.yaml"
    threads: config.get("train_threads", 4)
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=1 if config["device"] == "cuda" else 0,
    params:
        run=lambda wildcards: comparison_run(
            wildcards.comparison, wildcards.run
        ).as_dict(),
        quality=lambda wildcards: COMPARISONS[wildcards.comparison].quality,
        device=config["device"],
    script:
        "../../scripts/comparison_run.py"


# One trained network pruned to each sparsity, uniformly and by AlphaPruning's allocation.
rule comparison_prune:
    input:
        dataset=comparison_dataset,
        weights="resources/comparisons/{comparison}/{run}.pt",
    output:
        "results/{comparison}/pruned/{run}.json",
    log:
        "logs/comparison_prune/{comparison}/{run}.log",
    benchmark:
        "logs/benchmarks/comparison_prune/{comparison}/{run}.tsv"
    conda:
        "../../envs/experiments.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=30,
    params:
        run=lambda wildcards: comparison_run(
            wildcards.comparison, wildcards.run
        ).as_dict(),
        prune=lambda wildcards: COMPARISONS[wildcards.comparison].prune,
    script:
        "../../scripts/comparison_prune.py"


# Every seed's record, and each arm's paired differences from the baseline with the verdict.
rule comparison_table:
    input:
        records=comparison_records,
    output:
        runs="results/{comparison}/runs.tsv",
        differences="results/{comparison}/differences.tsv",
    log:
        "logs/comparison_table/{comparison}.log",
    benchmark:
        "logs/benchmarks/comparison_table/{comparison}.tsv"
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=10,
    params:
        spec=lambda wildcards: comparison_spec(wildcards.comparison),
    script:
        "../../scripts/comparison_table.py"


rule comparison_figure:
    input:
        "results/{comparison}/differences.tsv",
    output:
        report(
            expand("results/{{comparison}}/figures/differences.{ext}", ext=FORMATS),
            category="Comparisons",
        ),
    log:
        "logs/comparison_figure/{comparison}.log",
    benchmark:
        "logs/benchmarks/comparison_figure/{comparison}.tsv"
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=10,
    params:
        spec=lambda wildcards: comparison_spec(wildcards.comparison),
    script:
        "../../scripts/comparison_figure.py"


# AlphaPruning's allocation on pinned pretrained weights and its distance from uniform.
rule comparison_allocation:
    output:
        layers="results/{comparison}/allocation.tsv",
        summary="results/{comparison}/allocation_summary.tsv",
        png="results/{comparison}/figures/allocation.png",
        pdf="results/{comparison}/figures/allocation.pdf",
    log:
        "logs/comparison_allocation/{comparison}.log",
    benchmark:
        "logs/benchmarks/comparison_allocation/{comparison}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        spec=lambda wildcards: comparison_spec(wildcards.comparison),
    script:
        "../../scripts/comparison_allocation.py"
