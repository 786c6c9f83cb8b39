rule aggregate:
    input:
        spectra=spectra_files(),
    output:
        models=report(
            "results/models.tsv",
            caption="../report/models_table.rst",
            category="Tables",
        ),
        trends=report(
            "results/trends.tsv",
            caption="../report/trends_table.rst",
            category="Tables",
        ),
    log:
        "logs/aggregate.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        models=MODELS[["model", "family", "source", "top1", "top5"]].to_dict("records"),
    script:
        "../../scripts/aggregate.py"
