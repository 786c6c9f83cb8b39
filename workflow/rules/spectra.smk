rule model_spectra:
    input:
        weights=weights_input,
    output:
        "results/spectra/{model}.parquet",
    log:
        "logs/model_spectra/{model}.log",
    conda:
        "../../envs/spectra.yaml"
    threads: config["spectra_threads"]
    resources:
        mem_mb=spectra_mem_mb,
        runtime=spectra_runtime,
    params:
        row=model_params,
        convention=config["convention"],
        device=config["device"],
        dtype=config["dtype"],
        include_embeddings=config["include_embeddings"],
    script:
        "../../scripts/model_spectra.py"
