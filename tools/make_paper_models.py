"""Build ``config/studies/imagenet_paper.tsv``: the two papers' own models, with the accuracies
they used.

Reads the curated tables in ``../shared/paper/`` (every value there names its source line) and
writes one model-table row per model and model set:

``paper2019``
    Martin & Mahoney, SDM 2020 (arXiv 1901.08278v1): the 8 torchvision VGGs of Table 1 / Fig. 3
    (accuracies from the Cadene list the 2019 notebook used), the 15 OSMR ResNets of Table 2 /
    Fig. 4 and the 38 OSMR models of appendix Table 3 (2018 weights, ``osmr_modelnames``
    accuracies), and the torchvision DenseNets and SqueezeNets of appendix Fig. ``models_more_0``.
``natcomm2021``
    Martin, Peng & Mahoney, Nat. Commun. 2021, Table 1: torchvision VGG (8), ResNet (5) and
    DenseNet (4) with the notebooks' top-1 errors, and the 19 OSMR ResNet-1K models with their
    January 2020 weights and the errors of the OSMR README of pytorchcv 0.0.54.
``natcomm2021_osmr``
    The 126 OSMR ImageNet-1K models of the Nat. Commun. large-scale analysis (SI tables), in its
    13 families, January 2020 weights, accuracies of the OSMR README of 2021-01-08.
``osmr``
    Today's OSMR store for the same families (227 models, today's weights and accuracies).

torchvision rows name the weight files of the time (torchvision 0.4's ``model_urls``, which the
papers' ``pretrained=True`` calls downloaded), not the re-saved files of today's enums.
Run from the repository root: ``python tools/make_paper_models.py [../shared/paper]``.
``tests/test_paper_models.py`` checks that the committed table equals this script's output.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "config" / "studies" / "imagenet_paper.tsv"
COLUMNS = [
    "model", "family", "model_id", "source", "weights_tag", "top1", "top5", "num_params",
    "eval_res", "set", "quality_source", "url", "sha256", "sha1", "weights", "label", "note",
]  # fmt: skip

#: torchvision 0.4 (2019) ``model_urls``: the files ``models.<name>(pretrained=True)`` fetched.
TV_URLS = {
    "vgg11": "vgg11-bbd30ac9.pth", "vgg13": "vgg13-c768596a.pth", "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth", "vgg11_bn": "vgg11_bn-6002323d.pth",
    "vgg13_bn": "vgg13_bn-abd245e5.pth", "vgg16_bn": "vgg16_bn-6c64b313.pth",
    "vgg19_bn": "vgg19_bn-c79401a0.pth", "resnet18": "resnet18-5c106cde.pth",
    "resnet34": "resnet34-333f7ec4.pth", "resnet50": "resnet50-19c8e357.pth",
    "resnet101": "resnet101-5d3b4d8f.pth", "resnet152": "resnet152-b121ed2d.pth",
    "densenet121": "densenet121-a639ec97.pth", "densenet161": "densenet161-8d451a50.pth",
    "densenet169": "densenet169-b2777c0a.pth", "densenet201": "densenet201-c1103571.pth",
    "squeezenet1_0": "squeezenet1_0-a815701f.pth", "squeezenet1_1": "squeezenet1_1-f364aa15.pth",
}  # fmt: skip
TV_BASE = "https://download.pytorch.org/models/"
TV_FAMILY = {
    "MM2019": {"vgg": "VGG", "densenet": "DenseNet (torchvision)",
               "squeezenet": "SqueezeNet (torchvision)"},
    "NatCommun": {"vgg": "VGG", "resnet": "ResNet", "densenet": "DenseNet"},
}  # fmt: skip
#: the blocks of the SI regressions (``used_in``) → the series names the SI tables print
NC_FAMILIES = {
    "VGG/BN-VGG": "VGG", "DRN-C/DRN-D": "DRN-C", "SqueezeNext/SqNxt": "SqueezeNext",
    "SqueezeNet/SqueezeResNet": "SqueezeNet",
}  # fmt: skip
README_0054 = re.compile(
    r"README@pytorchcv0\.0\.54 \(([0-9a-f]+)\) top1/top5 ([\d.]+)/([\d.]+) (L\d+)"
)


def _acc(err: float) -> float:
    return round(100.0 - float(err), 3)


def _tv_rows(shared: Path) -> list[dict[str, object]]:
    import torchvision.models

    used = pd.read_csv(shared / "torchvision_models_used.tsv", sep="\t")
    rows = []
    for rec in used.itertuples():
        arch = re.sub(r"\d.*$", "", rec.model_id)
        family = TV_FAMILY[rec.paper].get(arch)
        if family is None or "not in paper" in rec.figure_or_table:
            continue  # the 2019 notebook's torchvision ResNets: computed, not in the paper
        set_name = "paper2019" if rec.paper == "MM2019" else "natcomm2021"
        errors = "ERROR" in rec.value_kind
        weights = torchvision.models.get_model_weights(rec.model_id)["IMAGENET1K_V1"]
        file = TV_URLS[rec.model_id]
        rows.append({
            "model": f"{set_name}.tv.{rec.model_id}",
            "family": family,
            "model_id": rec.model_id,
            "source": "torchvision",
            "weights_tag": f"{type(weights).__name__}.IMAGENET1K_V1",
            "top1": _acc(rec.top1) if errors else rec.top1,
            "top5": _acc(rec.top5) if errors else rec.top5,
            "num_params": weights.meta["num_params"],
            "eval_res": 224,
            "set": set_name,
            "quality_source": rec.source,
            "url": TV_BASE + file,
            "weights": file.removesuffix(".pth"),
            "label": rec.model_id,
            "note": "" if pd.isna(rec.notes) else rec.notes,
        })  # fmt: skip
    return rows


def _osmr_row(rec: pd.Series, set_name: str, key: str, family: str) -> dict[str, object]:
    file = rec["url"].rsplit("/", 1)[-1]
    return {
        "model": key,
        "family": family,
        "model_id": rec["model_id"],
        "source": "pytorchcv",
        "weights_tag": rec["release_tag"],
        "top1": _acc(rec["top1_err"]),
        "top5": _acc(rec["top5_err"]),
        "num_params": int(rec["num_params"]),
        "eval_res": "",
        "set": set_name,
        "quality_source": rec["accuracy_source"],
        "url": rec["url"],
        "sha1": rec["sha1"],
        "weights": file.removesuffix(".pth.zip"),
        "label": rec["model_id"],
        "note": "" if pd.isna(rec.get("notes")) else rec["notes"],
    }


def _osmr_rows(shared: Path) -> list[dict[str, object]]:
    era = pd.read_csv(shared / "pytorchcv_models_paper_era.tsv", sep="\t")
    rows = []
    mm = era[era["snapshot"].str.startswith("MM2019")]
    for _, rec in mm.iterrows():
        if rec["used_in"].startswith("MM2019 Table 2"):
            family = "ResNet"
        else:
            block = re.search(r'block "([^"]+)"', rec["used_in"])
            if block is None:
                continue  # computed in the 2019 notebook but in no table or figure
            family = block.group(1).replace(" (counterexample)", "")
        rows.append(_osmr_row(rec, "paper2019", f"paper2019.osmr.{rec['model_id']}", family))
    nc = era[era["snapshot"].str.startswith("NatCommun")]
    for _, rec in nc.iterrows():  # Table 1 ResNet-1K: the errors of the 0.0.54 README
        if not rec["used_in"].startswith("NatCommun Table 1 ResNet-1K"):
            continue
        match = README_0054.search(rec["notes"])
        assert match is not None, rec["model_id"]
        commit, top1_err, top5_err, line = match.groups()
        rec = rec.copy()
        rec["top1_err"], rec["top5_err"] = float(top1_err), float(top5_err)
        rec["accuracy_source"] = (
            f"osmr/imgclsmob@{commit}:pytorch/README.md {line} (README of pytorchcv 0.0.54,"
            " 2020-01-16; the errors Nat. Commun. Table 1 used)"
        )
        rec["notes"] = ""
        rows.append(
            _osmr_row(rec, "natcomm2021", f"natcomm2021.osmr.{rec['model_id']}", "ResNet-1K")
        )
    for _, rec in nc.iterrows():  # SI: 13 families, README of 2021-01-08
        block = re.search(r'large-scale imagenet-1k regression "([^"]+)"', rec["used_in"])
        if block is None:
            continue  # outliers and models of families without an ImageNet-1K regression
        family = NC_FAMILIES.get(block.group(1), block.group(1))
        key = f"natcomm2021_osmr.osmr.{rec['model_id']}"
        rows.append(_osmr_row(rec, "natcomm2021_osmr", key, family))
    today = pd.read_csv(shared / "pytorchcv_models.tsv", sep="\t")
    for _, rec in today.iterrows():
        rows.append(_osmr_row(rec, "osmr", f"osmr.{rec['model_id']}", rec["family"]))
    return rows


def build(shared: Path) -> pd.DataFrame:
    table = pd.DataFrame(_tv_rows(shared) + _osmr_rows(shared))
    for column in COLUMNS:
        if column not in table.columns:
            table[column] = ""
    return table[COLUMNS].fillna("")


def main(argv: list[str]) -> int:
    shared = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "paper"
    table = build(shared)
    table.to_csv(OUT, sep="\t", index=False)
    counts = table.groupby("set", sort=False).size().to_dict()
    print(f"wrote {OUT}: {len(table)} rows {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
