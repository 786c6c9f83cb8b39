"""The planetoid dataset kind (htsr.datasets.planetoid) on the real Cora files, served from a
loopback server: downloaded with htsr's verified download, pinned by sha256, read by PyTorch
Geometric's own reader, equal to what torch_geometric.datasets.Planetoid gives; a file that does
not match its pin is refused before anything unpickles it."""

from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

from htsr.experiments import datasets
from htsr.weights.download import DownloadError

sys.path.insert(0, str(Path(__file__).parent))
from zoo_server import serve_zoo  # noqa: E402

CORA = Path(__file__).parent / "data" / "planetoid"


class _Marker:
    """A pickle that, when loaded, creates the file ``path`` (it must never be loaded)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _served_files(tmp_path: Path) -> dict[str, Path]:
    models = tmp_path / "served" / "models"  # zoo_server serves a "models" folder by name
    models.mkdir(parents=True)
    files = {}
    for suffix in datasets.PLANETOID_FILES:
        name = f"ind.cora.{suffix}"
        files[name] = Path(shutil.copyfile(CORA / name, models / name))
    return files


def test_cora_is_downloaded_verified_and_read_as_pyg_reads_it(tmp_path: Path, monkeypatch) -> None:
    files = _served_files(tmp_path)
    out, raw = tmp_path / "planetoid-Cora.pt", tmp_path / "raw"
    with serve_zoo(files) as base:
        meta = datasets.prepare({"name": "planetoid", "dataset": "Cora", "url": base}, out, raw)
        assert {model for _, _, status, model in base.requests if status == 200} == set(files)
    data = datasets.load(out)
    # Cora's published statistics (Yang et al. 2016; Kipf & Welling 2017, Table 1)
    assert tuple(data["x"].shape) == (2708, 1433) and meta["classes"] == 7
    assert data["edge_index"].shape[1] == 10556  # 5278 undirected edges, both directions
    masks = [int(data[k].sum()) for k in ("train_mask", "val_mask", "test_mask")]
    assert masks == [140, 500, 1000]
    assert meta["sha256"] == datasets.PLANETOID_SHA256["cora"]
    assert "read_planetoid_data" in meta["source"] and base in meta["source"]
    # the reference: PyTorch Geometric's own Planetoid class on the same raw files
    from torch_geometric.datasets import Planetoid

    ref_root = tmp_path / "pyg"
    shutil.copytree(CORA, ref_root / "Cora" / "raw", ignore=shutil.ignore_patterns("L*", "R*"))
    ref = Planetoid(str(ref_root), "Cora")[0]
    for key in datasets.GRAPH_KEYS:
        assert torch.equal(data[key], getattr(ref, key)), key
    # present and verified: offline, nothing is fetched again
    monkeypatch.setenv("HTSR_OFFLINE", "1")
    again = datasets.prepare({"name": "planetoid", "dataset": "Cora"}, tmp_path / "b.pt", raw)
    assert again == meta | {"source": again["source"]}
    assert torch.equal(datasets.load(tmp_path / "b.pt")["edge_index"], data["edge_index"])


def test_a_file_that_does_not_match_its_pin_is_never_unpickled(tmp_path: Path, monkeypatch) -> None:
    files = _served_files(tmp_path)
    marker = tmp_path / "code-ran"
    files["ind.cora.graph"].write_bytes(pickle.dumps(_Marker(marker)))
    out, raw = tmp_path / "planetoid-Cora.pt", tmp_path / "raw"
    with serve_zoo(files) as base:
        spec = {"name": "planetoid", "dataset": "Cora", "url": base}
        with pytest.raises(DownloadError, match=r"ind\.cora\.graph arrived corrupt"):
            datasets.prepare(spec, out, raw)
    assert not marker.exists() and not out.exists()
    assert not (raw / "planetoid" / "ind.cora.graph").exists()
    # a tampered file already on disk: removed, and offline there is nothing to replace it
    for name in files:
        shutil.copyfile(CORA / name, raw / "planetoid" / name)
    (raw / "planetoid" / "ind.cora.x").write_bytes(pickle.dumps(_Marker(marker)))
    monkeypatch.setenv("HTSR_OFFLINE", "1")
    with pytest.raises(
        DownloadError,
        match=r"offline, and .*ind\.cora\.x was corrupt .*"
        r"expected sha256 23cfa55d.* \(pinned in htsr\.experiments\.datasets\.PLANETOID_SHA256",
    ):
        datasets.prepare({"name": "planetoid", "dataset": "Cora"}, out, raw)
    assert not marker.exists() and not out.exists()
    assert not (raw / "planetoid" / "ind.cora.x").exists()  # removed


def test_a_graph_without_pins_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"planetoid PubMed: no sha256 for ind\.pubmed\.\{x,tx,"):
        datasets.prepare({"name": "planetoid", "dataset": "PubMed"}, tmp_path / "p.pt", tmp_path)
    assert not (tmp_path / "p.pt").exists()
