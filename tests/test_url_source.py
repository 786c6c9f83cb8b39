"""The url source (htsr.weights.sources.url): a direct download verified by the table's
sha256, by the hash in its file name, or by the hash recorded at its first download, against
a loopback server whose file can change between runs."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

import htsr
from htsr.weights import zoo
from htsr.weights.download import DownloadError
from htsr.weights.sources import url as url_source

sys.path.insert(0, str(Path(__file__).parent))
from zoo_server import serve_zoo  # noqa: E402


def _save(path: Path, seed: int) -> str:
    torch.manual_seed(seed)
    torch.save({"enc.weight": torch.randn(64, 96), "dec.weight": torch.randn(96, 64)}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def server(tmp_path: Path):
    models = tmp_path / "served" / "models"
    models.mkdir(parents=True)
    files = {}
    sha = _save(models / "plain.pth.tar", 0)
    files["plain"] = models / "plain.pth.tar"
    named = models / "tmp.pth"
    prefix = _save(named, 1)[:8]
    files["named"] = named.rename(models / f"codec-3-{prefix}.pth.tar")
    faults: dict[str, str] = {}
    with serve_zoo(files, faults=faults) as base:
        yield base, files, sha, faults


def _row(model: str, url: str, sha256: str = "") -> dict[str, str]:
    return {"model": model, "source": "url", "url": url, "sha256": sha256}


def test_hash_in_the_table(server, tmp_path: Path) -> None:
    base, _, sha, _ = server
    row = _row("plain", f"{base}/plain.pth.tar", sha)
    assert url_source.verified_by(row) == "table sha256"
    dest = zoo.weights_path(row, tmp_path / "w")
    assert dest.name == "plain.pth.tar"
    assert zoo.download_weights(row, dest, retries=0)["sha256"] == sha
    assert len(htsr.analyze(dest)) == 2
    wrong = _row("plain2", f"{base}/plain.pth.tar", "0" * 64)
    with pytest.raises(DownloadError, match="arrived corrupt.*table column sha256"):
        zoo.download_weights(wrong, tmp_path / "w" / "plain2.pth.tar", retries=0)
    assert not (tmp_path / "w" / "plain2.pth.tar").exists()


def test_hash_in_the_file_name(server, tmp_path: Path) -> None:
    base, files, _, faults = server
    row = _row("named", f"{base}/{files['named'].name}")
    assert url_source.verified_by(row) == "hash in file name"
    faults["named"] = "corrupt"
    with pytest.raises(DownloadError, match="arrived corrupt.*from the file name"):
        zoo.download_weights(row, tmp_path / "named.pth.tar", retries=0)
    faults.clear()
    assert zoo.download_weights(row, tmp_path / "named.pth.tar", retries=0)["fetched"]


def test_recorded_at_first_download_then_checked(server, tmp_path: Path) -> None:
    base, files, sha, _ = server
    row = _row("plain", f"{base}/plain.pth.tar")
    assert url_source.verified_by(row) == "recorded at first download"
    dest = tmp_path / "plain.pth.tar"
    first = zoo.download_weights(row, dest, retries=0)
    record = json.loads(url_source.record_path(dest).read_text())
    assert first["fetched"] and record["sha256"] == sha == first["sha256"]
    assert first["verified_by"] == "recorded at first download"
    assert not zoo.download_weights(row, dest, retries=0)["fetched"]  # present and verified
    # the file changes on the server; a rerun that needs it again refuses the new bytes
    _save(files["plain"], 7)
    dest.unlink()
    with pytest.raises(DownloadError, match="arrived corrupt.*recorded at its first download"):
        zoo.download_weights(row, dest, retries=0)
    assert not dest.exists() and url_source.record_path(dest).is_file()
    # a tampered local copy is caught the same way, offline too
    dest.write_bytes(b"not the recorded file")
    with pytest.raises(DownloadError, match="was corrupt"):
        zoo.download_weights(row, dest, offline=True)


def test_bad_url_rows_are_named(tmp_path: Path) -> None:
    from htsr.studies.table import ModelTableError, Quality, read_model_table

    path = tmp_path / "t.tsv"
    path.write_text("model\tfamily\tsource\tset\tnum_params\tquality_source\turl\tq\n"
                    "m\tf\turl\tcore\t10\tx\tweights.pth\t1\n"
                    "n\tf\turl\tcore\t10\tx\thttps://h/x.txt\t1\n")  # fmt: skip
    with pytest.raises(ModelTableError) as err:
        read_model_table(path, quality=[Quality("q")])
    assert "line 2 (model 'm'): a url row needs an absolute URL" in str(err.value)
    assert "line 3" not in str(err.value)  # any name: the file's content tells its format


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("w.th", ".pth"),
        ("w.pt.tar", ".pth"),
        ("w.model", ".pth"),
        ("download", ".pth"),
        ("w.pth.tar", ".pth.tar"),
        ("w.zip", ".zip"),
    ],
)
def test_any_name_is_kept_under_a_known_suffix(name: str, suffix: str) -> None:
    row = _row("m", f"https://host/files/{name}")
    assert url_source.problems(row) == [] and url_source.suffix(row) == suffix
