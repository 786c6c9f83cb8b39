"""Rule download_weights: fetch and verify one model's weight file
(htsr.weights.zoo.download_weights).

Retries, verification, atomic placement and offline mode (config `offline` or HTSR_OFFLINE=1)
live in htsr.weights.zoo; this script only passes the configuration through and logs the result.
"""

import json

from htsr.io import job_log
from htsr.weights import zoo

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "download_weights")
cfg = smk.config
row = smk.params.row
log.info("%s (%s): fetching weights to %s", row["weights"], row["model"], smk.output[0])
result = zoo.download_weights(
    row,
    smk.output[0],
    torchvision_base_url=cfg.get("torchvision_url"),
    hf_endpoint=cfg.get("hf_endpoint"),
    pytorchcv_base_url=cfg.get("pytorchcv_url"),
    offline=bool(cfg.get("offline", False)),
    retries=int(cfg.get("download_retries", 4)),
)
log.info("%s: done %s", row["model"], json.dumps(result))
