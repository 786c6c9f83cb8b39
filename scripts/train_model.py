"""Rule train_model: train one model of a controlled experiment (htsr.experiments.train),
resuming from its last epoch if a killed run left one, and write its checkpoint and result
atomically."""

import json
from pathlib import Path

import torch

from htsr.experiments import datasets, train
from htsr.io import atomic_output, job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "train_model")
torch.set_num_threads(smk.threads)
run = smk.params.run
state = Path(smk.params.state)
state.parent.mkdir(parents=True, exist_ok=True)
log.info("%s: training %s %s seed %d", run["model"], run["architecture"],
         run["hyperparameters"], run["seed"])  # fmt: skip
data = datasets.load(smk.input.dataset)
model, result = train.train(
    run["architecture"], run["hyperparameters"], data, run["seed"], state_path=state,
    log=lambda message: log.info("%s: %s", run["model"], message), device=smk.params.device,
)  # fmt: skip
result = {"model": run["model"], "dataset": data["meta"].get("source"), **result}
with atomic_output(smk.output.weights) as tmp:
    torch.save(model.state_dict(), tmp)
with atomic_output(smk.output.result) as tmp:
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
state.unlink(missing_ok=True)
quality = {k: round(v, 4) for k, v in result.items() if k.startswith(("train_", "test_"))}
log.info("%s: %s, gap %.4g, %.1f s", run["model"], quality, result["gap"], result["wall_s"])
