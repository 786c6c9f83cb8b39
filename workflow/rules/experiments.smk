# The controlled experiments (studies with an `experiment`): datasets fetched once on the
# submitting node, then one training job per model; their checkpoints feed the usual spectra.


# A localrule: a compute node of a cluster needs no network, the training jobs read the
# prepared file.
rule prepare_dataset:
    output:
        "resources/datasets/{dataset}.pt",
    log:
        "logs/prepare_dataset/{dataset}.log",
    benchmark:
        "logs/benchmarks/prepare_dataset/{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(re.escape(key) for key in DATASETS) or "^$",
    localrule: True
    conda:
        "../../envs/experiments.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        spec=lambda wildcards: DATASETS[wildcards.dataset],
    script:
        "../../scripts/prepare_dataset.py"


# One model of a grid: checkpoint and training result, written atomically; a killed job resumes
# from its last epoch (resources/training/{weights}.resume.pt) when rerun.
rule train_model:
    input:
        dataset=lambda wildcards: f"resources/datasets/{TRAINED.loc[wildcards.weights, 'dataset']}.pt",
    output:
        weights="resources/weights/{weights}.trained.pt",
        result="resources/weights/{weights}.training.json",
    log:
        "logs/train_model/{weights}.log",
    benchmark:
        "logs/benchmarks/train_model/{weights}.tsv"
    conda:
        "../../envs/experiments.yaml"
    threads: config.get("train_threads", 4)
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=1 if config["device"] == "cuda" else 0,
    params:
        run=train_params,
        state=lambda wildcards: f"resources/training/{wildcards.weights}.resume.pt",
        device=config["device"],
    script:
        "../../scripts/train_model.py"
