# The figures of a study, all drawn from its saved tables (models.tsv, trends.tsv, spectra):
# nothing is fitted again here.


# One rule per figure of a study's figure table (its `figures`): trends on chosen metrics.
rule trend_figure:
    input:
        unpack(figure_inputs),
    output:
        png=report(
            "results/{study}/figures/{figure}.png",
            caption="../report/trend_figure.rst",
            category="Trends",
            labels=lambda wildcards: {
                "study": wildcards.study,
                "figure": wildcards.figure,
                "set": FIGURE_TABLE.loc[(wildcards.study, wildcards.figure), "set"],
            },
        ),
        pdf="results/{study}/figures/{figure}.pdf",
    log:
        "logs/trend_figure/{study}/{figure}.log",
    benchmark:
        "logs/benchmarks/trend_figure/{study}/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(re.escape(f) for f in FIGURE_TABLE["figure"]) or "^$",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        spec=lambda wildcards: FIGURE_TABLE.loc[
            (wildcards.study, wildcards.figure)
        ].to_dict(),
        study=study_params,
    script:
        "../../scripts/trend_figure.py"


# The headline metric against the headline quality, one panel per family.
rule families_figure:
    input:
        models="results/{study}/models.tsv",
        trends="results/{study}/trends.tsv",
    output:
        png=report(
            "results/{study}/figures/families.png",
            caption="../report/families.rst",
            category="Trends",
            labels={"study": "{study}", "figure": "all families"},
        ),
        pdf="results/{study}/figures/families.pdf",
    log:
        "logs/families_figure/{study}.log",
    benchmark:
        "logs/benchmarks/families_figure/{study}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        study=study_params,
    script:
        "../../scripts/families_figure.py"


rule metrics_comparison_figure:
    input:
        trends="results/{study}/trends.tsv",
    output:
        png=report(
            "results/{study}/figures/metrics_comparison.png",
            caption="../report/metrics_comparison.rst",
            category="Trends",
            labels={"study": "{study}", "figure": "metric comparison"},
        ),
        pdf="results/{study}/figures/metrics_comparison.pdf",
    log:
        "logs/metrics_comparison_figure/{study}.log",
    benchmark:
        "logs/benchmarks/metrics_comparison_figure/{study}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        study=study_params,
    script:
        "../../scripts/metrics_comparison_figure.py"


rule alpha_histogram:
    input:
        spectra=lambda wildcards: spectra_files(
            wildcards.study, study_models(wildcards.study).drop_duplicates("weights")
        ),
    output:
        png=report(
            "results/{study}/figures/alpha_histogram.png",
            caption="../report/alpha_histogram.rst",
            category="Spectra",
            labels={"study": "{study}", "figure": "alpha histogram", "set": "all"},
        ),
        pdf="results/{study}/figures/alpha_histogram.pdf",
    log:
        "logs/alpha_histogram/{study}.log",
    benchmark:
        "logs/benchmarks/alpha_histogram/{study}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        title=lambda wildcards: f"study {wildcards.study}, every selected model",
    script:
        "../../scripts/alpha_histogram.py"


use rule alpha_histogram as set_alpha_histogram with:
    input:
        spectra=lambda wildcards: spectra_files(
            wildcards.study,
            study_models(wildcards.study)
            .query("set == @wildcards.set")
            .drop_duplicates("weights"),
        ),
    output:
        png=report(
            "results/{study}/figures/alpha_histogram/{set}.png",
            caption="../report/alpha_histogram.rst",
            category="Spectra",
            labels={"study": "{study}", "figure": "alpha histogram", "set": "{set}"},
        ),
        pdf="results/{study}/figures/alpha_histogram/{set}.pdf",
    log:
        "logs/set_alpha_histogram/{study}/{set}.log",
    benchmark:
        "logs/benchmarks/set_alpha_histogram/{study}/{set}.tsv"
    params:
        title=lambda wildcards: f"study {wildcards.study}, model set {wildcards.set}",


# One job per study draws every model's ESD figure (a job per model cost Snakemake more
# bookkeeping than the figure itself: docs/pipeline.md).
rule esd_figures:
    input:
        spectra=lambda wildcards: spectra_files(wildcards.study),
    output:
        report(
            directory("results/{study}/figures/esd"),
            patterns=["{model}.png"],
            caption="../report/esd.rst",
            category="Spectra",
            subcategory="ESD of the largest matrix",
            labels={"study": "{study}", "model": "{model}"},
        ),
    log:
        "logs/esd_figures/{study}.log",
    benchmark:
        "logs/benchmarks/esd_figures/{study}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        models=lambda wildcards: esd_models(wildcards.study),
    script:
        "../../scripts/esd_figures.py"


# Nat. Commun. 2021's "correlation flow": alpha by layer depth for the best and the worst model
# (by the headline quality) of each family.
rule correlation_flow_figure:
    input:
        models="results/{study}/models.tsv",
        spectra=lambda wildcards: spectra_files(wildcards.study),
    output:
        png=report(
            "results/{study}/figures/correlation_flow.png",
            caption="../report/correlation_flow.rst",
            category="Spectra",
            labels={"study": "{study}", "figure": "correlation flow"},
        ),
        pdf="results/{study}/figures/correlation_flow.pdf",
    log:
        "logs/correlation_flow_figure/{study}.log",
    benchmark:
        "logs/benchmarks/correlation_flow_figure/{study}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        study=study_params,
        models=lambda wildcards: study_models(wildcards.study)["model"].tolist(),
    script:
        "../../scripts/correlation_flow_figure.py"


# A trajectory family (one model's training steps): the headline metric and the quality against
# step, and alpha by layer against step as a heatmap.
rule trajectory_figure:
    input:
        models="results/{study}/models.tsv",
        trends="results/{study}/trends.tsv",
        spectra=lambda wildcards: spectra_files(
            wildcards.study,
            study_models(wildcards.study).query("family == @wildcards.family"),
        ),
    output:
        png=report(
            "results/{study}/figures/trajectory/{family}.png",
            caption="../report/trajectory.rst",
            category="Trends",
            labels={"study": "{study}", "figure": "trajectory {family}"},
        ),
        pdf="results/{study}/figures/trajectory/{family}.pdf",
    log:
        "logs/trajectory_figure/{study}/{family}.log",
    benchmark:
        "logs/benchmarks/trajectory_figure/{study}/{family}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        study=study_params,
        models=lambda wildcards: study_models(wildcards.study)
        .query("family == @wildcards.family")["model"]
        .tolist(),
    script:
        "../../scripts/trajectory_figure.py"


# A controlled experiment's family: training curves, the headline metric and the quality by
# the varied setting with the seeds' spread.
rule experiment_figure:
    input:
        models="results/{study}/models.tsv",
        trends="results/{study}/trends.tsv",
        training=lambda wildcards: [
            training_result(w)
            for w in study_models(wildcards.study).query(
                "family == @wildcards.family"
            )["weights"]
        ],
    output:
        png=report(
            "results/{study}/figures/experiment/{family}.png",
            caption="../report/experiment.rst",
            category="Trends",
            labels={"study": "{study}", "figure": "experiment {family}"},
        ),
        pdf="results/{study}/figures/experiment/{family}.pdf",
    log:
        "logs/experiment_figure/{study}/{family}.log",
    benchmark:
        "logs/benchmarks/experiment_figure/{study}/{family}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        study=study_params,
    script:
        "../../scripts/experiment_figure.py"
