"""Rule prepare_dataset: fetch one experiment dataset with its library's loader and write it as
one tensor file (htsr.experiments.datasets.prepare)."""

from htsr.experiments import datasets
from htsr.io import job_log

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "prepare_dataset")
spec = smk.params.spec
log.info("%s: preparing %s", smk.wildcards.dataset, spec)
meta = datasets.prepare(spec, smk.output[0])
log.info("%s: wrote %s (%s)", smk.wildcards.dataset, smk.output[0], meta)
