"""Rule provenance: versions, configuration, weight hashes and git state of the run."""

from htsr.io import job_log, write_json
from htsr.studies.provenance import collect_provenance

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "provenance")
record = collect_provenance(smk.config, smk.params.weights, repo_dir=smk.params.repo)
write_json(smk.output[0], record)
log.info("git %s, %d weight files", record["git"], len(record["weights"]))
