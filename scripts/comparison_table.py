"""Rule comparison_table: every scored record of a comparison (runs.tsv) and the paired
differences arm - baseline with their 95 % t-interval and verdict (differences.tsv,
htsr.guide.compare.paired_differences)."""

import json

import pandas as pd

from htsr.guide.compare import paired_differences
from htsr.io import job_log, write_tsv

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "comparison_table")
spec = smk.params.spec
records = []
for path in smk.input.records:
    data = json.loads(open(path, encoding="utf-8").read())
    for rec in data if isinstance(data, list) else [data]:
        rec.pop("result", None)
        records.append(rec)
table = pd.DataFrame(records)
table = table[table["kind"] != "pretrain"]
write_tsv(smk.output.runs, table)
diff = paired_differences(table, spec["baseline"], higher_is_better=spec["higher_is_better"])
diff.insert(0, "comparison", smk.wildcards.comparison)
diff["quality"] = spec["quality"]
diff["rule"] = spec["rule"]
write_tsv(smk.output.differences, diff)
for rec in diff.itertuples():
    log.info("%s %s - %s: %+.4g [%+.4g, %+.4g] n=%d: %s", rec.group, rec.arm, rec.baseline,
             rec.mean, rec.low, rec.high, rec.n, rec.verdict)  # fmt: skip
