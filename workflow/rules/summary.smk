# Every study side by side: does the heavy-tailed trend hold beyond ImageNet (htsr.studies.summary)?
rule beyond_imagenet_summary:
    input:
        trends=[f"{results_dir(s)}/trends.tsv" for s in STUDIES],
        models=[f"{results_dir(s)}/models.tsv" for s in STUDIES],
    output:
        table=report(
            "results/summary/beyond_imagenet.tsv",
            caption="../report/beyond_imagenet.rst",
            category="Beyond ImageNet",
            labels={"table": "verdicts per study, family, quality and metric"},
        ),
        png=report(
            "results/summary/beyond_imagenet.png",
            caption="../report/beyond_imagenet.rst",
            category="Beyond ImageNet",
            labels={"table": "figure: tau per family"},
        ),
        pdf="results/summary/beyond_imagenet.pdf",
        text=report(
            "results/summary/beyond_imagenet.md",
            caption="../report/beyond_imagenet.rst",
            category="Beyond ImageNet",
            labels={"table": "the answer, generated from the table"},
        ),
    log:
        "logs/beyond_imagenet_summary.log",
    benchmark:
        "logs/benchmarks/beyond_imagenet_summary.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=analysis_runtime,
    params:
        studies={s: study_params_of(s) for s in STUDIES},
        tau_bootstrap=config.get("tau_bootstrap", 2000),
    script:
        "../../scripts/beyond_imagenet_summary.py"
