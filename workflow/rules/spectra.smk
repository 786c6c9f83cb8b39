rule model_spectra:
    input:
        weights=weights_input,
    output:
        "results/{study}/spectra/{weights}.parquet",
    log:
        "logs/model_spectra/{study}/{weights}.log",
    benchmark:
        "logs/benchmarks/model_spectra/{study}/{weights}.tsv"
    # the studies whose model sets name no method (the others: model_spectra_with_methods)
    wildcard_constraints:
        study=studies_pattern(with_methods=False),
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
        # the config methods of the file's sets (none in the studies this rule serves)
        methods=methods_params,
        device=config["device"],
        dtype=config["dtype"],
        include_embeddings=config["include_embeddings"],
    script:
        "../../scripts/model_spectra.py"


# A study whose model sets name the papers' own methods (config methods, the study's
# set_methods; e.g. the 2019 notebooks' TruncatedSVD eigenvalues): each weight file's main
# spectra and those of its sets' methods in one job, every matrix decomposed once where the
# conventions take the same matrices (htsr.spectral.metrics.analyze_methods). The methods' rows
# go to one table per file, column `method` (none when no set of the file names one).
use rule model_spectra as model_spectra_with_methods with:
    output:
        main="results/{study}/spectra/{weights}.parquet",
        methods="results/{study}/method_spectra/{weights}.parquet",
    benchmark:
        "logs/benchmarks/model_spectra_with_methods/{study}/{weights}.tsv"
    wildcard_constraints:
        study=studies_pattern(with_methods=True),
