# The controlled comparisons of the alpha-guided methods (studies with a `comparison`,
# htsr.guide.compare; docs/guide.md): one training job per arm x seed (and per pre-training),
# pruning of each trained network, then the paired differences and their figure.


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


# AlphaPruning's allocation on pinned pretrained weights and its distance from uniform (the
# experiments environment: htsr.guide.runs imports the datasets module, torchvision and PyG).
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
        "../../envs/experiments.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        spec=lambda wildcards: comparison_spec(wildcards.comparison),
    script:
        "../../scripts/comparison_allocation.py"
