"""Studies: their definitions and tables (config/studies/), the NLP table against the shared
figures, and the trend statistics a study adds (Kendall τ's interval and p-value, log10
qualities, trends per family across sets)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from snakemake.utils import validate

from htsr.studies import study as studies
from htsr.studies import trends
from htsr.studies.table import ModelTableError, Quality, read_model_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "studies"
SCHEMA = ROOT / "workflow" / "schemas" / "study.schema.yaml"
# the studies of spectra; a YAML with a `comparison` is a comparison (tests/test_guide_compare.py)
STUDIES = sorted(
    p.stem for p in (ROOT / "config" / "studies").glob("*.yaml")
    if "comparison" not in yaml.safe_load(p.read_text())
)  # fmt: skip


def _tool():
    spec = importlib.util.spec_from_file_location(
        "make_study_tables", ROOT / "tools" / "make_study_tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", STUDIES)
def test_study_definitions_validate_and_their_tables_read(name: str) -> None:
    path = ROOT / "config" / "studies" / f"{name}.yaml"
    spec = yaml.safe_load(path.read_text())
    validate(spec, str(SCHEMA))
    study = studies.read_study(path)
    if study.experiment:  # its models are the grid the pipeline trains (tests/test_experiments)
        table = study.read_table()
    else:
        table = read_model_table([ROOT / t for t in study.tables], quality=study.quality)
    selected, unknown = study.select(table)
    assert len(selected) > 0 and unknown == []
    families = set(table["family"])
    assert set(study.figure_families) <= families
    assert set(study.trajectories) <= families
    for family in study.trajectories:
        assert table.loc[table["family"] == family, "step"].notna().all()
    for family in families:
        assert study.headline_of(family).name in table.columns


@pytest.mark.parametrize("study", ["nlp", "segmentation", "autoencoders"])
def test_study_table_is_the_generator_output_and_every_quality_the_shared_figure(
    study: str,
) -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared/studies is not beside the repository")
    committed = pd.read_csv(ROOT / "config" / "studies" / f"{study}.tsv", sep="\t", dtype=str,
                            keep_default_na=False)  # fmt: skip
    tool = _tool()
    built = tool.build(SHARED, study).fillna("").astype(str)
    pd.testing.assert_frame_equal(committed, built)
    files = tool.SPECS[study]["files"]
    long = pd.concat([pd.read_csv(SHARED / f, sep="\t", dtype=str) for f in files])
    table = committed.set_index("model")
    # an SD VAE's encoder and decoder rows repeat the whole VAE's quality
    parts = table.index.str.endswith((".encoder", ".decoder"))
    for key in table.index[parts]:
        whole = table.loc[key.rsplit(".", 1)[0]]
        assert table.loc[key, long["quality_metric"].unique()].equals(
            whole[long["quality_metric"].unique()]), key  # fmt: skip
        assert table.loc[key, "weights"] == whole["weights"]
    table = table[~parts]
    assert len(long) == sum((table[c] != "").sum() for c in long["quality_metric"].unique())
    for rec in long.itertuples():
        ours = table.loc[rec.model.replace("@", "."), rec.quality_metric]
        assert float(ours) == float(rec.quality), (rec.model, rec.quality_metric)
        assert rec.quality_source in table.loc[rec.model.replace("@", "."), "quality_source"]


def test_autoencoder_views_rate_aware_quality_levels_and_vae_parts() -> None:
    """rd_gain_db is the residual of a quadratic OLS in log10 bpp (statsmodels) per training
    distortion; level families hold every architecture at one level; the SD VAEs' parts select
    their own layers and the whole leaves out the loss's networks."""
    import statsmodels.api as sm

    from htsr.studies.table import select_layers

    study = studies.read_study(ROOT / "config" / "studies" / "autoencoders.yaml")
    table = study.read_table()
    codecs = table[table["family"].str.startswith("compressai_")]
    for objective, group in codecs.groupby(codecs["family"].str.endswith("_ms-ssim")):
        d = (-10 * np.log10(1 - group["ms_ssim_rgb"])) if objective else group["psnr_rgb_db"]
        x = np.log10(group["bpp"].to_numpy())
        fit = sm.OLS(d.to_numpy(), np.column_stack([np.ones_like(x), x, x**2])).fit()
        np.testing.assert_allclose(group["rd_gain_db"], fit.resid, atol=1e-6)
        assert abs(group["rd_gain_db"].mean()) < 1e-6
    level = codecs["model"].str.extract(r"_q(\d)$")[0]
    objective = np.where(codecs["family"].str.endswith("_ms-ssim"), "ms-ssim", "mse")
    expected = "compressai_" + pd.Series(objective, codecs.index) + "_level" + level
    assert (codecs["level_family"] == expected).all()
    assert (codecs.groupby("level_family").size() >= 4).all()  # cheng2020 stops at level 6
    vae = table[table["family"].str.startswith("sd_vae")]
    assert sorted(set(vae["family"])) == ["sd_vae_kl-f8", "sd_vae_kl-f8_decoder",
                                          "sd_vae_kl-f8_encoder"]  # fmt: skip
    layers = pd.DataFrame({"layer": ["encoder.conv_in", "quant_conv", "post_quant_conv",
                                     "decoder.up.0.block.0.conv1", "loss.discriminator.main.0",
                                     "loss.perceptual_loss.net.slice1.0"]})  # fmt: skip
    picked = {r.family: set(select_layers(layers, r.layers)["layer"]) for r in vae.itertuples()}
    assert picked["sd_vae_kl-f8_encoder"] == {"encoder.conv_in", "quant_conv"}
    assert picked["sd_vae_kl-f8_decoder"] == {"decoder.up.0.block.0.conv1", "post_quant_conv"}
    assert picked["sd_vae_kl-f8"] == picked["sd_vae_kl-f8_encoder"] | picked["sd_vae_kl-f8_decoder"]
    assert all(study.headline_of(f).name == "psnr_coco2017_db" for f in picked)


def test_nlp_core_set_is_a_workstation_run() -> None:
    study = studies.read_study(ROOT / "config" / "studies" / "nlp.yaml")
    table = study.read_table()
    core = table[table["set"] == "core"].drop_duplicates("weights")
    # download estimate: float16 weights (Pythia, OPT, BLOOM .bin), float32 (GPT-2 safetensors)
    nbytes = np.where(core["family"] == "gpt2", 4, 2) * core["num_params"]
    assert nbytes.sum() / 1e9 < 60
    counts = table[table["set"] == "core"].groupby("family").size()
    assert (counts >= 3).all(), counts  # every core family can be fitted
    assert {"pythia", "pythia-deduped", "pythia-410m-trajectory", "gpt2", "opt",
            "bloom"} == set(counts.index)  # fmt: skip


def test_quality_columns_are_validated(tmp_path: Path) -> None:
    q = (Quality("acc", low=0, high=1), Quality("ppl", transform="log10"))
    base = {"model": "m", "family": "f", "source": "hf", "repo": "o/r", "set": "core",
            "num_params": "10", "quality_source": "x"}  # fmt: skip
    for cells, message in (({"acc": "1.5", "ppl": "3"}, r"acc = 1.5 is outside \(0, 1\]"),
                           ({"acc": "", "ppl": "-2"}, "ppl = -2.0 must be > 0"),
                           ({"acc": "", "ppl": ""}, "no quality value"),
                           ({"acc": "x", "ppl": "2"}, "acc is missing or not a number"),
                           ):  # fmt: skip
        path = tmp_path / "t.tsv"
        pd.DataFrame([base | cells]).to_csv(path, sep="\t", index=False)
        with pytest.raises(ModelTableError, match=rf"line 2 \(model 'm'\): {message}"):
            read_model_table(path, quality=q)
    pd.DataFrame([base | {"acc": "", "ppl": "2"}]).to_csv(path, sep="\t", index=False)
    table = read_model_table(path, quality=q)
    assert math.isnan(table.loc[0, "acc"]) and table.loc[0, "ppl"] == 2.0
    # a study of weights without a published quality (unrated: true) takes empty rows, and
    # still refuses a bad value
    pd.DataFrame([base | {"acc": "", "ppl": ""}]).to_csv(path, sep="\t", index=False)
    table = read_model_table(path, quality=q, unrated=True)
    assert table[["acc", "ppl"]].isna().all().all()
    pd.DataFrame([base | {"acc": "2", "ppl": ""}]).to_csv(path, sep="\t", index=False)
    with pytest.raises(ModelTableError, match=r"acc = 2.0 is outside"):
        read_model_table(path, quality=q, unrated=True)
    study = studies.study_from_dict("s", {"quality": [{"name": "acc", "headline": True}],
                                          "unrated": True})  # fmt: skip
    assert study.unrated and not studies.study_from_dict("s", {"quality": [
        {"name": "acc", "headline": True}]}).unrated  # fmt: skip


def _tau_b(x: np.ndarray, y: np.ndarray) -> float:
    sx, sy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
    return float((sx * sy).sum() / math.sqrt((sx * sx).sum() * (sy * sy).sum()))


def test_kendall_tau_interval_is_scipys_tau_b_over_bootstrap_resamples() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 12).astype(float)  # ties, as resamples have
    y = x + rng.normal(0, 2, 12)
    assert _tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
    lo, hi = trends.kendall_tau_interval(x, y, n_boot=400, seed=7)
    idx = np.random.default_rng(7).integers(0, 12, size=(400, 12))
    taus = [stats.kendalltau(x[i], y[i]).statistic for i in idx]
    taus = np.array([t for t in taus if np.isfinite(t)])
    assert lo == pytest.approx(np.quantile(taus, 0.025)) and hi == pytest.approx(
        np.quantile(taus, 0.975)
    )
    assert lo <= stats.kendalltau(x, y).statistic <= hi
    fit = trends.fit_trend(x, y, n_boot=400, seed=7)
    assert (fit.kendall_tau_low, fit.kendall_tau_high) == (lo, hi)
    assert fit.kendall_p == pytest.approx(stats.kendalltau(x, y).pvalue)
    assert math.isnan(trends.fit_trend(x, y).kendall_tau_low)  # no bootstrap asked


def test_family_trends_per_quality_with_log10_and_families_across_sets() -> None:
    models = pd.DataFrame({
        "model": list("abcdef"), "family": ["F"] * 6, "set": ["core"] * 4 + ["all"] * 2,
        "alpha_weighted": [2.0, 2.5, 3.0, 3.5, 4.0, 4.5],
        "acc": [0.8, 0.7, 0.65, 0.5, 0.45, 0.3],
        "ppl": [10.0, 20.0, 30.0, 80.0, 100.0, 400.0],
        "other": [np.nan] * 6,
    })  # fmt: skip
    quality = [Quality("acc"), Quality("ppl", transform="log10"), Quality("other")]
    out = trends.family_trends(models, metrics=["alpha_weighted"], quality=quality,
                               group_by=["family"], n_boot=200)  # fmt: skip
    assert list(out["quality"]) == ["acc", "ppl"]  # no rows for a quality the family lacks
    assert set(out["set"]) == {"core+all"} and (out["n"] == 6).all()
    ppl = out.set_index("quality").loc["ppl"]
    lr = stats.linregress(models["alpha_weighted"], np.log10(models["ppl"]))
    assert ppl["slope"] == pytest.approx(lr.slope) and ppl["transform"] == "log10"
    assert ppl["kendall_tau"] == pytest.approx(1.0) and ppl["kendall_p"] == pytest.approx(
        stats.kendalltau(models["alpha_weighted"], models["ppl"]).pvalue)  # fmt: skip
    by_set = trends.family_trends(models, metrics=["alpha_weighted"], quality=quality[:1])
    assert list(by_set["set"]) == ["core", "all"]  # the default groups by (set, family)


def test_torchvision_segmentation_rows_match_torchvisions_metadata() -> None:
    """The segmentation table's torchvision mIoU and pixel accuracy are the weights enums'."""
    import torchvision.models

    study = studies.read_study(ROOT / "config" / "studies" / "segmentation.yaml")
    table = study.read_table()
    rows = table[table["source"] == "torchvision"]
    assert len(rows) == 6
    for rec in rows.itertuples():
        meta = torchvision.models.get_weight(rec.weights_tag).meta["_metrics"]
        (metrics,) = meta.values()  # COCO-val2017-VOC-labels
        assert rec.miou == pytest.approx(metrics["miou"]), rec.model
        assert rec.pixel_acc == pytest.approx(metrics["pixel_acc"]), rec.model
        assert torchvision.models.get_weight(rec.weights_tag).meta["num_params"] == rec.num_params
