"""The Snakemake pipeline end to end, offline, on the small two-study .test configuration.

Random-init weights are served from a loopback HTTP server (tests/zoo_server.py), so the real
download rule runs: seven tiny ImageNet models (study imagenet) and nine tiny language models
with Pythia's and GPT-2's key names from the hf source (study nlp: .bin files, a sharded .bin
and a sharded safetensors checkpoint, rows at revisions stepN, one checkpoint shared by two
rows). One torchvision file and one OSMR store zip arrive corrupt (the first run fails naming
them; once the server is fixed a rerun fetches them again and succeeds), one timm file and one
hub snapshot answer HTTP 500 once (the download's retry gets them). Then the whole DAG runs with
`snakemake --cores 2` and the outputs of both studies are checked for content, the paper
comparison against a small printed-cells fixture. Also: lint, snakefmt, the default and NLP
dry-runs' job counts, and a SIGKILLed model_spectra job that leaves nothing Snakemake takes as
complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from htsr.io import sha256_file
from htsr.studies import study as studies
from htsr.studies import summary
from htsr.studies.table import read_model_table, select_models
from htsr.studies.trends import ALL_LAYER_METRICS, METRICS, TREND_COLUMNS, fit_trend

sys.path.insert(0, str(Path(__file__).parent))
from study_states import make_url_files, served_url_table  # noqa: E402
from zoo_server import make_weight_files, serve_zoo, served_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_TABLES = [ROOT / "config" / "studies" / f"{t}.tsv" for t in ("imagenet", "imagenet_paper")]
TEST_CONFIG = ROOT / ".test" / "config"
CORRUPT = "shufflenet_v2_x0_5"  # its file arrives with a flipped byte in the first run
CORRUPT_ZIP = "osmr.shufflenet_g1_wd2"  # its store zip arrives damaged in the first run
FLAKY = "mobilenetv2_050.lamb_in1k"  # its hub download answers HTTP 500 once
FLAKY_HF = "pythia-160m"  # the first GET of its snapshot answers HTTP 500
KILLED = "shufflenet_v2_x1_5"
#: each study's figures: its own, its figure table's (.test/config/studies/imagenet_figures.tsv),
#: one histogram per set, a trajectory figure per trajectory family
FIGURES = {
    "imagenet": (
        "families", "alpha_histogram", "metrics_comparison", "correlation_flow",
        "paper_comparison", "shufflenet", "osmr_tsvd", "shufflenet_ww2020",
        "alpha_histogram/core", "alpha_histogram/osmr_test",
    ),
    "nlp": (
        "families", "alpha_histogram", "metrics_comparison", "correlation_flow",
        "alpha_histogram/core", "trajectory/pythia-410m-trajectory",
    ),
    **{study: ("families", "alpha_histogram", "metrics_comparison", "correlation_flow",
               "alpha_histogram/core") for study in ("segmentation", "autoencoders")},
}  # fmt: skip
MODEL_COLUMNS = [
    "model", "set", "family", "label", "source", "top1", "top5", "weights", "step", *METRICS,
    "n_matrices", "convention", "evals", *ALL_LAYER_METRICS, "lambda_max_below_1",
]  # fmt: skip
NLP_QUALITY = ["lambada_openai_acc", "lambada_openai_ppl", "piqa_acc", "lambada_acc",
               "wikitext2_ppl"]  # fmt: skip

BEYOND = ("segmentation", "autoencoders")

pytestmark = pytest.mark.slow


def _read_test_table(study: str) -> pd.DataFrame:
    return pd.read_csv(TEST_CONFIG / "studies" / f"{study}.tsv", sep="\t", dtype=str,
                       keep_default_na=False)  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("HTSR_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HTSR_TORCHVISION_URL"):
        env.pop(var, None)
    env.update(MPLBACKEND="Agg", OMP_NUM_THREADS="1", HF_HUB_DISABLE_TELEMETRY="1")
    return env


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in ``workdir`` (no workflow profile)."""
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir), "--workflow-profile", "none", *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Pipeline:
    workdir: Path
    models: pd.DataFrame
    nlp: pd.DataFrame
    beyond: dict[str, pd.DataFrame]  # segmentation, autoencoders: the served tables
    failed_run: subprocess.CompletedProcess
    failed_log: str
    done_in_failed_run: set[str]
    weights_after_failed_run: set[str]
    rerun: subprocess.CompletedProcess
    requests: list[tuple[str, str, int, str]]
    wall_s: float


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Serve the .test models' weights on 127.0.0.1 and run the whole workflow twice."""
    tmp = tmp_path_factory.mktemp("pipeline")
    workdir = tmp / "work"
    shutil.copytree(TEST_CONFIG, workdir / "config")
    rows = read_model_table(TEST_CONFIG / "studies" / "imagenet.tsv")
    files = make_weight_files(rows, tmp / "served")
    table = workdir / "config" / "studies" / "imagenet.tsv"
    served_table(rows, files).to_csv(table, sep="\t", index=False)
    nlp = pd.read_csv(TEST_CONFIG / "studies" / "nlp.tsv", sep="\t", dtype=str,
                      keep_default_na=False)  # fmt: skip
    files.update(make_weight_files(nlp.to_dict("records"), tmp / "served"))
    # segmentation and autoencoders: torchvision rows as torch.hub files, url rows as files named
    # the way their hosts name them (tests/study_states.py), pointed at once the server runs
    beyond = {}
    for study in BEYOND:
        table_rows = _read_test_table(study)
        vision = table_rows[table_rows["source"] != "url"]
        files.update(make_weight_files(vision.to_dict("records"), tmp / "served"))
        files.update(make_url_files(table_rows, tmp / "served"))
        beyond[study] = pd.concat([served_table(vision, files),
                                   table_rows[table_rows["source"] == "url"]])  # fmt: skip
    faults = {CORRUPT: "corrupt", CORRUPT_ZIP: "corrupt", FLAKY: "error_once",
              FLAKY_HF: "error_once"}  # fmt: skip
    start = time.perf_counter()
    with serve_zoo(files, faults=faults) as base:
        for study, table_rows in beyond.items():
            beyond[study] = served_url_table(table_rows, files, base)
            beyond[study].to_csv(workdir / "config" / "studies" / f"{study}.tsv", sep="\t",
                                 index=False)  # fmt: skip
        urls = [f"torchvision_url={base}", f"hf_endpoint={base}", f"pytorchcv_url={base}"]
        failed = snakemake(workdir, "--cores", "2", "--keep-going", "--config", *urls)
        spectra = workdir / "results" / "imagenet" / "spectra"
        done = {p.stem for p in spectra.glob("*.parquet")}
        weights = {p.name for p in (workdir / "resources" / "weights").iterdir()}
        logs = workdir / "logs" / "download_weights"
        failed_log = (logs / f"{CORRUPT}.pth.log").read_text()
        failed_log += (logs / f"{CORRUPT_ZIP}.pth.zip.log").read_text()
        faults.pop(CORRUPT)  # the server is fixed
        faults.pop(CORRUPT_ZIP)
        rerun = snakemake(workdir, "--cores", "2", "--config", *urls)
        requests = list(base.requests)
    wall = time.perf_counter() - start
    print(f"\nend-to-end pipeline wall time (both runs): {wall:.1f} s")
    yield Pipeline(workdir, rows, nlp, beyond, failed, failed_log, done, weights, rerun, requests,
                   wall)  # fmt: skip


def test_corrupt_download_fails_naming_the_model(pipeline: Pipeline) -> None:
    run = pipeline.failed_run
    assert run.returncode != 0
    text = pipeline.failed_log
    for model in (CORRUPT, CORRUPT_ZIP):
        assert f"{model}:" in text and "arrived corrupt" in text, text
        assert f"weights={model}" in run.stderr  # Snakemake's error names the job's wildcards
        names = pipeline.weights_after_failed_run  # nothing left under its name
        assert not [n for n in names if n.startswith(f"{model}.p")], names
    assert "not a readable zip" in text or "sha1" in text, text
    # only the corrupt models' chains failed; the other models finished in the first run
    expected = set(pipeline.models["model"]) - {CORRUPT, CORRUPT_ZIP}
    assert pipeline.done_in_failed_run == expected


def test_rerun_after_fixing_the_server_succeeds(pipeline: Pipeline) -> None:
    assert pipeline.rerun.returncode == 0, pipeline.rerun.stderr[-4000:]
    # the rerun downloaded only what was missing: the corrupt model, nothing else again
    bodies = [r for r in pipeline.requests if r[0] == "GET" and r[2] == 200 and _is_file(r[1])]
    imagenet = set(pipeline.models["model"])
    per_model = pd.Series([r[3] for r in bodies if r[3] in imagenet]).value_counts()
    assert per_model[CORRUPT] == 2 and per_model[CORRUPT_ZIP] == 2  # corrupt once, good once
    assert (per_model.drop([CORRUPT, CORRUPT_ZIP]) == 1).all(), per_model
    assert set(per_model.index) == imagenet
    # each file of each hub snapshot was fetched once, in the first run
    hub = [r[1].split("?")[0] for r in bodies if r[3] not in imagenet]
    assert len(hub) == len(set(hub)) and len(hub) > 0, hub
    for folder in {w for w in pipeline.nlp["weights"]}:
        manifest = json.loads((pipeline.workdir / "resources" / "weights" / f"{folder}.hf.json")
                              .read_text())  # fmt: skip
        for name in manifest["files"]:
            assert sum(p.endswith(f"/{manifest['commit']}/{name}") for p in hub) == 1, name


def _is_file(path: str) -> bool:
    """A weight file's body (not the hub's model-info API)."""
    return path.endswith((".pth", ".pth.zip")) or "/resolve/" in path


def test_server_error_is_retried(pipeline: Pipeline) -> None:
    for model, name in ((FLAKY, f"{FLAKY}.safetensors"),
                        (FLAKY_HF, "pythia-160m.step143000.hf.json")):  # fmt: skip
        flaky = [r for r in pipeline.requests if r[3] == model and r[0] == "GET" and _is_file(r[1])]
        assert 500 in [r[2] for r in flaky] and flaky[-1][2] == 200, flaky
        assert (pipeline.workdir / "resources" / "weights" / name).is_file()


def test_spectra_tables(pipeline: Pipeline) -> None:
    results = pipeline.workdir / "results"
    rows = [("imagenet", r.weights, r.model) for r in pipeline.models.itertuples()]
    rows += [("nlp", r.weights, r.model) for r in pipeline.nlp.itertuples()]
    rows += [(study, r.weights, r.model) for study, table in pipeline.beyond.items()
             for r in table.itertuples()]  # fmt: skip
    for study, weights, model in rows:
        table = pd.read_parquet(results / study / "spectra" / f"{weights}.parquet")
        assert len(table) > 0
        assert {"layer", "N", "M", "alpha", "status", "evals"} <= set(table.columns)
        ok = table[table["status"] == "ok"]
        assert len(ok) > 0, model
        assert np.isfinite(ok[["alpha", "alpha_weighted", "log_norm"]].to_numpy(float)).all()
        lengths = table["evals"].map(len)
        assert (lengths == table["num_evals"]).all()
        evals = np.asarray(ok["evals"].iloc[0], dtype=float)
        assert np.all(np.diff(evals) >= 0) and evals[-1] == pytest.approx(ok["lambda_max"].iloc[0])


def test_models_and_trends_tables(pipeline: Pipeline) -> None:
    results = pipeline.workdir / "results" / "imagenet"
    models = pd.read_csv(results / "models.tsv", sep="\t")
    assert list(models.columns) == MODEL_COLUMNS
    assert sorted(models["model"]) == sorted(pipeline.models["model"])
    assert np.isfinite(models[[*METRICS, "top1"]].to_numpy(float)).all()
    assert (models["n_matrices"] > 0).all()
    expected_top1 = pipeline.models.set_index("model")["top1"]
    assert np.allclose(models.set_index("model")["top1"], expected_top1[models["model"]])

    assert set(models["set"]) == {"core", "osmr_test"}
    assert (models.set_index("model").loc["osmr.shufflenet_g1_wd4", "label"]
            == "shufflenet_g1_wd4")  # fmt: skip

    trends = pd.read_csv(results / "trends.tsv", sep="\t")
    assert list(trends.columns) == list(TREND_COLUMNS)
    groups = models[["set", "family"]].drop_duplicates().shape[0]
    assert len(trends) == groups * 2 * len(METRICS)  # top1 and top5
    assert set(trends["quality"]) == {"top1", "top5"} and trends["transform"].isna().all()
    shuffle = trends[(trends["family"] == "ShuffleNetV2") & (trends["quality"] == "top1")]
    assert (shuffle["status"] == "ok").all() and (shuffle["n"] == 3).all()
    fitted = shuffle[["slope", "intercept", "rmse", "r2", "kendall_tau", "spearman_rho"]]
    assert np.isfinite(fitted.to_numpy(float)).all()
    assert ((shuffle["r2"] >= 0) & (shuffle["r2"] <= 1)).all()
    assert shuffle["loo_rmse"].isna().all()  # three models: too few to leave one out
    loo = pd.read_csv(results / "loo.tsv", sep="\t")
    assert loo.empty and "obs" not in loo.columns and "inside" in loo.columns
    assert set(models["convention"]) == {"paper"} and set(models["evals"]) == {"exact"}
    osmr = trends[trends["family"] == "ShuffleNet"]
    assert (osmr["set"] == "osmr_test").all() and (osmr["n"] == 3).all()
    others = trends[trends["family"] == "MobileNetV2_width"]
    assert (others["status"] == "too_few_models").all()
    assert others["slope"].isna().all()


def test_nlp_study_tables(pipeline: Pipeline) -> None:
    """The NLP study: every quality column as published, trends per family (its sets joined),
    perplexities regressed as log10, τ with its interval and p-value, the shared checkpoint
    analysed once for both of its rows."""
    results = pipeline.workdir / "results" / "nlp"
    models = pd.read_csv(results / "models.tsv", sep="\t")
    nlp = pipeline.nlp.set_index("model")
    assert sorted(models["model"]) == sorted(nlp.index)
    for q in NLP_QUALITY:
        expected = pd.to_numeric(nlp[q].replace("", np.nan))
        np.testing.assert_array_equal(models.set_index("model")[q], expected[models["model"]])
    assert np.isfinite(models[list(METRICS)].to_numpy(float)).all()
    assert (models["n_matrices"] > 0).all()
    shared = models.set_index("model").loc[["pythia-410m", "pythia-410m.step143000"]]
    assert shared["weights"].nunique() == 1
    assert shared[list(METRICS)].iloc[0].equals(shared[list(METRICS)].iloc[1])
    trends = pd.read_csv(results / "trends.tsv", sep="\t", keep_default_na=False,
                         na_values=[""])  # fmt: skip
    assert list(trends.columns) == list(TREND_COLUMNS)
    assert set(trends["family"]) == {"pythia", "pythia-410m-trajectory", "gpt2"}
    # a family has rows only for the qualities it was evaluated on
    assert set(trends.loc[trends["family"] == "gpt2", "quality"]) == {
        "lambada_acc", "wikitext2_ppl"}  # fmt: skip
    assert "lambada_acc" not in set(trends.loc[trends["family"] == "pythia", "quality"])
    ppl = trends[trends["quality"].str.endswith("_ppl")]
    assert (ppl["transform"] == "log10").all() and trends.loc[
        ~trends["quality"].str.endswith("_ppl"), "transform"].isna().all()  # fmt: skip
    ok = trends[trends["status"] == "ok"]
    assert len(ok) == len(trends) and (ok["n"] == 3).all()
    assert ((ok["kendall_tau_low"] <= ok["kendall_tau"] + 1e-12)
            & (ok["kendall_tau"] <= ok["kendall_tau_high"] + 1e-12)).all()  # fmt: skip
    assert ((ok["kendall_p"] > 0) & (ok["kendall_p"] <= 1)).all()
    # the log10 transform: the gpt2 perplexity fit is the fit of log10(perplexity)
    g = models[models["family"] == "gpt2"]
    fit = trends[(trends["family"] == "gpt2") & (trends["quality"] == "wikitext2_ppl")
                 & (trends["metric"] == "alpha_weighted")].iloc[0]  # fmt: skip
    expected = fit_trend(g["alpha_weighted"], np.log10(g["wikitext2_ppl"]))
    assert fit["slope"] == pytest.approx(expected.slope) and fit["r2"] == pytest.approx(expected.r2)
    steps = models.set_index("model").loc[nlp.index[nlp["family"] == "pythia-410m-trajectory"],
                                          "step"]  # fmt: skip
    assert sorted(steps) == [1000, 3000, 143000]


def test_segmentation_and_autoencoder_studies(pipeline: Pipeline) -> None:
    """Segmentation: torchvision's architectures and an mmengine checkpoint (read inertly) by
    url. Autoencoders: CompressAI-shaped files (one in torch's legacy format), trends within a
    family and across architectures at one level (more_families), and a kl-f8-shaped zip read
    whole and by part: the parts' matrices add up to the whole, the loss's networks in none."""
    results = pipeline.workdir / "results"
    seg = pd.read_csv(results / "segmentation" / "models.tsv", sep="\t")
    assert sorted(seg["model"]) == sorted(pipeline.beyond["segmentation"]["model"])
    assert (seg["n_matrices"] > 0).all() and np.isfinite(seg["alpha_weighted"]).all()
    segformer = pd.read_parquet(results / "segmentation" / "spectra"
                                / "segformer_mit-b0_ade20k-512.parquet")  # fmt: skip
    assert "backbone.layers.1.1.0.attn.attn.in_proj_weight" in set(segformer["layer"])
    trends = pd.read_csv(results / "segmentation" / "trends.tsv", sep="\t")
    tv = trends[trends["family"] == "torchvision_seg_coco_voc"]
    assert (tv["status"] == "ok").all() and set(tv["quality"]) == {"miou", "pixel_acc"}

    ae = pd.read_csv(results / "autoencoders" / "models.tsv", sep="\t",
                     keep_default_na=False, na_values=[""]).set_index("model")  # fmt: skip
    assert {"layers", "level_family", "rd_gain_db"} <= set(ae.columns)
    table = pipeline.beyond["autoencoders"].set_index("model")
    assert sorted(ae.index) == sorted(table.index)
    spectra = pd.read_parquet(results / "autoencoders" / "spectra"
                              / "sd-vae-kl-f8-original.parquet")  # fmt: skip
    ok = spectra[spectra["status"] == "ok"]
    whole, enc, dec = (f"sd-vae-kl-f8-original{p}" for p in ("", ".encoder", ".decoder"))
    assert ae.loc[whole, "n_matrices"] == ae.loc[enc, "n_matrices"] + ae.loc[dec, "n_matrices"]
    assert ok["layer"].str.startswith("loss.").sum() > 0  # analysed, but no model uses them
    assert ae.loc[whole, "n_matrices"] == (~ok["layer"].str.startswith("loss.")).sum()
    assert ae.loc[enc, "alpha_weighted"] != ae.loc[dec, "alpha_weighted"]
    assert ae.loc[whole, "weights"] == ae.loc[enc, "weights"] == ae.loc[dec, "weights"]
    trends = pd.read_csv(results / "autoencoders" / "trends.tsv", sep="\t")
    level = trends[(trends["family"] == "compressai_mse_level1")
                   & (trends["metric"] == "alpha_weighted")]  # fmt: skip
    assert (level["n"] == 3).all() and (level["status"] == "ok").all()
    members = ae[ae["level_family"] == "compressai_mse_level1"]
    fit = level[level["quality"] == "rd_gain_db"].iloc[0]
    expected = fit_trend(members["alpha_weighted"], members["rd_gain_db"])
    assert fit["slope"] == pytest.approx(expected.slope)
    family = trends[(trends["family"] == "compressai_bmshj2018-factorized_mse")]
    assert (family["n"] == 3).all()  # q2 is the legacy-format file
    record = pipeline.workdir / "resources" / "weights" / "sd-vae-kl-f8-original.zip.recorded.json"
    weights = record.with_name(record.name.removesuffix(".recorded.json"))
    assert json.loads(record.read_text())["sha256"] == sha256_file(weights)[0]


def test_beyond_imagenet_summary(pipeline: Pipeline) -> None:
    """results/summary/: one row per study x family x quality x metric fitted on >= 3 models,
    τ inside its interval, verdicts by htsr.studies.summary's rule, and the figure."""
    results = pipeline.workdir / "results"
    table = pd.read_csv(results / "summary" / "beyond_imagenet.tsv", sep="\t",
                        keep_default_na=False, na_values=[""])  # fmt: skip
    assert list(table.columns) == list(summary.ANSWER_COLUMNS)
    for study in ("imagenet", "nlp", *BEYOND):
        trends = pd.read_csv(results / study / "trends.tsv", sep="\t")
        fitted = trends[(trends["status"] == "ok") & (trends["n"] >= 3)
                        & (trends["quality"] != "bpp")]  # a rate, not judged  # fmt: skip
        assert (table["study"] == study).sum() == len(fitted) > 0
        # one row per family x quality x metric
        rows = table[table["study"] == study]
        assert not rows.duplicated(["family", "quality", "metric", "layers_choice"]).any()
    assert "bpp" not in set(table["quality"])
    assert set(table.loc[table["study"] == "autoencoders", "family"]) == {
        "compressai_bmshj2018-factorized_mse", "compressai_mse_level1"}  # fmt: skip
    assert table.loc[table["study"] == "nlp", "non_cnn"].all()
    assert not table.loc[table["study"] != "nlp", "non_cnn"].any()
    assert (table["reference"] == (table["study"] == "imagenet")).all()
    assert ((table["kendall_tau_low"] <= table["kendall_tau"] + 1e-12)
            & (table["kendall_tau"] <= table["kendall_tau_high"] + 1e-12)).all()  # fmt: skip
    for rec in table.itertuples():
        assert rec.verdict == summary.verdict(rec.kendall_tau, rec.kendall_tau_low,
                                              rec.kendall_tau_high, rec.n,
                                              rec.higher_is_better)  # fmt: skip
    ppl = table[table["quality"] == "lambada_openai_ppl"]
    assert len(ppl) > 0 and not ppl["higher_is_better"].any()
    assert (ppl["claim_tau"] == ppl["kendall_tau"]).all()  # lower is better: τ > 0 agrees
    png = results / "summary" / "beyond_imagenet.png"
    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) > 300
    assert (results / "summary" / "beyond_imagenet.pdf").read_bytes()[:5] == b"%PDF-"
    text = (results / "summary" / "beyond_imagenet.md").read_text()
    assert "**ImageNet (reference)**: " in text and "**NLP (language models)** (nlp): " in text
    assert "**Semantic segmentation** (segmentation): " in text
    assert "**Autoencoders (reconstruction quality)** (autoencoders): " in text
    assert "**Non-CNN architectures (transformers, graph and capsule networks)** (nlp): " in text


def test_method_tables_cover_the_sets_that_name_them(pipeline: Pipeline) -> None:
    """set_methods: core runs ww2020, osmr_test runs tsvd; each method's tables hold exactly
    those models, and the tsvd alpha_hat sits beside the exact one."""
    results = pipeline.workdir / "results" / "imagenet"
    for method, set_name in (("ww2020", "core"), ("tsvd", "osmr_test")):
        models = pd.read_csv(results / "methods" / method / "models.tsv", sep="\t")
        assert set(models["convention"]) == {"paper" if method == "tsvd" else "ww2020"}
        assert set(models["evals"]) == {"tsvd"}
        expected = pipeline.models.loc[pipeline.models["set"] == set_name, "model"]
        assert sorted(models["model"]) == sorted(expected), method
        for weights in pipeline.models.loc[pipeline.models["set"] == set_name, "weights"]:
            # the method's rows in the file's method table, beside the main table of the same job
            table = pd.read_parquet(results / "method_spectra" / f"{weights}.parquet")
            assert set(table["method"]) == {method}, weights
            main = pd.read_parquet(results / "spectra" / f"{weights}.parquet")
            assert list(table["layer"]) == list(main["layer"]) and len(table) > 0
            # tsvd: the exact eigenvalues less the smallest, from the same decomposition
            if method == "tsvd":
                for ours, exact in zip(table["evals"], main["evals"], strict=True):
                    np.testing.assert_array_equal(ours, exact[1:])
    by_method = pd.read_csv(results / "paper" / "alpha_hat_by_method.tsv", sep="\t")
    assert sorted(by_method["model"]) == sorted(
        pipeline.models.loc[pipeline.models["set"] == "osmr_test", "model"]
    )
    main = pd.read_csv(results / "models.tsv", sep="\t").set_index("model")
    tsvd = pd.read_csv(results / "methods" / "tsvd" / "models.tsv", sep="\t").set_index("model")
    for rec in by_method.itertuples():
        assert rec.alpha_weighted_main == pytest.approx(main.loc[rec.model, "alpha_weighted"])
        assert rec.alpha_weighted_method == pytest.approx(tsvd.loc[rec.model, "alpha_weighted"])
        assert rec.difference == pytest.approx(rec.alpha_weighted_method - rec.alpha_weighted_main)


def test_paper_comparison_against_the_printed_fixture(pipeline: Pipeline) -> None:
    """Every computable cell of .test/config/paper/printed_cells.tsv, per method, with ours read
    from the run's own tables; cells of a family or model the run lacks are left out."""
    results = pipeline.workdir / "results" / "imagenet"
    table = pd.read_csv(results / "paper_comparison.tsv", sep="\t", keep_default_na=False)
    printed = pd.read_csv(TEST_CONFIG / "paper" / "printed_cells.tsv", sep="\t", dtype=str)
    # Table A: 4 ShuffleNetV2 cells × (ww2020, main); Table B: 3 model cells × (tsvd, main)
    assert len(table) == 4 * 2 + 3 * 2
    assert "NoSuchFamily" not in set(table["series"])
    assert "not_run_here" not in set(table["model"])
    trends = {
        "main": pd.read_csv(results / "trends.tsv", sep="\t"),
        "ww2020": pd.read_csv(results / "methods" / "ww2020" / "trends.tsv", sep="\t"),
    }
    stat = {"RMSE": "rmse", "R2": "r2", "Kendall-tau": "kendall_tau"}
    metric = {"alpha_hat (weighted alpha)": "alpha_weighted",
              "log_frobenius_norm <log||W||_F^2>": "log_norm"}  # fmt: skip
    a = table[table["table"] == "Test Table A (trends)"]
    for rec in a.itertuples():
        tr = trends[rec.method]
        fit = tr[(tr["family"] == "ShuffleNetV2") & (tr["metric"] == metric[rec.metric])
                 & (tr["quality"] == "top1")].iloc[0]  # fmt: skip
        assert float(rec.ours) == pytest.approx(fit[stat[rec.statistic]])
        assert float(rec.difference) == pytest.approx(float(rec.ours) - float(rec.printed))
        cell = printed[(printed["statistic"] == rec.statistic) & (printed["metric"] == rec.metric)
                       & (printed["series"] == "ShuffleNetV2")]  # fmt: skip
        assert float(rec.printed) == float(cell["value"].iloc[0])
        assert rec.source == cell["source"].iloc[0]
        assert (rec.note == "a note on the R2 cells") == (rec.statistic == "R2")
    b = table[table["table"] == "Test Table B (models)"]
    models = {"main": pd.read_csv(results / "models.tsv", sep="\t").set_index("label"),
              "tsvd": pd.read_csv(results / "methods" / "tsvd" / "models.tsv",
                                  sep="\t").set_index("label")}  # fmt: skip
    for rec in b.itertuples():
        column = "top1" if rec.statistic.startswith("Top1") else "alpha_weighted"
        assert float(rec.ours) == pytest.approx(models[rec.method].loc[rec.model, column])
        noted = rec.model == "shufflenet_g1_wd4" and rec.method == "tsvd"
        assert (rec.note == "a note on one model under tsvd") == noted
    top1 = b[b["statistic"].str.startswith("Top1")]
    assert top1["within_rounding"].astype(str).eq("True").all()  # 37.56 as printed


def test_figures_are_valid_images(pipeline: Pipeline) -> None:
    models = {"imagenet": pipeline.models["model"], "nlp": pipeline.nlp["model"],
              **{study: table["model"] for study, table in pipeline.beyond.items()}}  # fmt: skip
    paths = [pipeline.workdir / "results" / study / "figures" / name
             for study, names in FIGURES.items()
             for name in [*names, *(f"esd/{m}" for m in models[study])]]  # fmt: skip
    for path in paths:
        png, pdf = path.with_name(path.name + ".png"), path.with_name(path.name + ".pdf")
        assert png.stat().st_size > 10_000, png
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG" and min(image.size) > 300
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000, pdf


def test_provenance(pipeline: Pipeline) -> None:
    record = json.loads((pipeline.workdir / "results" / "provenance.json").read_text())
    assert set(record) == {"timestamp", "packages", "git", "config", "weights"}
    packages = record["packages"]
    for name in ("python", "htsr", "torch", "torchvision", "timm", "numpy", "snakemake"):
        assert packages[name], name
    assert record["config"]["convention"] == "paper"
    assert set(record["git"]) == {"commit", "dirty"}
    weights = {*pipeline.models["weights"], *pipeline.nlp["weights"],
               *(w for table in pipeline.beyond.values() for w in table["weights"])}  # fmt: skip
    assert sorted(record["weights"]) == sorted(weights)
    for entry in record["weights"].values():
        path = pipeline.workdir / entry["path"]
        assert entry["sha256"] == sha256_file(path)[0]
        assert entry["size"] == path.stat().st_size
    hub = record["weights"]["pythia-410m.step143000"]  # a sharded hub snapshot
    assert hub["path"].endswith(".hf.json") and len(hub["commit"]) == 40
    assert hub["revision"] == "step143000" and len(hub["files"]) == 4  # index, 2 shards, config
    assert record["config"]["studies"] == ["imagenet", "nlp", *BEYOND]
    how = {w: e.get("verified_by") for w, e in record["weights"].items()}
    assert how["sd-vae-kl-f8-original"] == "recorded at first download"
    assert how["bmshj2018-factorized_mse_q1"] == "hash in file name"
    assert how["segformer_mit-b0_ade20k-512"] == "hash in file name"


def test_logs_per_rule_and_model(pipeline: Pipeline) -> None:
    logs = pipeline.workdir / "logs"
    for study, table in (("imagenet", pipeline.models), ("nlp", pipeline.nlp),
                         *pipeline.beyond.items()):  # fmt: skip
        for row in table.drop_duplicates("weights").itertuples():
            text = (logs / "model_spectra" / study / f"{row.weights}.log").read_text()
            out = f"results/{study}/spectra/{row.weights}.parquet"
            assert f"{row.weights} ({row.model}): wrote {out}" in text
        # one ESD job per study draws every model's figure, logging each
        text = (logs / "esd_figures" / f"{study}.log").read_text()
        n = len(table)
        for i, model in enumerate(table["model"], 1):
            assert f"{i}/{n} {model}: " in text, (study, model)


def test_report_names_every_figure(pipeline: Pipeline) -> None:
    run = snakemake(pipeline.workdir, "--report", "results/report.html")
    assert run.returncode == 0, run.stderr[-4000:]
    html = (pipeline.workdir / "results" / "report.html").read_text()
    names = [*FIGURES["imagenet"], *FIGURES["nlp"], *pipeline.models["model"],
             *pipeline.nlp["model"], *pipeline.beyond["autoencoders"]["model"]]  # fmt: skip
    for name in names:
        assert f"{name.rsplit('/', 1)[-1]}.png" in html, name
    for table in ("models.tsv", "trends.tsv", "provenance.json", "paper_comparison.tsv"):
        assert table in html, table
    assert "The paper, side by side" in html


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.is_file() and text in path.read_text():
            return True
        time.sleep(0.02)
    return False


def test_killed_spectra_job_leaves_no_complete_output(pipeline: Pipeline) -> None:
    workdir = pipeline.workdir
    target = f"results/imagenet/spectra/{KILLED}.parquet"
    log = workdir / "logs" / "model_spectra" / "imagenet" / f"{KILLED}.log"
    (workdir / target).unlink()
    (workdir / "results" / "imagenet" / "method_spectra" / f"{KILLED}.parquet").unlink()
    log.unlink()  # the previous run's log says "analysing" too
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir), "--workflow-profile", "none", "--cores", "1", target,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        started = _wait_for(log, f"{KILLED} ({KILLED}): analysing", proc, timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert started, "the model_spectra job never reached its analysis step"
    assert "wrote" not in log.read_text(), "the job finished before it could be killed"
    assert not (workdir / target).exists()
    results = workdir / "results" / "imagenet"
    leftovers = [p.name for d in ("spectra", "method_spectra") for p in (results / d).iterdir()
                 if KILLED in p.name]  # fmt: skip
    assert leftovers == []

    # Snakemake plans the job again (the stale lock of the killed run needs --unlock first)
    assert snakemake(workdir, "--unlock").returncode == 0
    plan = snakemake(workdir, "-n", "--cores", "1", target)
    assert plan.returncode == 0, plan.stderr[-4000:]
    assert re.search(r"^model_spectra_with_methods\s+1$", plan.stdout, re.M), plan.stdout[-3000:]
    rerun = snakemake(workdir, "--cores", "1", target)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert len(pd.read_parquet(workdir / target)) > 0
    assert f"{KILLED} ({KILLED}): wrote" in log.read_text()


def _job_counts(stdout: str) -> dict[str, int]:
    block = stdout.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def _dry_run(tmp_path: Path, *args: str) -> tuple[dict[str, int], str]:
    (tmp_path / "config").symlink_to(ROOT / "config")
    run = snakemake(tmp_path, "-n", *args)
    assert run.returncode == 0, run.stderr[-4000:]
    return _job_counts(run.stdout + run.stderr), run.stdout + run.stderr


def test_default_dry_run_plans_every_model_of_both_papers(tmp_path: Path) -> None:
    """The default config runs paper2019 (67 rows) and natcomm2021 (36 rows); rows that read the
    same file (the torchvision VGGs of both papers) share one download and one spectrum."""
    counts, out = _dry_run(tmp_path)
    table = read_model_table(IMAGENET_TABLES)
    papers = select_models(table, ["paper2019", "natcomm2021"])
    assert papers["set"].value_counts().to_dict() == {"paper2019": 67, "natcomm2021": 36}
    files = papers["weights"].nunique()
    assert files < len(papers)  # shared VGG files
    assert counts["download_weights"] == files
    # one spectra job per file: the main convention and its sets' methods (tsvd for paper2019,
    # ww2020 for natcomm2021) together; the study names methods, so no plain model_spectra
    assert counts["model_spectra_with_methods"] == files and "model_spectra" not in counts
    assert counts["esd_figures"] == 1  # every model's ESD figure in one job
    assert counts["method_aggregate"] == 2 and counts["set_alpha_histogram"] == 2
    assert counts["paper_comparison"] == 1 and counts["aggregate"] == 1
    for weights in papers["weights"]:
        assert f"results/imagenet/spectra/{weights}.parquet" in out, weights
    assert "output: results/imagenet/figures/esd\n" in out  # a folder of {model}.png/.pdf
    for figure in ("mm2019_fig3_vgg", "mm2019_fig4_resnet", "mm2019_appendix", "mm2019_tsvd",
                   "natcomm2021_table1"):  # fmt: skip
        assert f"results/imagenet/figures/{figure}.png" in out, figure
    assert "results/nlp" not in out  # the default runs the ImageNet study alone


def test_core_dry_run_plans_one_job_per_core_model(tmp_path: Path) -> None:
    counts, _ = _dry_run(tmp_path, "--quiet", "rules", "--config", "model_set=core")
    core = select_models(read_model_table(ROOT / "config" / "studies" / "imagenet.tsv"), "core")
    assert len(core) == 69
    assert counts["download_weights"] == 69
    assert counts["model_spectra"] == 69
    assert counts["esd_figures"] == 1
    assert counts["trend_figure"] == 2  # vgg and resnet of the figure table
    assert "model_spectra_with_methods" not in counts  # no set of core's names a method
    assert counts["aggregate"] == 1 and counts["provenance"] == 1


def test_nlp_dry_run_plans_one_download_and_spectrum_per_core_checkpoint(tmp_path: Path) -> None:
    counts, out = _dry_run(tmp_path, "--config", "studies=[nlp]")
    table = pd.read_csv(ROOT / "config" / "studies" / "nlp.tsv", sep="\t", dtype=str)
    core = table[table["set"] == "core"]
    files = core["weights"].nunique()
    assert files == len(core) - 1  # pythia-410m's last step is also the size family's 410m
    assert counts["download_weights"] == files and counts["model_spectra"] == files
    assert counts["esd_figures"] == 1
    assert counts["trajectory_figure"] == 1  # pythia-410m-trajectory (1.4b is in set all)
    assert counts["aggregate"] == 1 and "paper_comparison" not in counts
    for weights in core["weights"]:
        assert f"resources/weights/{weights}.hf.json" in out, weights
        assert f"results/nlp/spectra/{weights}.parquet" in out, weights
    assert "results/imagenet" not in out


def test_every_study_plans(tmp_path: Path) -> None:
    """The four studies of config/studies/ validate and plan together: one aggregate each."""
    counts, out = _dry_run(tmp_path, "--quiet", "rules", "--config",
                           "studies=[imagenet,nlp,segmentation,autoencoders]")  # fmt: skip
    assert counts["aggregate"] == 4 and counts["families_figure"] == 4
    assert counts["correlation_flow_figure"] == 4


def test_answer_table_plans_every_studys_jobs(tmp_path: Path) -> None:
    """`snakemake -n results/summary/beyond_imagenet.tsv` with all four studies plans one
    download and one spectrum per weight file of each study's default selection, and each
    study's aggregate."""
    counts, out = _dry_run(tmp_path, "results/summary/beyond_imagenet.tsv", "--config",
                           "studies=[imagenet,nlp,segmentation,autoencoders]")  # fmt: skip
    files = {}
    for name in ("imagenet", "nlp", "segmentation", "autoencoders"):
        study = studies.read_study(ROOT / "config" / "studies" / f"{name}.yaml")
        selected, _ = study.select(study.read_table())
        files[name] = selected["weights"].nunique()
        for weights in selected["weights"]:
            assert f"results/{name}/spectra/{weights}.parquet" in out, weights
    # imagenet's default sets name the papers' methods: its files' jobs also write those
    assert counts["model_spectra_with_methods"] == files["imagenet"]
    assert counts["model_spectra"] == sum(files.values()) - files["imagenet"]
    assert counts["download_weights"] == sum(files.values())
    assert counts["aggregate"] == 4 and counts["beyond_imagenet_summary"] == 1
    assert "esd_figures" not in counts  # only what the answer table needs


def test_bad_selection_stops_before_any_job(tmp_path: Path) -> None:
    (tmp_path / "config").symlink_to(ROOT / "config")
    run = snakemake(tmp_path, "-n", "--config", "model_set=[resnet18,no_such_net]")
    assert run.returncode != 0
    assert "no_such_net matched no model of any study (imagenet)" in run.stdout + run.stderr
    run = snakemake(tmp_path, "-n", "--config", "convention=bogus")
    assert run.returncode != 0
    assert "'bogus' is not one of ['paper', 'ww', 'ww2020']" in run.stdout + run.stderr
    assert "Job stats" not in run.stdout + run.stderr


def test_offline_flag_as_typed_on_the_command_line(tmp_path: Path) -> None:
    """`--config offline=true` (a string to Snakemake) is the offline mode: the download of a
    missing file fails saying so, without a request; `offline=false` is not (it tries the closed
    port); a word other than true/false stops at the schema."""
    shutil.copytree(TEST_CONFIG, tmp_path / "config")
    target = "resources/weights/shufflenet_v2_x0_5.pth"
    common = ["--cores", "1", "--config", "studies=[imagenet]", "download_retries=0",
              "torchvision_url=http://127.0.0.1:9"]  # fmt: skip
    log = tmp_path / "logs" / "download_weights" / "shufflenet_v2_x0_5.pth.log"
    for typed, offline in (("true", True), ("FALSE", False)):
        run = snakemake(tmp_path, *common, f"offline={typed}", "--", target)
        assert run.returncode != 0 and log.is_file(), run.stderr[-3000:]
        text = log.read_text()
        assert ("offline mode, and its weight file" in text) is offline, text[-2000:]
        assert ("downloading http://127.0.0.1:9/" in text) is not offline, text[-2000:]
        log.unlink()
    run = snakemake(tmp_path, "-n", "--config", "offline=maybe")
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "On instance['offline']" in out and "Job stats" not in out


def test_bad_model_table_stops_before_any_job_naming_the_row(tmp_path: Path) -> None:
    shutil.copytree(TEST_CONFIG, tmp_path / "config")
    table = pd.read_csv(
        TEST_CONFIG / "studies" / "imagenet.tsv", sep="\t", dtype=str, keep_default_na=False
    )
    table.loc[1, "top1"] = ""  # line 3: missing accuracy
    table = pd.concat([table, table.iloc[[0]]])  # last line: duplicate key
    table.to_csv(tmp_path / "config" / "studies" / "imagenet.tsv", sep="\t", index=False)
    run = snakemake(tmp_path, "-n")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "line 3 (model 'shufflenet_v2_x1_0')" in out, out[-3000:]
    dup = f"line {len(table) + 1} (model 'shufflenet_v2_x0_5'): duplicate model key"
    assert dup in out, out[-3000:]
    assert "Job stats" not in out


def test_lint_and_snakefmt_clean() -> None:
    lint = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--workflow-profile", "none"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, lint.stdout
    fmt = subprocess.run(
        ["snakefmt", "--check", "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
