"""Controlled experiments: grids, architectures, deterministic and resumable training, the
capsule layer's spectra, and the experiment studies end to end on synthetic data (offline)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

import htsr
import htsr.studies.table
from htsr.experiments import datasets, nets, train
from htsr.experiments import grids as experiments
from htsr.experiments.grids import grid_table, quality_from_results
from htsr.spectral.metrics import analyze
from htsr.studies import study as studies
from htsr.studies import summary
from htsr.studies.table import select_layers

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / ".test" / "config"
EXPERIMENTS = ("cnn_batch_size", "gnn", "capsnet")
#: The studies the four questions added, trained in the end-to-end run on slices of real data
REAL = ("autoencoders_trained", "segmentation_trained", "nlp_trained")
SMALL_CNN = {"epochs": 2, "batch_size": 32, "conv_width": 16, "fc_widths": [64, 64]}


def _study(name: str, root: Path = ROOT / "config") -> studies.Study:
    return studies.read_study(root / "studies" / f"{name}.yaml")


GRIDS = [
    ("cnn_batch_size", 18, 4),
    ("gnn", 69, 16),
    ("gnn_citeseer", 66, 16),
    ("capsnet", 30, 8),
    ("autoencoders_trained", 54, 12),
    ("segmentation_trained", 30, 8),
    ("nlp_trained", 30, 8),
]


@pytest.mark.parametrize(("name", "default", "quick"), GRIDS)
def test_grids_are_declared_in_the_study(name: str, default: int, quick: int) -> None:
    study = _study(name)
    full, smoke = study.read_table("default"), study.read_table("quick")
    assert len(full) == default and len(smoke) == quick
    assert full["model"].is_unique and (full["source"] == "trained").all()
    assert full[study.headline].isna().all()  # quality comes from training
    named = {f["name"] for f in study.experiment["families"] if f.get("name")}
    for rec in full.itertuples():
        hp = json.loads(rec.hyperparameters)
        assert hp[rec.vary] == rec.setting
        # a family is {architecture}_{vary} unless its YAML names it (gnn's gcn_deep)
        assert rec.family.startswith(rec.architecture)
        assert rec.family.endswith(rec.vary) or rec.family in named
    assert (full.groupby(["family", "setting"]).size() >= 3).all()  # at least 3 seeds
    assert (full.groupby("family")["setting"].nunique() >= 5).all()  # at least 5 settings
    spec = study.experiment
    quick_fixed = (spec.get("quick") or {}).get("fixed") or {}
    for key, value in quick_fixed.items():  # except where a family varies it
        assert all(json.loads(r.hyperparameters)[key] == value
                   for r in smoke.itertuples() if r.vary != key)  # fmt: skip
    with pytest.raises(ValueError, match="experiment_grid"):
        study.read_table("huge")


def test_gnn_widths_give_spectra_long_enough_to_fit() -> None:
    """Every hidden GCN/GAT weight matrix of the default grid has >= 50 on its smaller side, at
    every depth; the output layer is analysed but left out by the `layers` pattern."""
    meta = {"kind": "graph", "features": 1433, "classes": 7}  # Cora
    grid = _study("gnn").read_table()
    for rec in grid.drop_duplicates(["architecture", "hyperparameters"]).itertuples():
        hp = json.loads(rec.hyperparameters)
        if rec.vary != "depth" and hp != json.loads(grid.iloc[0].hyperparameters):
            continue
        model = nets.build(rec.architecture, meta, hp)
        for source in (model, model.state_dict()):  # PyG's own Linear, found either way
            table = htsr.analyze(source)
            hidden = htsr.studies.table.select_layers(table, rec.layers)
            assert len(hidden) == hp["depth"] - 1 and (hidden["M"] >= 128).all(), table
            assert len(table) == hp["depth"]  # and the classes x 128 output layer


def test_quality_from_results() -> None:
    rows = pd.DataFrame({"model": ["a", "b"], "weights": ["a", "b"], "test_acc": [np.nan] * 2})
    out = quality_from_results(rows, {"a": {"test_acc": 81.5, "gap": 3.0}}, ["test_acc", "gap"])
    assert out["test_acc"].tolist()[0] == 81.5 and np.isnan(out["test_acc"].tolist()[1])
    assert out["gap"].tolist()[0] == 3.0


def test_capsule_transform_is_one_matrix_per_output_capsule() -> None:
    meta = {"kind": "images", "channels": 1, "size": 28, "classes": 10}
    model = nets.build("capsnet", meta, {})
    w = model.digit_caps.capsule_weight  # (in_caps, out_caps, out_dim, in_dim)
    assert tuple(w.shape) == (576, 10, 16, 8)
    for convention in ("paper", "ww"):
        for source in (model, model.state_dict()):
            table = htsr.analyze(source, convention=convention)
            caps = table[table["layer"] == "digit_caps.capsule_weight"]
            assert (caps["layer_type"] == "capsule").all()
            assert len(caps) == (10 if convention == "paper" else 1)
            assert set(zip(caps["N"], caps["M"], strict=True)) == {(576, 128)}
    # the matrix of output capsule j holds W[:, j] with the input capsules as rows
    from htsr.spectral.matrices import LayerWeight, layer_matrices

    stack = layer_matrices(LayerWeight("digit_caps.capsule_weight", "capsule", w.detach()))
    torch.testing.assert_close(stack.matrices[3], w.detach()[:, 3].reshape(576, 128))


def test_nets_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'resnet'.*mini_alexnet"):
        nets.build("resnet", {"kind": "images"}, {})
    with pytest.raises(ValueError, match="gcn trains on graph"):
        nets.build("gcn", {"kind": "images"}, {})


def test_dataset_files_are_validated_naming_the_file(tmp_path: Path) -> None:
    good = tmp_path / "images.pt"
    torch.save(synthetic.images(n=64), good)
    out = tmp_path / "prepared.pt"
    meta = datasets.prepare({"name": "file", "path": str(good)}, out, root=tmp_path / "raw")
    assert meta["kind"] == "images" and out.read_bytes() == good.read_bytes()
    bad = synthetic.images(n=64)
    bad["y_train"] = bad["y_train"][:10]
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: x_train .* do not fit"):
        datasets.load(tmp_path / "bad.pt")
    digits = datasets.prepare({"name": "digits"}, tmp_path / "digits.pt", root=tmp_path / "raw")
    loaded = datasets.load(tmp_path / "digits.pt")
    assert digits["size"] == 8 and digits["classes"] == 10
    assert len(loaded["y_train"]) == 1347 and len(loaded["y_test"]) == 450
    assert loaded["x_train"].shape[1:] == (1, 8, 8) and int(loaded["x_train"].max()) == 255
    planted = datasets.planted_partition(nodes=300, features=60, classes=3, seed=2)
    datasets.validate(planted)
    y, (src, dst) = planted["y"], planted["edge_index"]
    assert (y[src] == y[dst]).float().mean() > 0.5  # communities: most edges within a class
    train_nodes, test_nodes = planted["train_mask"], planted["test_mask"]
    assert int(train_nodes.sum()) == 80 and not (train_nodes & test_nodes).any()
    with pytest.raises(ValueError, match="unknown dataset 'imagenet21k'"):
        datasets.prepare({"name": "imagenet21k"}, tmp_path / "x.pt", root=tmp_path / "raw")


@pytest.mark.parametrize(("arch", "data", "hp"), [
    ("mini_alexnet", "images", SMALL_CNN),
    ("gcn", "graph", {"epochs": 20, "optimizer": "adam", "hidden": 64}),
    ("gat", "graph", {"epochs": 20, "optimizer": "adam", "hidden": 64, "heads": 4}),
    ("capsnet", "images", {"epochs": 1, "batch_size": 32, "conv_channels": 16,
                           "primary_caps": 4, "kernel": 5, "optimizer": "adam"}),
])  # fmt: skip
def test_same_seed_gives_bit_identical_checkpoints(arch: str, data: str, hp: dict) -> None:
    dataset = synthetic.images(n=256) if data == "images" else synthetic.graph()
    torch.set_num_threads(1)
    first, result = train.train(arch, hp, dataset, seed=3)
    again, _ = train.train(arch, hp, dataset, seed=3)
    other, _ = train.train(arch, hp, dataset, seed=4)
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert 0 <= result["test_acc"] <= 100 and 0 <= result["train_acc"] <= 100
    assert result["gap"] == pytest.approx(result["train_acc"] - result["test_acc"])
    assert result["curve"] and result["curve"][-1]["epoch"] == hp["epochs"]


KILLED_RUN = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, sys.argv[1])
    import synthetic
    from htsr.experiments import train
    torch.set_num_threads(1)
    hp = {"epochs": 8, "batch_size": 16, "conv_width": 16, "fc_widths": [64, 64]}
    train.train("mini_alexnet", hp, synthetic.images(n=512), seed=5, state_path=sys.argv[2])
    """
)


def test_killed_training_resumes_to_the_same_result(tmp_path: Path) -> None:
    """SIGKILL a training run after some epochs; the rerun resumes from the last epoch saved
    and ends bit-identical to a run that was never interrupted."""
    state = tmp_path / "model.resume.pt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(Path(__file__).parent),
                             str(state)], start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    saved = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file():
                try:
                    saved = torch.load(state, weights_only=True)["epoch"]
                except Exception:  # noqa: BLE001 - replaced atomically, may vanish in between
                    saved = 0
                if saved >= 2:
                    break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert 2 <= saved < 8, f"the run was not caught mid-way (epoch {saved})"
    hp = {"epochs": 8, "batch_size": 16, "conv_width": 16, "fc_widths": [64, 64]}
    data = synthetic.images(n=512)
    torch.set_num_threads(1)
    messages: list[str] = []
    resumed, result = train.train("mini_alexnet", hp, data, seed=5, state_path=state,
                                  log=messages.append)  # fmt: skip
    assert result["resumed_from"] >= 2 and any("resuming from epoch" in m for m in messages)
    whole, expected = train.train("mini_alexnet", hp, data, seed=5)
    a, b = resumed.state_dict(), whole.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert result["test_acc"] == expected["test_acc"] and result["curve"] == expected["curve"]


def _job_counts(out: str) -> dict[str, int]:
    import re

    block = out.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def _snakemake(workdir: Path, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--workflow-profile", "none", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.mark.slow
def test_default_grids_plan_their_training_jobs(tmp_path: Path) -> None:
    (tmp_path / "config").symlink_to(ROOT / "config")
    run = _snakemake(tmp_path, "-n", "--quiet", "rules", "--config",
                     "studies=[cnn_batch_size,gnn,capsnet]")  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    counts = _job_counts(run.stdout + run.stderr)
    assert counts["train_model"] == 18 + 69 + 30
    # mnist5k (shared by the CNN and CapsNet studies) and Cora
    assert counts["prepare_dataset"] == 2 and counts["model_spectra"] == 117
    assert counts["experiment_figure"] == 1 + 4 + 2  # one per family
    quick = _snakemake(tmp_path, "-n", "--quiet", "rules", "--config",
                       "studies=[cnn_batch_size,gnn,capsnet]", "experiment_grid=quick")  # fmt: skip
    assert _job_counts(quick.stdout + quick.stderr)["train_model"] == 4 + 16 + 8


#: The study whose every output (rule all's: the per-model ESD figures, the study figures, the
#: set histogram) the end-to-end run makes; the others make what the test reads (models, trends,
#: experiment figures, the summary). Those figure rules run on every study in test_workflow.
FULL = "nlp_trained"


def _targets(root: Path) -> list[str]:
    """The end-to-end run's targets: see :data:`FULL`."""
    out = [f"results/summary/beyond_imagenet.{ext}" for ext in ("tsv", "md", "png", "pdf")]
    out.append("results/provenance.json")
    for name in (*EXPERIMENTS, *REAL):
        grid = _study(name, root).read_table()
        figures = [f"experiment/{family}" for family in dict.fromkeys(grid["family"])]
        if name == FULL:
            figures += [*FULL_FIGURES, *(f"alpha_histogram/{s}" for s in set(grid["set"]))]
            out.append(f"results/{name}/figures/esd")  # rule esd_figures: one folder per study
        out += [f"results/{name}/{table}.tsv" for table in ("models", "trends")]
        out += [f"results/{name}/figures/{f}.{ext}" for f in figures for ext in ("png", "pdf")]
    return out


FULL_FIGURES = ("families", "alpha_histogram", "metrics_comparison", "correlation_flow")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The .test experiment studies on slices of real data and synthetic data (2 settings x 2
    seeds for the CNN control, 3 settings x 1 seed per family elsewhere: 22 models), through the
    dataset rule, training, spectra, trends, figures and the summary."""
    work = tmp_path_factory.mktemp("experiments") / "work"
    shutil.copytree(TEST_CONFIG, work / "config")
    (work / "resources" / "synthetic").mkdir(parents=True)
    torch.save(synthetic.images(), work / "resources" / "synthetic" / "images.pt")
    torch.save(synthetic.graph(), work / "resources" / "synthetic" / "graph.pt")
    raw = work / "resources" / "datasets" / "raw"
    raw.mkdir(parents=True)
    shutil.copyfile(ROOT / "tests" / "data" / "text" / "jargon.txt.gz", raw / "jargon.txt.gz")
    names = ",".join((*EXPERIMENTS, *REAL))
    targets = _targets(work / "config")
    result = _snakemake(work, "--cores", "2", "--config", f"studies=[{names}]", "--", *targets)
    assert result.returncode == 0, result.stderr[-5000:]
    assert all((work / target).exists() for target in targets)  # files, and the ESD folder
    yield work


@pytest.mark.slow
def test_experiments_end_to_end(run: Path) -> None:
    results = run / "results"
    for name in (*EXPERIMENTS, *REAL):
        study = _study(name, run / "config")
        head = study.headline
        grid = study.read_table()
        models = pd.read_csv(results / name / "models.tsv", sep="\t")
        assert sorted(models["model"]) == sorted(grid["model"])
        assert {"vary", "setting", "seed", "lambda_max_below_1"} <= set(models.columns)
        for rec in models.itertuples():
            result = json.loads((run / "resources" / "weights"
                                 / f"{rec.weights}.training.json").read_text())  # fmt: skip
            assert getattr(rec, head) == pytest.approx(result[head])
            train_q = head.replace("test_", "train_")
            gap = result[train_q] - result[head]
            assert rec.gap == pytest.approx(gap if study.quality_of(head).higher_is_better
                                            else -gap)  # fmt: skip
            assert result["seed"] == rec.seed and result["resumed_from"] is None
            state = torch.load(run / "resources" / "weights" / f"{rec.weights}.trained.pt",
                               weights_only=True)  # fmt: skip
            assert state and rec.n_matrices > 0 and np.isfinite(rec.alpha_weighted)
            assert np.isfinite(rec.alpha_weighted_all_layers)
        trends = pd.read_csv(results / name / "trends.tsv", sep="\t")
        per_family = grid.groupby("family").size()
        assert per_family.min() >= summary.MIN_ROWS  # each family gives summary rows
        fitted = trends[trends["quality"] == head]
        assert set(fitted["family"]) == set(per_family.index)
        assert (fitted["n"] == fitted["family"].map(per_family)).all()
        figures = [f"experiment/{family}" for family in dict.fromkeys(grid["family"])]
        if name == FULL:
            figures += [*FULL_FIGURES, "alpha_histogram/core",
                        *(f"esd/{model}" for model in grid["model"])]  # fmt: skip
        for figure in figures:
            png = results / name / "figures" / f"{figure}.png"
            with Image.open(png) as image:
                assert image.format == "PNG" and min(image.size) > 300, png
    assert not list((run / "resources" / "training").glob("*.resume.pt"))  # cleaned up
    prepared = datasets.load(run / "resources" / "datasets" / "file-images.pt")
    assert prepared["meta"]["source"].startswith("tests/synthetic.py")
    mnist = datasets.load(run / "resources" / "datasets" / "mnist5k.pt")
    assert mnist["meta"]["sha256"] == datasets.MNIST5K["sha256"]
    text = datasets.load(run / "resources" / "datasets" / "text-jargon.pt")
    assert text["meta"]["bytes"] == 1681817 and "public domain" in text["meta"]["source"]
    table = pd.read_csv(results / "summary" / "beyond_imagenet.tsv", sep="\t")
    assert set(table["study"]) == {*EXPERIMENTS, *REAL}
    trained_cnn = {"cnn_batch_size", "segmentation_trained", "autoencoders_trained"}
    assert table.loc[~table["study"].isin(trained_cnn), "non_cnn"].all()
    assert not table.loc[table["study"].isin(trained_cnn), "non_cnn"].any()
    assert "train_acc" not in set(table["quality"])  # regressed, not judged
    for rec in table.itertuples():
        assert rec.verdict == summary.verdict(rec.kendall_tau, rec.kendall_tau_low,
                                              rec.kendall_tau_high, rec.n,
                                              rec.higher_is_better)  # fmt: skip
    # each family's declared layers, and where it declares a part, every layer beside them
    ae = table[(table["study"] == "autoencoders_trained") & (table["metric"] == "alpha_weighted")
               & (table["quality"] == "test_psnr")]  # fmt: skip
    assert set(ae["layers_choice"]) == {"declared", "all"}
    assert set(ae["layers"]) == {r"encoder\.5$|decoder\.2$", "all"}
    lm = table[(table["study"] == "nlp_trained") & (table["quality"] == "test_log_ppl")]
    assert not lm["higher_is_better"].any() and set(lm["layers"]) == {"all"}
    gnn = table[table["study"] == "gnn"]
    pooled = gnn[gnn["pooled"]]  # two families (GCN, GAT): their pooled trend
    assert len(pooled) and (pooled["family"] == summary.POOLED).all()
    assert pooled["simpson"].isin([True, False]).all()
    inverted = table[table["alpha_hat_inverts"]]
    assert (inverted["lambda_max_below_1"] > 0).all()
    text = (results / "summary" / "beyond_imagenet.md").read_text()
    assert "**Graph networks, trained here** (gnn): " in text
    assert "**Control: CNN batch size, trained here** (cnn_batch_size): " in text
    assert "**Language models, trained here (held-out log perplexity)** (nlp_trained): " in text
    # the pretrained questions, without their weights, are answered by the families trained here
    assert ("**NLP (language models)**: no pretrained family in this run (it needs the real"
            " weights: `snakemake --cores 16 --config 'studies=[imagenet,nlp]'`); on models"
            " trained here (nlp_trained): ") in text  # fmt: skip
    assert "**Semantic segmentation**: no pretrained family in this run" in text
    assert "α̂ over all layers τ = " in text and "seed sd" in text


def test_experiments_module_exports() -> None:
    assert experiments.dataset_key({"name": "planetoid", "dataset": "Cora"}) == "planetoid-Cora"
    assert experiments.dataset_key({"name": "file", "path": "a/b/images.pt"}) == "file-images"
    assert grid_table.__module__ == "htsr.experiments.grids"


#: the model-building metadata of each prepared dataset of the studies (the real files' shapes)
DATASET_META = {
    "mnist5k": {"kind": "images", "channels": 1, "size": 28, "classes": 10},
    "mnist_scenes": {"kind": "segmentation", "channels": 1, "size": 32, "classes": 11},
    "text-jargon": {"kind": "text", "vocab": 256},
    "planetoid-Cora": {"kind": "graph", "features": 1433, "classes": 7},
    "planetoid-CiteSeer": {"kind": "graph", "features": 3703, "classes": 6},
}  # fmt: skip


def _declared_families() -> list[tuple[str, pd.Series]]:
    """The first and last setting of every family of config/studies that declares ``layers``."""
    out = []
    for path in sorted((ROOT / "config/studies").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        if "experiment" not in spec:
            continue
        table = grid_table(path.stem, spec["experiment"])
        table = table[(table["layers"] != "") & (table["seed"] == table["seed"].min())]
        for _, rows in table.groupby("family", sort=False):
            for _, row in rows.iloc[[0, -1]].iterrows():
                out.append((spec.get("convention", "paper"), row))
    return out


@pytest.mark.parametrize(("convention", "row"), _declared_families(),
                         ids=lambda v: v["model"] if isinstance(v, pd.Series) else v)  # fmt: skip
def test_declared_layers_select_fitted_matrices(convention: str, row: pd.Series) -> None:
    """A family's declared ``layers`` pattern must select matrices that are fitted, at its
    first and last setting (``features\\.|classifier\\.[13]\\.`` matched none of the control's,
    so its declared α̂ was NaN for every model of the 2026-12-07 grid run)."""
    assert row["dataset"] in DATASET_META, f"{row['model']}: add {row['dataset']} to DATASET_META"
    torch.manual_seed(0)
    net = nets.build(row["architecture"], DATASET_META[row["dataset"]],
                     json.loads(row["hyperparameters"]))  # fmt: skip
    chosen = select_layers(analyze(net, convention=convention), row["layers"])
    assert (chosen["status"] == "ok").any(), (
        row["model"],
        row["layers"],
        chosen[["layer", "status"]],
    )
