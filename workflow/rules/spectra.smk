rule model_spectra:
    input:
        weights=weights_input,
    output:
        "results/{study}/spectra/{weights}.parquet",
    log:
        "logs/model_spectra/{study}/{weights}.log",
    benchmark:
        "logs/benchmarks/model_spectra/{study}/{weights}.tsv"
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
        row=weights_params,
        options=lambda wildcards: {
            "convention": study_convention(wildcards.study),
            "evals": "exact",
        },
        device=config["device"],
        dtype=config["dtype"],
        include_embeddings=config["include_embeddings"],
    script:
        "../../scripts/model_spectra.py"


# The same spectra with one of the papers' own methods (config methods; e.g. the 2019
# notebooks' TruncatedSVD eigenvalues), for the models of the sets that name it (set_methods).
use rule model_spectra as method_spectra with:
    output:
        "results/{study}/methods/{method}/spectra/{weights}.parquet",
    log:
        "logs/method_spectra/{study}/{method}/{weights}.log",
    benchmark:
        "logs/benchmarks/method_spectra/{study}/{method}/{weights}.tsv"
    params:
        row=weights_params,
        options=method_options,
        device=config["device"],
        dtype=config["dtype"],
        include_embeddings=config["include_embeddings"],
