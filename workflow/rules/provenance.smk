# Runs in the spectra environment: the package versions it records (torch, torchvision, timm)
# are those of the environment that computed the spectra.
rule provenance:
    input:
        weights=[weights_file(w) for w in WEIGHTS.index],
        models=[f"{results_dir(s)}/models.tsv" for s in STUDIES],
    output:
        report(
            "results/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        "logs/provenance.log",
    benchmark:
        "logs/benchmarks/provenance.tsv"
    conda:
        "../../envs/spectra.yaml"
    threads: 1
    resources:
        mem_mb=analysis_mem_mb,
        runtime=provenance_runtime,
    params:
        weights={w: weights_file(w) for w in WEIGHTS.index},
        repo=workflow.basedir,
    script:
        "../../scripts/provenance.py"
