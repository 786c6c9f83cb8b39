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
* ``planetoid``: ``torch_geometric.datasets.Planetoid(root, spec["dataset"])`` (Cora, CiteSeer,
  PubMed) with its public split; ``x`` float32, ``edge_index``, ``y``, boolean
  ``train_mask``/``val_mask``/``test_mask``. ``meta``: ``kind: graph``, ``features``,
  ``classes``.
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

__all__ = ["IMAGE_KEYS", "GRAPH_KEYS", "load", "planted_partition", "prepare", "validate"]

IMAGE_KEYS = ("x_train", "y_train", "x_test", "y_test")
GRAPH_KEYS = ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask")


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
        from torch_geometric.datasets import Planetoid

        data = Planetoid(str(root), spec["dataset"])[0]
        out = {k: getattr(data, k) for k in GRAPH_KEYS}
        source = f"torch_geometric.datasets.Planetoid({spec['dataset']})"
        out["meta"] = {"kind": "graph", "features": int(data.num_features),
                       "classes": int(data.y.max()) + 1, "source": source}  # fmt: skip
        return out
    if name == "file":
        return load(spec["path"])
    raise ValueError(
        f"unknown dataset {name!r} (cifar10, mnist, digits, planetoid, planted_partition, file)"
    )


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
