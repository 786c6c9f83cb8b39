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

The autoencoder table gets what the study's questions need beyond the published numbers
(:func:`autoencoder_views`):

* ``rd_gain_db``, a rate-aware quality of each CompressAI codec: its distortion in dB minus the
  least-squares quadratic of distortion in log10(bpp) fitted to every CompressAI codec trained
  for the same distortion, at the codec's own bpp (:func:`rd_gain_db`). A straight line left
  the pool's mean gain U-shaped across quality levels (+0.6 dB at level 1, −0.5 dB at 4,
  +0.85 dB at 8, MSE codecs), a rate effect again; the quadratic's level means stay within
  ±0.15 dB. Distortion is PSNR for the
  MSE-trained codecs and MS-SSIM in dB, −10·log10(1 − MS-SSIM), for the MS-SSIM-trained ones.
  Positive: better reconstruction than the pool's rate-distortion line at equal rate. Within a
  family the quality level sets the rate, so raw PSNR rises with it by design; this gain does
  not.
* ``level_family``: ``compressai_{mse|ms-ssim}_level{q}``, every architecture at quality level
  q, a family of its own (the study's ``more_families``).
* Stable Diffusion's VAEs read whole and by part: ``layers`` (a pattern on layer names) keeps a
  row to the autoencoder's own tensors (the kl-f8 Lightning checkpoint also holds the training
  loss's LPIPS and discriminator weights), and two more rows per VAE, ``{key}.encoder`` and
  ``{key}.decoder``, in families ``{family}_encoder``/``_decoder``, read the same file
  (same ``weights``) with the encoder's or the decoder's layers; their quality is the whole
  VAE's.

Run from the repository root: ``python tools/make_study_tables.py [../shared/studies]``.
``tests/test_studies.py`` checks that each committed table equals this script's output and every
quality in it the shared figure.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
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
#: Degree of the pooled rate-distortion curve (distortion in dB against log10 bpp).
RD_DEGREE = 2
#: Layer-name patterns (re.match) of an SD VAE's parts: the autoencoder, its encoder, its decoder.
VAE_PARTS = {
    "": r"(encoder|decoder)\.|(post_)?quant_conv\b",
    "encoder": r"encoder\.|quant_conv\b",
    "decoder": r"decoder\.|post_quant_conv\b",
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
    if study == "autoencoders":
        table = autoencoder_views(table)
    # columns no row fills (an NLP table has no url) are left out
    return table[[c for c in table.columns if (table[c] != "").any()]]


def _objective(family: str) -> str:
    return "ms-ssim" if family.endswith("_ms-ssim") else "mse"


def rd_gain_db(psnr_db: pd.Series, ms_ssim: pd.Series, bpp: pd.Series,
               objective: pd.Series) -> pd.Series:  # fmt: skip
    """Distortion (dB) above the pooled rate-distortion curve of each ``objective``.

    For the codecs of one objective: d = PSNR (``mse``) or −10·log10(1 − MS-SSIM)
    (``ms-ssim``), x = log10(bpp); p the least-squares polynomial of degree
    :data:`RD_DEGREE` d ≈ p(x) over them; the gain is d − p(x), in dB, zero on average per
    objective.
    """
    d = psnr_db.astype(float).where(objective == "mse", -10 * np.log10(1 - ms_ssim.astype(float)))
    x = np.log10(bpp.astype(float))
    gain = pd.Series(np.nan, index=d.index)
    for name in objective.unique():
        pick = objective == name
        coef = np.polyfit(x[pick], d[pick], RD_DEGREE)
        gain[pick] = d[pick] - np.polyval(coef, x[pick])
    return gain


def autoencoder_views(table: pd.DataFrame) -> pd.DataFrame:
    """The autoencoder table with ``rd_gain_db``, ``level_family``, and the SD VAEs' parts (see
    the module docstring)."""
    codec = table["family"].str.startswith("compressai_")
    level = table["model"].str.extract(r"_q(\d+)$")[0]
    objective = table["family"].map(_objective)
    num = {c: pd.to_numeric(table.loc[codec, c]) for c in ("psnr_rgb_db", "ms_ssim_rgb", "bpp")}
    gain = rd_gain_db(num["psnr_rgb_db"], num["ms_ssim_rgb"], num["bpp"], objective[codec])
    gain = gain.reindex(table.index)
    table = table.assign(
        rd_gain_db=[f"{g:.6f}" if c else "" for g, c in zip(gain, codec, strict=True)],
        level_family=[f"compressai_{o}_level{q}" if c else ""
                      for o, q, c in zip(objective, level, codec, strict=True)],
        layers="",
    )  # fmt: skip
    vae = table[table["family"].str.startswith("sd_vae")]
    parts = []
    for part, pattern in VAE_PARTS.items():
        rows = vae.assign(layers=pattern)
        if part:
            rows = rows.assign(model=rows["model"] + f".{part}", label=rows["label"] + f".{part}",
                               family=rows["family"] + f"_{part}")  # fmt: skip
            rows["note"] = rows["note"].map(
                lambda n, p=part: f"the {p} of the VAE alone (layers {VAE_PARTS[p]}); quality"
                f" of the whole VAE; {n}".rstrip("; ")
            )  # fmt: skip
        parts.append(rows)
    out = pd.concat([table[~table.index.isin(vae.index)], *parts], ignore_index=True)
    columns = [c for c in table.columns if c not in ("quality_source", "note")]
    return out[[*columns, "quality_source", "note"]]


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
