"""Rule comparison_prune: one trained network of a pruning comparison pruned to each sparsity
by uniform magnitude pruning and by AlphaPruning's allocation (htsr.guide.runs.prune_records)."""

import json

import torch

from htsr.experiments import datasets, nets
from htsr.guide import runs
from htsr.io import atomic_output, job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "comparison_prune")
torch.set_num_threads(smk.threads)
run, prune = smk.params.run, smk.params.prune
data = datasets.load(smk.input.dataset)
model = nets.build(run["architecture"], runs.run_data(run, data)["meta"], run["hyperparameters"])
model.load_state_dict(torch.load(smk.input.weights, map_location="cpu", weights_only=True))
records = runs.prune_records(run, model, data, prune["sparsities"],
                             epsilon=prune.get("epsilon", [0.3, 0.1]),
                             lower=prune.get("lower", "published"))  # fmt: skip
records = [{"comparison": smk.wildcards.comparison, "kind": "prune", **r} for r in records]
with atomic_output(smk.output[0]) as tmp:
    tmp.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
for r in records:
    log.info("%s %s %s: %.4g (epsilon %s)", run["name"], r["group"], r["arm"], r["quality"],
             r["epsilon"])  # fmt: skip
