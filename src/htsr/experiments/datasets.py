"""The datasets of the controlled experiments, prepared once into one tensor file each.

:func:`prepare` fetches a dataset with its library's own loader and writes it, atomically, as
one ``torch.save`` dict of tensors plus a ``meta`` dict, read back with torch's
``weights_only`` loader (:func:`load`). Training jobs read only that file, so compute nodes
need no network (the pipeline's dataset rule is a ``localrule``).

Kinds (``spec["name"]``):

* ``cifar10``, ``mnist``: ``torchvision.datasets.CIFAR10`` / ``MNIST`` (``download=True`` into
  ``root``); images as uint8 ``(n, channels, size, size)``, labels int64, the official
  train/test split. ``meta``: ``kind: images``, ``channels``, ``size``, ``classes``, ``mean``,
  ``std`` (per channel, of the training images in [0, 1]).
* ``planetoid``: the Planetoid citation graphs (``spec["dataset"]``: Cora, CiteSeer) with
  their public split, as ``torch_geometric.datasets.Planetoid`` gives them: the eight raw files
  ``ind.{name}.{x,tx,allx,y,ty,ally,graph,test.index}`` from PyG's source
  (:data:`PLANETOID_URL`, or a mirror ``spec["url"]``) are downloaded one by one with
  :func:`htsr.weights.download.download` (retries, atomic placement, ``HTSR_OFFLINE=1`` uses only
  present files) and each is checked against its pinned sha256 (:data:`PLANETOID_SHA256`)
  *before* PyG's ``read_planetoid_data`` unpickles it: six of them are pickles, and a pickle
  that does not match runs nothing. Another Planetoid graph (PubMed) needs the sha256 of each of
  its files in ``spec["sha256"]`` (file suffix → hex). ``x`` float32, ``edge_index``, ``y``,
  boolean ``train_mask``/``val_mask``/``test_mask``. ``meta``: ``kind: graph``, ``features``,
  ``classes``, ``sha256`` of the raw files.
* ``digits``: scikit-learn's bundled 8×8 handwritten digits (``sklearn.datasets.load_digits``:
  1,797 images, 10 classes, 16 grey levels scaled to 0–255), split 75/25 by a permutation
  seeded with 0. Real data that needs no download: a smoke run on a machine without network.
* ``planted_partition``: a synthetic graph with planted communities (a stochastic block
  model): ``nodes`` nodes (2708) in ``classes`` classes (7), ``10·nodes`` random edges kept
  when both ends share a class or with probability 1 − ``within`` (0.8) otherwise, made
  undirected; ``features`` (1433) Gaussian features around a random centre per class (0.4 × the
  centre + unit noise); 80 training, 80 validation nodes, the rest test; ``seed`` (0). Offline
  runs and tests; not a benchmark.
* ``file``: an already prepared file at ``spec["path"]`` (the same format; e.g. the tests'
  synthetic data), checked and copied.

The file also records ``meta["source"]``: what was fetched, so the provenance can say it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from htsr.io import atomic_output
from htsr.weights.download import WeightsSource, download

__all__ = [
    "IMAGE_KEYS", "GRAPH_KEYS", "PLANETOID_SHA256", "PLANETOID_URL", "load", "planetoid",
    "planted_partition", "prepare", "validate",
]  # fmt: skip

IMAGE_KEYS = ("x_train", "y_train", "x_test", "y_test")
GRAPH_KEYS = ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask")

#: Where ``torch_geometric.datasets.Planetoid`` downloads the raw files from (its ``url``):
#: Yang, Cohen & Salakhutdinov's repository, whose ``master`` has not changed since 2016.
PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"

#: The raw files of one Planetoid graph, ``ind.{name}.{suffix}``.
PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")

#: sha256 of each raw file, from kimiyoung/planetoid at commit af6abf4 (2016-09-28), the
#: ``master`` that :data:`PLANETOID_URL` serves.
PLANETOID_SHA256: dict[str, dict[str, str]] = {
    "cora": {
        "x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
        "tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
        "allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
        "y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
        "ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
        "ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
        "graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
        "test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    },
    "citeseer": {
        "x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
        "tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
        "allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
        "y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
        "ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
        "ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
        "graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
        "test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    },
}


def _images(train: Any, test: Any, name: str) -> dict[str, Any]:
    def arrays(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(ds.data)
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (n, c, h, w)
        return x.to(torch.uint8).contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64)

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(test)
    scaled = x_train.double() / 255.0
    meta = {"kind": "images", "channels": int(x_train.shape[1]), "size": int(x_train.shape[2]),
            "classes": int(y_train.max()) + 1, "source": name,
            "mean": scaled.mean((0, 2, 3)).tolist(),
            "std": scaled.std((0, 2, 3)).tolist()}  # fmt: skip
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "meta": meta}  # fmt: skip


def _fetch(spec: Mapping[str, Any], root: Path) -> dict[str, Any]:
    name = spec["name"]
    if name in ("cifar10", "mnist"):
        import torchvision.datasets as tvd

        cls = tvd.CIFAR10 if name == "cifar10" else tvd.MNIST
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
        return _images(train, test, f"torchvision.datasets.{cls.__name__}")
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.as_tensor(bunch.images * 255.0 / 16.0).round().clamp(0, 255).to(torch.uint8)
        y = torch.as_tensor(bunch.target, dtype=torch.int64)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        cut = int(0.75 * len(y))

        class _Split:
            def __init__(self, idx: torch.Tensor) -> None:
                self.data, self.targets = x[idx], y[idx]

        return _images(_Split(order[:cut]), _Split(order[cut:]), "sklearn.datasets.load_digits")
    if name == "planted_partition":
        keys = ("nodes", "features", "classes", "within", "seed")
        return planted_partition(**{k: spec[k] for k in keys if k in spec})
    if name == "planetoid":
        return planetoid(spec["dataset"], root / "planetoid", url=spec.get("url") or PLANETOID_URL,
                         sha256=spec.get("sha256"))  # fmt: skip
    if name == "file":
        return load(spec["path"])
    raise ValueError(
        f"unknown dataset {name!r} (cifar10, mnist, digits, planetoid, planted_partition, file)"
    )


def planetoid(
    dataset: str, raw_dir: str | os.PathLike[str], *, url: str = PLANETOID_URL,
    sha256: Mapping[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A Planetoid graph with its public split, from verified raw files (module docstring).

    The files go to ``raw_dir`` (a present file that verifies is kept); each must match its
    sha256 (:data:`PLANETOID_SHA256`, or ``sha256``) before PyTorch Geometric's
    ``read_planetoid_data`` reads it. Raises ``ValueError`` for a graph without checksums and
    :class:`htsr.weights.download.DownloadError` naming the file that does not verify.
    """
    from torch_geometric.io import read_planetoid_data

    key = dataset.lower()
    pins = dict(sha256 or PLANETOID_SHA256.get(key, {}))
    pin = "the dataset's sha256 mapping" if sha256 else "pinned in htsr.datasets.PLANETOID_SHA256"
    missing = [suffix for suffix in PLANETOID_FILES if suffix not in pins]
    if missing:
        raise ValueError(
            f"planetoid {dataset}: no sha256 for ind.{key}.{{{','.join(missing)}}}; pinned:"
            f" {sorted(PLANETOID_SHA256)} (give the others as the dataset's sha256 mapping)"
        )
    raw_dir = Path(raw_dir)
    for suffix in PLANETOID_FILES:
        filename = f"ind.{key}.{suffix}"
        src = WeightsSource(model=f"planetoid {dataset}", kind="url",
                            url=f"{url.rstrip('/')}/{filename}",
                            expected_sha256=pins[suffix], pin=pin)  # fmt: skip
        download(src, raw_dir / filename)
    data = read_planetoid_data(str(raw_dir), key)
    out = {k: getattr(data, k) for k in GRAPH_KEYS}
    out["meta"] = {
        "kind": "graph", "features": int(data.num_features), "classes": int(data.y.max()) + 1,
        "source": f"Planetoid {dataset} (public split) from {url},"
                  " read by torch_geometric.io.read_planetoid_data",
        "sha256": {suffix: pins[suffix] for suffix in PLANETOID_FILES},
    }  # fmt: skip
    return out


def planted_partition(nodes: int = 2708, features: int = 1433, classes: int = 7,
                      within: float = 0.8, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """The ``planted_partition`` graph (see the module docstring), as a prepared dataset."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (nodes,), generator=g)
    centres = torch.randn(classes, features, generator=g)
    x = 0.4 * centres[y] + torch.randn(nodes, features, generator=g)
    src = torch.randint(0, nodes, (nodes * 10,), generator=g)
    dst = torch.randint(0, nodes, (nodes * 10,), generator=g)
    keep = (y[src] == y[dst]) | (torch.rand(nodes * 10, generator=g) > within)
    edges = torch.stack([src[keep], dst[keep]])
    edges = torch.cat([edges, edges.flip(0)], 1)
    order = torch.randperm(nodes, generator=g)
    masks = [torch.zeros(nodes, dtype=torch.bool) for _ in range(3)]
    for mask, part in zip(masks, (order[:80], order[80:160], order[160:]), strict=True):
        mask[part] = True
    meta = {"kind": "graph", "features": features, "classes": classes,
            "source": f"htsr.datasets.planted_partition(nodes={nodes}, features={features},"
                      f" classes={classes}, within={within}, seed={seed})"}  # fmt: skip
    return {"x": x, "edge_index": edges, "y": y, "train_mask": masks[0], "val_mask": masks[1],
            "test_mask": masks[2], "meta": meta}  # fmt: skip


def validate(data: Mapping[str, Any], where: str = "dataset") -> None:
    """``ValueError`` naming ``where`` and the problem unless ``data`` is a prepared dataset."""
    meta = data.get("meta")
    if not isinstance(meta, Mapping) or meta.get("kind") not in ("images", "graph"):
        raise ValueError(f"{where}: no meta with kind images or graph")
    keys = IMAGE_KEYS if meta["kind"] == "images" else GRAPH_KEYS
    missing = [k for k in keys if not isinstance(data.get(k), torch.Tensor)]
    if missing:
        raise ValueError(f"{where}: missing tensor(s) {missing}")
    if meta["kind"] == "images":
        for split in ("train", "test"):
            x, y = data[f"x_{split}"], data[f"y_{split}"]
            if x.ndim != 4 or len(x) != len(y):
                raise ValueError(f"{where}: x_{split} {tuple(x.shape)} and y_{split}"
                                 f" {tuple(y.shape)} do not fit (n, c, h, w) and (n,)")  # fmt: skip
    else:
        n = data["x"].shape[0]
        if data["edge_index"].shape[0] != 2 or int(data["edge_index"].max()) >= n:
            raise ValueError(f"{where}: edge_index is not (2, E) over {n} nodes")


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A prepared dataset file (torch's ``weights_only`` loader: nothing in it runs)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    validate(data, str(path))
    return data


def prepare(spec: Mapping[str, Any], out: str | os.PathLike[str],
            root: str | os.PathLike[str] = "resources/datasets/raw") -> dict[str, Any]:  # fmt: skip
    """Fetch the dataset ``spec`` (downloads go to ``root``) and write it to ``out``
    atomically; returns its ``meta``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if spec["name"] == "file":
        data = load(spec["path"])
        with atomic_output(out) as tmp:
            shutil.copyfile(spec["path"], tmp)
        return dict(data["meta"])
    data = _fetch(spec, root)
    validate(data, f"dataset {spec['name']}")
    with atomic_output(out) as tmp:
        torch.save(data, tmp)
    return dict(data["meta"])
