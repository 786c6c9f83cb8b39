"""Rule comparison_run: train one run of an alpha-guided comparison (htsr.guide.runs.train_run:
the experiments' trainer with the method's hooks), write its checkpoint and its record."""

import json

import torch

from htsr.experiments import datasets
from htsr.guide import runs
from htsr.io import atomic_output, job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "comparison_run")
torch.set_num_threads(smk.threads)
run = smk.params.run
log.info("%s/%s: %s %s seed %d guide %s", smk.wildcards.comparison, run["name"],
         run["architecture"], run["hyperparameters"], run["seed"], run["guide"])  # fmt: skip
data = datasets.load(smk.input.dataset)
init = None
if run["init"]:
    init = torch.load(smk.input.init, map_location="cpu", weights_only=True)
    log.info("%s: starting from %s", run["name"], smk.input.init)
model, record = runs.train_run(
    run, data, init_state=init, quality=smk.params.quality, device=smk.params.device,
    log=lambda message: log.info("%s: %s", run["name"], message),
)  # fmt: skip
record = {"comparison": smk.wildcards.comparison, "kind": run["kind"], **record,
          "dataset": data["meta"].get("source")}  # fmt: skip
with atomic_output(smk.output.weights) as tmp:
    torch.save(model.state_dict(), tmp)
with atomic_output(smk.output.record) as tmp:
    tmp.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
log.info("%s: %s %.4g, %d alpha fits, %.1f s CPU", run["name"], smk.params.quality,
         record["quality"], record["refits"], record["cpu_s"])  # fmt: skip
