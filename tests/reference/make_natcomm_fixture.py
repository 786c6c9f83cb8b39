"""Regenerate ``natcomm_ww027_models.tsv``: the authors' own per-model WeightWatcher 0.2.7 values.

The Nat. Commun. 2021 tables were computed from per-model summaries that WeightWatcher 0.2.7
wrote into the paper's repository, CalculatedContent/ww-trends-2020 (commit ``efe4723213``):

* ``data/{vgg11,...,densenet201}.txt`` — a Python dict per torchvision model (Table 1 VGG, ResNet
  and DenseNet rows), **labelled as the authors labelled them** (the DenseNet files are permuted:
  ``densenet169.txt`` holds densenet161's layers, and so on; the fixture keeps the file labels);
* ``data/resnet-1k/*.txt`` — the 19 OSMR ResNets of the Table 1 "ResNet-1K" row;
* ``data/osmr/df_all.csv`` — the January 2020 run over the OSMR store (SI tables), of which the
  fixture keeps the ImageNet-1K models (names without a dataset suffix).

Each output row holds the four summary metrics the tables regress on, under WeightWatcher 0.2.7's
names mapped to ours (``lognorm`` → ``log_norm``, ``logspectralnorm`` → ``log_spectral_norm``,
``alpha_weighted``, ``logpnorm`` → ``log_alpha_norm``) plus ``spectralnorm`` (the mean λmax,
whose natural log the SI's "log spectral norm" column used). No accuracies: those come from the
model table. Usage (the snapshot is a bare git directory, e.g. from the search tool's ``fetch``)::

    python tests/reference/make_natcomm_fixture.py /path/to/ww-trends-2020.git

writes ``tests/reference/natcomm_ww027_models.tsv`` next to this script.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path

import pandas as pd

COMMIT = "efe472321357d1257d3bc731e94646923d733480"
REPO = "CalculatedContent/ww-trends-2020"
OUT = Path(__file__).with_name("natcomm_ww027_models.tsv")
TV_FILES = [
    *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
    *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
    *(f"densenet{d}" for d in (121, 161, 169, 201)),
]
TXT_KEYS = {
    "log_norm": "lognorm",
    "log_spectral_norm": "logspectralnorm",
    "alpha_weighted": "alpha_weighted",
    "log_alpha_norm": "logpnorm",
    "spectral_norm": "spectralnorm",
}
#: df_all names with one of these suffixes are not ImageNet-1K models
DATASET_SUFFIXES = (
    "_cifar10",
    "_cifar100",
    "_svhn",
    "_cub",
    "_voc",
    "_coco",
    "_ade20k",
    "_cityscapes",
)


def _show(git_dir: Path, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{COMMIT}:{path}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def _ls(git_dir: Path, folder: str) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "--name-only", f"{COMMIT}:{folder}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return sorted(out.split())


def _txt_row(git_dir: Path, path: str, model: str) -> dict[str, object]:
    summary = ast.literal_eval(_show(git_dir, path))
    row: dict[str, object] = {"data_file": path, "model": model}
    row.update({ours: float(summary[theirs]) for ours, theirs in TXT_KEYS.items()})
    return row


def main(argv: list[str]) -> int:
    git_dir = Path(argv[1])
    rows = [_txt_row(git_dir, f"data/{name}.txt", name) for name in TV_FILES]
    for name in _ls(git_dir, "data/resnet-1k"):
        if name.endswith(".txt"):
            rows.append(_txt_row(git_dir, f"data/resnet-1k/{name}", name[: -len(".txt")]))
    df_all = pd.read_csv(io.StringIO(_show(git_dir, "data/osmr/df_all.csv")))
    imagenet = df_all[~df_all["modelname"].str.endswith(DATASET_SUFFIXES)]
    for _, rec in imagenet.sort_values("modelname").iterrows():
        row: dict[str, object] = {"data_file": "data/osmr/df_all.csv", "model": rec["modelname"]}
        row.update({ours: float(rec[theirs]) for ours, theirs in TXT_KEYS.items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    header = (
        f"# {REPO}@{COMMIT}: WeightWatcher 0.2.7 per-model summaries (make_natcomm_fixture.py)\n"
    )
    with open(OUT, "w") as fh:
        fh.write(header)
        table.to_csv(fh, sep="\t", index=False, float_format="%.10g")
    print(f"wrote {OUT}: {len(table)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
