rule aggregate:
    input:
        spectra=spectra_files(),
    output:
        models=report(
            "results/models.tsv",
            caption="../report/models_table.rst",
            category="Tables",
            labels={"table": "models (main)"},
        ),
        trends=report(
            "results/trends.tsv",
            caption="../report/trends_table.rst",
            category="Tables",
            labels={"table": "trends (main)"},
        ),
        loo=report(
            "results/loo.tsv",
            caption="../report/loo_table.rst",
            category="Tables",
            labels={"table": "leave-one-out (main)"},
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
        models=model_rows(MODELS),
        convention=config["convention"],
        evals="exact",
    script:
        "../../scripts/aggregate.py"


use rule aggregate as method_aggregate with:
    input:
        spectra=lambda wildcards: spectra_files(
            method_models(wildcards.method), wildcards.method
        ),
    output:
        models=report(
            "results/methods/{method}/models.tsv",
            caption="../report/models_table.rst",
            category="Tables",
            labels={"table": "models ({method})"},
        ),
        trends=report(
            "results/methods/{method}/trends.tsv",
            caption="../report/trends_table.rst",
            category="Tables",
            labels={"table": "trends ({method})"},
        ),
        loo=report(
            "results/methods/{method}/loo.tsv",
            caption="../report/loo_table.rst",
            category="Tables",
            labels={"table": "leave-one-out ({method})"},
        ),
    log:
        "logs/method_aggregate/{method}.log",
    params:
        models=lambda wildcards: model_rows(method_models(wildcards.method)),
        convention=lambda wildcards: METHODS[wildcards.method]["convention"],
        evals=lambda wildcards: METHODS[wildcards.method]["evals"],
