"""Build ``config/studies/nlp.tsv``: language-model families with published zero-shot quality.

Reads ``../shared/studies/nlp_*.tsv`` (long format: one row per model per quality metric, each
number with the file it was read from) and writes the wide model table of the NLP study: one row
per model, one column per quality metric, values exactly as the shared tables give them (Pythia,
OPT and BLOOM harness scores as fractions, GPT-2's as the percentages its paper prints).

Model keys are the shared keys with ``@stepN`` written ``.stepN`` (keys name files). Rows that
read the same checkpoint (``pythia-410m`` at ``step143000`` in the size family and in the
trajectory) share one ``weights`` key, so one download and one spectrum serve both.

Sets: ``core`` is what a workstation can run (about 60 GB of downloads, an hour of analysis on
16 cores, README "The NLP study"); ``all`` adds the rest. :data:`CORE` lists the core models.

Run from the repository root: ``python tools/make_nlp_study.py [../shared/studies]``.
``tests/test_studies.py`` checks that the committed table equals this script's output and every
quality in it the shared figure.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "config" / "studies" / "nlp.tsv"
FILES = ("nlp_pythia_sizes.tsv", "nlp_pythia_training.tsv", "nlp_gpt2.tsv", "nlp_opt_bloom.tsv")
#: The hub's ``model_type`` of each family's architecture (the fused-attention layout follows).
MODEL_TYPES = {"pythia": "gpt_neox", "gpt2": "gpt2", "opt": "opt", "bloom": "bloom"}
#: The core set: Pythia to 1.4B (both), the pythia-410m trajectory, GPT-2 (4), OPT and BLOOM
#: to about 1.7B (3 each).
CORE = re.compile(
    r"^(pythia-(70m|160m|410m|1b|1\.4b)(-deduped)?|pythia-410m\.step\d+|gpt2.*"
    r"|opt-(125m|350m|1\.3b)|bloom-(560m|1b1|1b7))$"
)
ID_COLUMNS = [
    "model", "family", "source", "repo", "filename", "revision", "model_id", "num_params",
    "set", "step", "weights", "label",
]  # fmt: skip


def _key(model: str) -> str:
    return model.replace("@", ".")


def build(shared: Path) -> pd.DataFrame:
    long = pd.concat(
        [pd.read_csv(shared / f, sep="\t", dtype=str, keep_default_na=False) for f in FILES],
        ignore_index=True,
    )
    long["key"] = long["model"].map(_key)
    metrics = list(dict.fromkeys(long["quality_metric"]))
    rows = []
    for key, group in long.groupby("key", sort=False):
        first = group.iloc[0]
        revision = first["revision"]
        step = revision[4:] if re.fullmatch(r"step\d+", revision) else ""
        base = first["repo_or_url"].rsplit("/", 1)[-1]
        weights = f"{base}.{revision}" if step else key
        prefix = re.sub(r"[-.].*", "", base)
        row = {
            "model": key, "family": first["family"], "source": first["source"],
            "repo": first["repo_or_url"], "filename": first["filename"], "revision": revision,
            "model_id": MODEL_TYPES.get(prefix, ""), "num_params": first["num_params"],
            "set": "core" if CORE.match(key) else "all", "step": step, "weights": weights,
            "label": key,
        }  # fmt: skip
        for rec in group.itertuples():
            row[rec.quality_metric] = rec.quality
        row["quality_source"] = "; ".join(dict.fromkeys(group["quality_source"]))
        row["note"] = "; ".join(dict.fromkeys(n for n in group["notes"] if n))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*ID_COLUMNS, *metrics, "quality_source", "note"])


def main(argv: list[str]) -> int:
    shared = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "studies"
    table = build(shared)
    table.to_csv(OUT, sep="\t", index=False)
    sizes = table.groupby("set").size().to_dict()
    print(f"wrote {OUT} ({len(table)} models: {sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
