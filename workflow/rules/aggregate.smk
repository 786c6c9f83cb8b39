rule aggregate:
    input:
        spectra=lambda wildcards: spectra_files(wildcards.study),
        # controlled experiments: what training measured (none for other studies)
        training=lambda wildcards: training_files(wildcards.study),
    output:
        models=report(
            "results/{study}/models.tsv",
            caption="../report/models_table.rst",
            category="Tables",
            labels={"study": "{study}", "table": "models (main)"},
        ),
        trends=report(
            "results/{study}/trends.tsv",
            caption="../report/trends_table.rst",
            category="Tables",
            labels={"study": "{study}", "table": "trends (main)"},
        ),
        loo=report(
            "results/{study}/loo.tsv",
            caption="../report/loo_table.rst",
            category="Tables",
            labels={"study": "{study}", "table": "leave-one-out (main)"},
        ),
    log:
        "logs/aggregate/{study}.log",
    benchmark:
        "logs/benchmarks/aggregate/{study}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        models=lambda wildcards: model_rows(study_models(wildcards.study)),
        quality=lambda wildcards: quality_specs(wildcards.study),
        group_by=lambda wildcards: list(STUDIES[wildcards.study].group_by),
        more_families=lambda wildcards: list(STUDIES[wildcards.study].more_families),
        tau_bootstrap=config.get("tau_bootstrap", 2000),
        convention=lambda wildcards: study_convention(wildcards.study),
        evals="exact",
        # the rows of the spectra tables to read (a method's: its rows of method_spectra)
        method="main",
    script:
        "../../scripts/aggregate.py"


use rule aggregate as method_aggregate with:
    input:
        spectra=lambda wildcards: spectra_files(
            wildcards.study,
            method_models(wildcards.study, wildcards.method),
            wildcards.method,
        ),
        training=lambda wildcards: training_files(wildcards.study),
    output:
        models=report(
            "results/{study}/methods/{method}/models.tsv",
            caption="../report/models_table.rst",
            category="Tables",
            labels={"study": "{study}", "table": "models ({method})"},
        ),
        trends=report(
            "results/{study}/methods/{method}/trends.tsv",
            caption="../report/trends_table.rst",
            category="Tables",
            labels={"study": "{study}", "table": "trends ({method})"},
        ),
        loo=report(
            "results/{study}/methods/{method}/loo.tsv",
            caption="../report/loo_table.rst",
            category="Tables",
            labels={"study": "{study}", "table": "leave-one-out ({method})"},
        ),
    log:
        "logs/method_aggregate/{study}/{method}.log",
    benchmark:
        "logs/benchmarks/method_aggregate/{study}/{method}.tsv"
    params:
        models=lambda wildcards: model_rows(
            method_models(wildcards.study, wildcards.method)
        ),
        quality=lambda wildcards: quality_specs(wildcards.study),
        group_by=lambda wildcards: list(STUDIES[wildcards.study].group_by),
        more_families=lambda wildcards: list(STUDIES[wildcards.study].more_families),
        tau_bootstrap=config.get("tau_bootstrap", 2000),
        convention=lambda wildcards: METHODS[wildcards.method]["convention"],
        evals=lambda wildcards: METHODS[wildcards.method]["evals"],
        method=lambda wildcards: wildcards.method,
