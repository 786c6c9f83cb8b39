# The papers' printed numbers beside ours (htsr.paper): one row per printed cell the run can
# compute, the figure of ours against printed, and the 2019 set's alpha_hat by both eigenvalue
# methods.
rule paper_comparison:
    input:
        unpack(comparison_inputs),
    output:
        table=report(
            "results/paper_comparison.tsv",
            caption="../report/paper_comparison.rst",
            category="The paper, side by side",
            labels={"table": "printed against ours"},
        ),
        methods="results/paper/alpha_hat_by_method.tsv",
        png=report(
            "results/figures/paper_comparison.png",
            caption="../report/paper_comparison_figure.rst",
            category="The paper, side by side",
            labels={"table": "figure: ours against printed"},
        ),
        pdf="results/figures/paper_comparison.pdf",
    log:
        "logs/paper_comparison.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        methods=RUN_METHODS,
        same_convention_methods=[
            m for m in RUN_METHODS if METHODS[m]["convention"] == config["convention"]
        ],
        convention=config["convention"],
    script:
        "../../scripts/paper_comparison.py"
