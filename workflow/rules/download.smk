rule download_weights:
    output:
        "resources/weights/{model}.{ext}",
    log:
        "logs/download_weights/{model}.{ext}.log",
    localrule: True
    conda:
        "../../envs/download.yaml"
    threads: 1
    resources:
        mem_mb=download_mem_mb,
        runtime=download_runtime,
    params:
        row=model_params,
    script:
        "../../scripts/download_weights.py"
