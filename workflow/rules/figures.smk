# One rule per figure of the figure table (config figures): trends of top-1 on the metrics.
rule trend_figure:
    input:
        unpack(figure_inputs),
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/trend_figure.rst",
            category="Trends",
            labels=lambda wildcards: {
                "figure": wildcards.figure,
                "set": FIGURE_TABLE.loc[wildcards.figure, "set"],
            },
        ),
        pdf="results/figures/{figure}.pdf",
    log:
        "logs/trend_figure/{figure}.log",
    wildcard_constraints:
        figure="|".join(re.escape(f) for f in FIGURE_TABLE.index) or "^$",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        spec=lambda wildcards: FIGURE_TABLE.loc[wildcards.figure].to_dict(),
    script:
        "../../scripts/trend_figure.py"


rule families_figure:
    input:
        models="results/models.tsv",
        trends="results/trends.tsv",
    output:
        png=report(
            "results/figures/families.png",
            caption="../report/families.rst",
            category="Trends",
            labels={"figure": "all families", "set": "all"},
        ),
        pdf="results/figures/families.pdf",
    log:
        "logs/families_figure.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    script:
        "../../scripts/families_figure.py"


rule metrics_comparison_figure:
    input:
        trends="results/trends.tsv",
    output:
        png=report(
            "results/figures/metrics_comparison.png",
            caption="../report/metrics_comparison.rst",
            category="Trends",
            labels={"figure": "metric comparison", "set": "all"},
        ),
        pdf="results/figures/metrics_comparison.pdf",
    log:
        "logs/metrics_comparison_figure.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    script:
        "../../scripts/metrics_comparison_figure.py"


rule alpha_histogram:
    input:
        spectra=spectra_files(WEIGHTS),
    output:
        png=report(
            "results/figures/alpha_histogram.png",
            caption="../report/alpha_histogram.rst",
            category="Spectra",
            labels={"figure": "alpha histogram", "set": "all"},
        ),
        pdf="results/figures/alpha_histogram.pdf",
    log:
        "logs/alpha_histogram.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        title="every selected model",
    script:
        "../../scripts/alpha_histogram.py"


use rule alpha_histogram as set_alpha_histogram with:
    input:
        spectra=lambda wildcards: spectra_files(
            MODELS[MODELS["set"] == wildcards.set].drop_duplicates("weights")
        ),
    output:
        png=report(
            "results/figures/alpha_histogram/{set}.png",
            caption="../report/alpha_histogram.rst",
            category="Spectra",
            labels={"figure": "alpha histogram", "set": "{set}"},
        ),
        pdf="results/figures/alpha_histogram/{set}.pdf",
    log:
        "logs/set_alpha_histogram/{set}.log",
    params:
        title=lambda wildcards: f"model set {wildcards.set}",


rule esd_figure:
    input:
        spectra=lambda wildcards: spectra_files(MODELS.loc[[wildcards.model]]),
    output:
        png=report(
            "results/figures/esd/{model}.png",
            caption="../report/esd.rst",
            category="Spectra",
            subcategory="ESD of the largest matrix",
            labels={"model": "{model}"},
        ),
        pdf="results/figures/esd/{model}.pdf",
    log:
        "logs/esd_figure/{model}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    script:
        "../../scripts/esd_figure.py"
