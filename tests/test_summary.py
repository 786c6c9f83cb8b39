"""The cross-study answer (htsr.studies.summary): the verdict rule and the table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from htsr.studies import summary
from htsr.studies.trends import TREND_COLUMNS


@pytest.mark.parametrize(
    ("tau", "low", "high", "n", "better", "expected"),
    [
        (-0.8, -0.95, -0.5, 8, True, "holds"),  # accuracy rises as alpha falls
        (0.8, 0.5, 0.95, 8, False, "holds"),  # perplexity falls as alpha falls
        (0.8, 0.5, 0.95, 8, True, "fails"),
        (-0.8, -0.95, -0.5, 8, False, "fails"),
        (-0.6, -0.95, 0.2, 8, True, "undecided"),  # the interval contains 0
        (-1.0, -1.0, -1.0, 3, True, "undecided"),  # too few models to decide
        (-0.8, math.nan, math.nan, 8, True, "undecided"),
    ],
)
def test_verdict_rule(tau, low, high, n, better, expected) -> None:
    assert summary.verdict(tau, low, high, n, better) == expected


def test_answer_table_rows_signs_and_reference() -> None:
    def trend(family: str, quality: str, tau: float, low: float, high: float, n: int,
              status: str = "ok") -> dict:  # fmt: skip
        row = dict.fromkeys(TREND_COLUMNS, math.nan)
        row.update(set="core", family=family, quality=quality, transform="", metric="alpha",
                   n=n, slope=tau, r2=0.5, kendall_tau=tau, kendall_tau_low=low,
                   kendall_tau_high=high, kendall_p=0.01, status=status)  # fmt: skip
        return row

    trends = {
        "imagenet": pd.DataFrame([trend("VGG", "top1", -0.9, -1.0, -0.6, 8),
                                  trend("ViT", "top1", -0.9, -1.0, -0.6, 8)]),
        "autoencoders": pd.DataFrame([trend("codec", "bpp", 0.9, 0.6, 1.0, 8)]),
        "nlp": pd.DataFrame([trend("pythia", "ppl", -0.7, -0.9, -0.3, 8),
                             trend("pythia", "acc", 0.2, -0.5, 0.8, 8),
                             trend("opt", "acc", math.nan, math.nan, math.nan, 2,
                                   "too_few_models")]),
    }  # fmt: skip
    better = {("imagenet", "top1"): True, ("nlp", "ppl"): False, ("nlp", "acc"): True}
    table = summary.answer_table(trends, better, non_cnn={"imagenet": ["ViT"], "nlp": "all"})
    assert list(table.columns) == list(summary.ANSWER_COLUMNS)
    # the unfitted opt row is not listed, nor the rate (bpp: not among the judged qualities)
    assert len(table) == 4 and "bpp" not in set(table["quality"])
    by = table.set_index(["study", "family", "quality"])
    assert by["non_cnn"].to_dict() == {("imagenet", "VGG", "top1"): False,
                                       ("imagenet", "ViT", "top1"): True,
                                       ("nlp", "pythia", "ppl"): True,
                                       ("nlp", "pythia", "acc"): True}  # fmt: skip
    assert by.loc[("imagenet", "VGG", "top1"), "verdict"] == "holds"
    assert bool(by.loc[("imagenet", "VGG", "top1"), "reference"])
    ppl = by.loc[("nlp", "pythia", "ppl")]
    assert ppl["verdict"] == "fails" and ppl["claim_tau"] == pytest.approx(-0.7)
    assert not ppl["agrees"] and not ppl["reference"]
    assert by.loc[("nlp", "pythia", "acc"), "verdict"] == "undecided"


def test_answer_text_is_generated_from_the_table() -> None:
    table = pd.DataFrame([
        {"study": "imagenet", "family": "VGG", "metric": "alpha_weighted", "verdict": "holds",
         "reference": True, "non_cnn": False},
        {"study": "imagenet", "family": "ViT", "metric": "alpha_weighted", "verdict": "holds",
         "reference": True, "non_cnn": True},
        {"study": "nlp", "family": "pythia", "metric": "alpha_weighted", "verdict": "fails",
         "reference": False, "non_cnn": True},
        {"study": "nlp", "family": "gpt2", "metric": "alpha_weighted", "verdict": "undecided",
         "reference": False, "non_cnn": True},
        {"study": "autoencoders_trained", "family": "conv_ae_code", "metric": "alpha_weighted",
         "verdict": "holds", "reference": False, "non_cnn": False, "kendall_tau": -0.6,
         "kendall_tau_low": -0.8, "kendall_tau_high": -0.3, "n": 18, "layers": "all",
         "quality_range": 3.0, "seed_sd": 0.2, "alpha_hat_inverts": False, "simpson": False},
    ])  # fmt: skip
    text = summary.answer_text(table)
    # a question whose pretrained study did not run is answered by the families trained here
    answered = (
        "**Autoencoders (reconstruction quality)**: no pretrained family in this run (it"
        " needs the real weights: `snakemake --cores 16 --config"
        " 'studies=[imagenet,autoencoders]'`); on models trained here"
        " (autoencoders_trained): 1 holds (conv_ae_code); 0 fails; 0 undecided."
    )
    assert answered in text
    assert "  - conv_ae_code (n = 18, layers `all`): α̂ τ = -0.60 [-0.80, -0.30], holds" in text
    assert "**ImageNet (reference)**: 2 holds (VGG, ViT); 0 fails; 0 undecided." in text
    non_cnn = "**Non-CNN architectures (transformers, graph and capsule networks)**"
    assert (f"{non_cnn} (imagenet, nlp): 1 holds (imagenet/ViT); 1 fails (nlp/pythia);"
            " 1 undecided (nlp/gpt2).") in text  # fmt: skip
    assert ("**Graph networks, trained here**: no fitted family in this run; it needs a run:"
            " `snakemake --cores 16 --config 'studies=[gnn,gnn_citeseer]'`.") in text  # fmt: skip
    assert "**NLP (language models)** (nlp): 0 holds; 1 fails (pythia); 1 undecided (gpt2)." in text
    assert "**Semantic segmentation**: no fitted family in this run" in text
    assert "'studies=[imagenet,segmentation]'" in text


def test_declared_and_all_layers_pooled_view_and_simpson() -> None:
    """Two families whose trend is negative within each but positive pooled (their qualities
    sit at different levels): the pooled row flags Simpson's paradox; a family with a
    ``layers`` pattern also gets its all-layers row; λmax < 1 is reported."""
    from htsr.studies.table import Quality

    rows = []
    for family, shift in (("a", 0.0), ("b", 10.0)):
        for setting in range(5):
            for seed in range(3):
                alpha = shift + setting + 0.1 * seed
                rows.append({"model": f"{family}{setting}{seed}", "family": family, "set": "",
                             "setting": setting, "seed": seed, "test_acc": shift - setting
                             - 0.05 * seed, "alpha": alpha, "alpha_weighted": alpha,
                             "log_norm": alpha, "alpha_all_layers": -alpha,
                             "alpha_weighted_all_layers": -alpha, "log_norm_all_layers": -alpha,
                             "layers": "convs" if family == "a" else "",
                             "lambda_max_below_1": 0.5 if family == "a" else 0.0})  # fmt: skip
    models = pd.DataFrame(rows)
    quality = [Quality("test_acc")]
    from htsr.studies.trends import ALL_LAYER_METRICS, family_trends

    within = family_trends(models, quality=quality, metrics=["alpha_weighted", "alpha",
                                                              *ALL_LAYER_METRICS],
                           group_by=["family"], n_boot=200)  # fmt: skip
    pooled = summary.pooled_trends(models, quality, n_boot=200)
    table = summary.answer_table({"s": pd.concat([within, pooled])}, {("s", "test_acc"): True},
                                 models={"s": models})  # fmt: skip
    hat = table[table["metric"] == "alpha_weighted"].set_index(["family", "layers_choice"])
    assert hat.loc[("a", "declared"), "verdict"] == "holds"  # within: tau -1
    assert hat.loc[("a", "declared"), "layers"] == "convs"
    assert hat.loc[("a", "all"), "verdict"] == "fails" and hat.loc[("a", "all"), "layers"] == "all"
    assert ("b", "all") not in hat.index  # no declared part: its declared row is every layer
    assert hat.loc[("b", "declared"), "layers"] == "all"
    pooled_row = hat.loc[(summary.POOLED, "declared")]
    assert pooled_row["kendall_tau"] > 0 and bool(pooled_row["simpson"])
    assert bool(hat.loc[("a", "declared"), "alpha_hat_inverts"])
    assert not bool(hat.loc[("b", "declared"), "alpha_hat_inverts"])
    # the quality's spread across settings (4 points) against the seeds' sd (0.05)
    assert hat.loc[("a", "declared"), "quality_range"] == pytest.approx(4.0)
    assert hat.loc[("a", "declared"), "seed_sd"] == pytest.approx(0.05)
    text = summary.answer_text(table.assign(study="cnn_batch_size"))
    assert "Simpson" in text and "λmax < 1 in 50 %" in text and "α̂ over all layers" in text


def test_readme_answer_block_is_replaced(tmp_path) -> None:
    import importlib.util
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "readme_answer.py"
    spec = importlib.util.spec_from_file_location("readme_answer", tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = "intro\n<!-- answer:begin -->\nold\n<!-- answer:end -->\nrest\n"
    out = module.replace_answer(readme, "# Title\n\n- line 1\n", "snakemake x")
    assert out == ("intro\n<!-- answer:begin -->\nGenerated from the run `snakemake x`:\n\n"
                   "- line 1\n<!-- answer:end -->\nrest\n")  # fmt: skip
    with pytest.raises(ValueError, match="answer:begin"):
        module.replace_answer("no markers", "x")
