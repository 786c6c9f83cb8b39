rule download_weights:
    output:
        "resources/weights/{weights}.{ext}",
    log:
        "logs/download_weights/{weights}.{ext}.log",
    benchmark:
        "logs/benchmarks/download_weights/{weights}.{ext}.tsv"
    localrule: True
    conda:
        "../../envs/download.yaml"
    threads: 1
    resources:
        mem_mb=download_mem_mb,
        runtime=download_runtime,
    params:
        row=weights_params,
    script:
        "../../scripts/download_weights.py"
