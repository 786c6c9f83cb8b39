"""Build the study tables ``config/studies/{nlp,segmentation,autoencoders}.tsv`` from the shared
long tables in ``../shared/studies/`` (one row per model per quality metric, with the source
file of every number): one row per model, one column per quality metric, values exactly as
the shared tables give them (scales differ by source: Pythia, OPT and BLOOM harness scores are
fractions; GPT-2's, torchvision's and mmsegmentation's percentages, as their sources print them).

Model keys are the shared keys with ``@stepN`` written ``.stepN`` (keys name files). Rows that
read the same checkpoint (``pythia-410m`` at ``step143000`` in the size family and in the
trajectory) share one ``weights`` key, so one download and one spectrum serve both.

Sets: ``core`` is what a workstation can run (README: the NLP study's is about 55 GB); ``all``
adds the rest. :data:`SPECS` says, per study, which files, which models are core, and the hub
``model_type`` of each NLP family.

Run from the repository root: ``python tools/make_study_tables.py [../shared/studies]``.
``tests/test_studies.py`` checks that each committed table equals this script's output and every
quality in it the shared figure.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: Per study: the shared files, the core models, and the hub ``model_type`` of each NLP
#: family's architecture (the fused-attention layout follows from it).
SPECS = {
    "nlp": {
        "files": (
            "nlp_pythia_sizes.tsv",
            "nlp_pythia_training.tsv",
            "nlp_gpt2.tsv",
            "nlp_opt_bloom.tsv",
        ),
        # Pythia to 1.4B (both), the pythia-410m trajectory, GPT-2 (4), OPT and BLOOM to ~1.7B
        "core": re.compile(
            r"^(pythia-(70m|160m|410m|1b|1\.4b)(-deduped)?|pythia-410m\.step\d+|gpt2.*"
            r"|opt-(125m|350m|1\.3b)|bloom-(560m|1b1|1b7))$"
        ),
        "model_types": {"pythia": "gpt_neox", "gpt2": "gpt2", "opt": "opt", "bloom": "bloom"},
    },
    "segmentation": {
        "files": ("segmentation.tsv",),
        # torchvision's six, the SegFormers and UPerNet-ConvNeXt; Mask2Former is in all
        "core": re.compile(r"^(?!mask2former).*"),
        "model_types": {},
    },
    "autoencoders": {
        "files": ("autoencoders.tsv",),
        "core": re.compile(r".*"),  # CompressAI's files are small: every model is core
        "model_types": {},
    },
}
ID_COLUMNS = [
    "model", "family", "source", "repo", "url", "filename", "revision", "model_id",
    "weights_tag", "num_params", "set", "step", "weights", "label",
]  # fmt: skip


def _key(model: str) -> str:
    return model.replace("@", ".")


def build(shared: Path, study: str = "nlp") -> pd.DataFrame:
    """The wide table of ``study`` from the shared long tables in ``shared``."""
    spec = SPECS[study]
    long = pd.concat(
        [pd.read_csv(shared / f, sep="\t", dtype=str, keep_default_na=False)
         for f in spec["files"]],
        ignore_index=True,
    )  # fmt: skip
    long["key"] = long["model"].map(_key)
    metrics = list(dict.fromkeys(long["quality_metric"]))
    rows = []
    for key, group in long.groupby("key", sort=False):
        first = group.iloc[0]
        revision, source, where = first["revision"], first["source"], first["repo_or_url"]
        step = revision[4:] if re.fullmatch(r"step\d+", revision) else ""
        base = where.rsplit("/", 1)[-1]
        prefix = re.sub(r"[-.].*", "", base)
        row = {
            "model": key, "family": first["family"], "source": source,
            "repo": where if source == "hf" else "", "url": where if source == "url" else "",
            "filename": first["filename"] if source == "hf" else "",
            "revision": revision if source == "hf" else "",
            "model_id": key if source == "torchvision" else spec["model_types"].get(prefix, ""),
            "weights_tag": where if source == "torchvision" else "",
            "num_params": first["num_params"],
            "set": "core" if spec["core"].match(key) else "all", "step": step,
            "weights": f"{base}.{revision}" if step else key, "label": key,
        }  # fmt: skip
        for rec in group.itertuples():
            row[rec.quality_metric] = rec.quality
        row["quality_source"] = "; ".join(dict.fromkeys(group["quality_source"]))
        row["note"] = "; ".join(dict.fromkeys(n for n in group["notes"] if n))
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*ID_COLUMNS, *metrics, "quality_source", "note"])
    # columns no row fills (an NLP table has no url) are left out
    return table[[c for c in table.columns if (table[c] != "").any()]]


def main(argv: list[str]) -> int:
    shared = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "studies"
    for study in SPECS:
        table = build(shared, study)
        out = ROOT / "config" / "studies" / f"{study}.tsv"
        table.to_csv(out, sep="\t", index=False)
        print(f"wrote {out} ({len(table)} models: {table.groupby('set').size().to_dict()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
