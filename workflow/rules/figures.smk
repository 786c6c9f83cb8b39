rule vgg_figure:
    input:
        models="results/models.tsv",
    output:
        png=report(
            "results/figures/vgg.png",
            caption="../report/vgg.rst",
            category="Trends",
            labels={"figure": "VGG"},
        ),
        pdf="results/figures/vgg.pdf",
    log:
        "logs/vgg_figure.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        figure="vgg",
    script:
        "../../scripts/trend_figure.py"


use rule vgg_figure as resnet_figure with:
    output:
        png=report(
            "results/figures/resnet.png",
            caption="../report/resnet.rst",
            category="Trends",
            labels={"figure": "ResNet"},
        ),
        pdf="results/figures/resnet.pdf",
    log:
        "logs/resnet_figure.log",
    params:
        figure="resnet",


use rule vgg_figure as families_figure with:
    output:
        png=report(
            "results/figures/families.png",
            caption="../report/families.rst",
            category="Trends",
            labels={"figure": "all families"},
        ),
        pdf="results/figures/families.pdf",
    log:
        "logs/families_figure.log",
    params:
        figure="families",


rule metrics_comparison_figure:
    input:
        trends="results/trends.tsv",
    output:
        png=report(
            "results/figures/metrics_comparison.png",
            caption="../report/metrics_comparison.rst",
            category="Trends",
            labels={"figure": "metric comparison"},
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
        spectra=spectra_files(),
    output:
        png=report(
            "results/figures/alpha_histogram.png",
            caption="../report/alpha_histogram.rst",
            category="Spectra",
            labels={"figure": "alpha histogram"},
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
    script:
        "../../scripts/alpha_histogram.py"


rule esd_figure:
    input:
        spectra="results/spectra/{model}.parquet",
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
