# The papers' printed numbers beside ours (htsr.studies.paper): one row per printed cell the run can
# compute, the figure of ours against printed, and the 2019 set's alpha_hat by both eigenvalue
# methods.
rule paper_comparison:
    input:
        unpack(comparison_inputs),
    output:
        table=report(
            "results/{study}/paper_comparison.tsv",
            caption="../report/paper_comparison.rst",
            category="The paper, side by side",
            labels={"table": "printed against ours"},
        ),
        methods="results/{study}/paper/alpha_hat_by_method.tsv",
        png=report(
            "results/{study}/figures/paper_comparison.png",
            caption="../report/paper_comparison_figure.rst",
            category="The paper, side by side",
            labels={"table": "figure: ours against printed"},
        ),
        pdf="results/{study}/figures/paper_comparison.pdf",
    log:
        "logs/paper_comparison/{study}.log",
    benchmark:
        "logs/benchmarks/paper_comparison/{study}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        methods=lambda wildcards: run_methods(wildcards.study),
        same_convention_methods=lambda wildcards: [
            m
            for m in run_methods(wildcards.study)
            if METHODS[m]["convention"] == config["convention"]
        ],
        convention=config["convention"],
    script:
        "../../scripts/paper_comparison.py"
