rule model_spectra:
    input:
        weights=weights_input,
    output:
        "results/spectra/{model}.parquet",
    log:
        "logs/model_spectra/{model}.log",
    # a failed job is retried with more memory and time (the resource functions scale with attempt)
    retries: 2
    conda:
        "../../envs/spectra.yaml"
    threads: config["spectra_threads"]
    resources:
        mem_mb=spectra_mem_mb,
        runtime=spectra_runtime,
        # one GPU when the config asks for device: cuda (the Slurm plugin turns it into --gpus=1)
        gpu=1 if config["device"] == "cuda" else 0,
    params:
        row=model_params,
        convention=config["convention"],
        device=config["device"],
        dtype=config["dtype"],
        include_embeddings=config["include_embeddings"],
    script:
        "../../scripts/model_spectra.py"
