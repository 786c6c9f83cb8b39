"""htsr.plots: every figure renders from realistic tables, degrades to a note, saves atomically."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox
from PIL import Image

from htsr.figures.commands import esd_figure, largest_matrix
from htsr.figures.common import TOP1_LABEL, save_figure, short_name
from htsr.figures.spectra import alpha_histogram_figure
from htsr.figures.studies import paper_comparison_figure
from htsr.figures.trends import (
    families_figure,
    metrics_comparison_figure,
    parse_panels,
    trend_figure,
)
from htsr.studies import trends
from htsr.studies.table import read_model_table, select_models

ROOT = Path(__file__).resolve().parents[1]

FAMILIES = {  # family -> (model, top1) of the core set's VGG and ResNet series
    "VGG": [("vgg11", 69.02), ("vgg13", 69.928), ("vgg16", 71.592), ("vgg19", 72.376)],
    "VGG_BN": [("vgg11_bn", 70.37), ("vgg13_bn", 71.586), ("vgg16_bn", 73.36)]
    + [("vgg19_bn", 74.218)],
    "ResNet": [("resnet18", 69.758), ("resnet34", 73.314), ("resnet50", 76.13)]
    + [("resnet101", 77.374), ("resnet152", 78.312)],
    "ResNet_gluon": [("resnet18.gluon_in1k", 70.844), ("resnet34.gluon_in1k", 74.574)],
    "SqueezeNet": [("squeezenet1_0", 58.092), ("squeezenet1_1", 58.178)],
}


@pytest.fixture(scope="module")
def models() -> pd.DataFrame:
    """Per-model table with the real accuracies and plausible, seeded metric values."""
    rng = np.random.default_rng(3)
    rows = []
    for family, members in FAMILIES.items():
        for model, top1 in members:
            z = (top1 - 72.0) / 4.0
            rows.append(
                {
                    "model": model,
                    "family": family,
                    "source": "timm" if "." in model else "torchvision",
                    "top1": top1,
                    "top5": top1 + 18.0,
                    "alpha_weighted": 2.8 - 0.5 * z + rng.normal(0, 0.1),
                    "log_norm": 2.0 - 0.2 * z + rng.normal(0, 0.05),
                    "log_spectral_norm": 1.0 - 0.1 * z + rng.normal(0, 0.05),
                    "log_mean_spectral_norm": 1.2 - 0.1 * z + rng.normal(0, 0.05),
                    "log_alpha_norm": 2.5 - 0.4 * z + rng.normal(0, 0.1),
                    "alpha": 3.3 - 0.2 * z + rng.normal(0, 0.1),
                    "n_matrices": 40,
                }
            )
    return pd.DataFrame(rows)


def _labels(fig: Figure) -> list[list[Annotation]]:
    return [[t for t in ax.texts if isinstance(t, Annotation)] for ax in fig.axes]


def _save_and_check(fig: Figure, tmp_path: Path, name: str) -> None:
    png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
    save_figure(fig, [png, pdf])
    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) > 300
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


FIGURE_TABLE = pd.read_csv(
    ROOT / "config" / "studies" / "imagenet_figures.tsv", sep="\t", dtype=str
).set_index("figure")


def _figure(name: str, models: pd.DataFrame, table: pd.DataFrame | None = None) -> Figure:
    """A figure of config/studies/imagenet_figures.tsv (the core set's rows), fits from
    ``table`` or fitted here."""
    spec = FIGURE_TABLE.loc[name]
    fits = trends.family_trends(models) if table is None else table
    return trend_figure(models, fits, families=spec["families"], metrics=spec["metrics"],
                              title=spec["title"])  # fmt: skip


def test_vgg_figure_names_every_point_without_overlap(models: pd.DataFrame, tmp_path) -> None:
    fig = _figure("vgg", models)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2
    renderer = fig.canvas.get_renderer()
    vgg_names = {m for fam in ("VGG", "VGG_BN") for m, _ in FAMILIES[fam]}
    for ax, labels in zip(panels, _labels(fig), strict=True):
        assert {a.get_text() for a in labels} == vgg_names
        boxes = [_text_box(a, renderer) for a in labels]
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)
        assert ax.get_legend() is not None
        markers = {c.get_paths()[0].vertices.shape for c in ax.collections}
        assert len(markers) == 2  # circles and squares differ
        stats = ax.texts[0].get_text()
        assert "VGG: R² = " in stats and "VGG_BN: R² = " in stats and "RMSE" in stats
        assert "τ = " in stats
    assert panels[0].get_xlabel() == "top-1 accuracy (%)"
    assert "dimensionless" in panels[1].get_ylabel()
    _save_and_check(fig, tmp_path, "vgg")


def test_resnet_figure_notes_too_few_gluon_models(models: pd.DataFrame, tmp_path) -> None:
    fig = _figure("resnet", models)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 4
    assert "ResNet: R² = " in panels[1].texts[0].get_text()
    gluon = panels[3].texts[0].get_text()
    assert "ResNet_gluon: n=2, no fit (too_few_models)" in gluon
    assert {a.get_text() for a in _labels(fig)[3]} == {"resnet18", "resnet34"}  # tag dropped
    _save_and_check(fig, tmp_path, "resnet")


def test_absent_family_gives_a_note_not_a_crash(models: pd.DataFrame, tmp_path) -> None:
    fig = _figure("vgg", models[~models["family"].str.startswith("VGG")])
    for ax in fig.axes:
        assert "no models" in ax.texts[0].get_text()
        assert list(ax.get_xticks()) == []
    fig = _figure("vgg", models.drop(columns="log_norm"))
    assert "not in the models table" in fig.axes[0].texts[0].get_text()
    _save_and_check(fig, tmp_path, "empty")


def test_trend_figure_reads_the_saved_fit(models: pd.DataFrame) -> None:
    """The line and the statistics come from the trends table, not from a new fit."""
    table = trends.family_trends(models)
    doctored = table.copy()
    hit = (doctored["family"] == "VGG") & (doctored["metric"] == "alpha_weighted")
    doctored.loc[hit, ["r2", "rmse", "kendall_tau"]] = [0.123, 9.87, -0.456]
    fig = _figure("vgg", models, doctored)
    stats = fig.axes[1].texts[0].get_text()
    assert "VGG: R² = 0.12, RMSE = 9.87 pp (n=4)\nτ = -0.46" in stats


def test_panels_parse_groups_and_metrics() -> None:
    panels = parse_panels("A+B;C", "log_norm;alpha_weighted", set_name="s")
    assert [(p.families, p.metric) for p in panels] == [
        (("A", "B"), "log_norm"), (("A", "B"), "alpha_weighted"),
        (("C",), "log_norm"), (("C",), "alpha_weighted"),
    ]  # fmt: skip
    assert {p.set for p in panels} == {"s"}
    with pytest.raises(ValueError, match="needs families and metrics"):
        parse_panels("", "log_norm")


def test_same_family_in_two_sets_is_drawn_per_set(models: pd.DataFrame) -> None:
    both = pd.concat([models.assign(set="a"), models.assign(set="b", top1=models["top1"] - 5)])
    fig = families_figure(both, trends=trends.family_trends(both))
    titles = {ax.get_title() for ax in fig.axes if ax.get_visible()}
    assert {"VGG (a)", "VGG (b)", "ResNet (a)", "ResNet (b)"} <= titles


def test_paper_comparison_figure_draws_each_statistic(tmp_path) -> None:
    table = pd.DataFrame({
        "statistic": ["R2", "R2", "RMSE", "Kendall-tau", "alpha_hat"],
        "method": ["ww2020", "main", "ww2020", "ww2020", "tsvd"],
        "printed": [0.9, 0.9, 0.5, -0.8, 2.0], "ours": [0.91, 0.7, 0.52, -0.8, 2.1],
        "within_rounding": [True, False, True, True, False],
    })  # fmt: skip
    fig = paper_comparison_figure(table)
    titles = [ax.get_title() for ax in fig.axes]
    assert "1 of 2 within the printed rounding" in titles[0]
    assert "0 of 1 within" in titles[3]
    for ax in fig.axes:
        assert ax.get_xlabel() == "printed in the paper" and ax.get_ylabel() == "this run"
        assert any(line.get_label().startswith("y = x") for line in ax.get_lines())
    _save_and_check(fig, tmp_path, "comparison")


def test_families_figure_draws_families_with_three_models(models: pd.DataFrame) -> None:
    fig = families_figure(models)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["VGG", "VGG_BN", "ResNet"]
    note = fig._supxlabel.get_text()
    assert "ResNet_gluon" in note and "SqueezeNet" in note
    nan_metric = models.assign(alpha_weighted=np.nan)
    fig = families_figure(nan_metric)
    assert "no family has 3 or more models" in fig.axes[0].texts[0].get_text()
    assert fig.axes[0].get_visible() and fig.legends == []


@pytest.fixture(scope="module")
def core_models() -> pd.DataFrame:
    """The core set of config/studies/imagenet.tsv with seeded metrics (α̂ falls with top-1,
    plus noise)."""
    table = select_models(read_model_table(ROOT / "config" / "studies" / "imagenet.tsv"), "core")
    rng = np.random.default_rng(0)
    n, top1 = len(table), table["top1"].to_numpy(float)
    return table.assign(
        alpha_weighted=6.0 - 0.05 * top1 + rng.normal(0, 0.15, n),
        log_norm=2.0 - 0.01 * top1 + rng.normal(0, 0.05, n),
        log_spectral_norm=1.0 - 0.01 * top1 + rng.normal(0, 0.05, n),
        log_alpha_norm=2.5 - 0.02 * top1 + rng.normal(0, 0.1, n),
        alpha=3.3 - 0.01 * top1 + rng.normal(0, 0.1, n),
        n_matrices=40,
    )


def test_families_figure_names_every_model_without_overlap(
    core_models: pd.DataFrame, tmp_path
) -> None:
    fig = families_figure(core_models)
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert {"EfficientNet", "RegNetX"} <= {ax.get_title() for ax in panels}
    for ax in panels:
        family = core_models[core_models["family"] == ax.get_title()]
        labels = [t for t in ax.texts if isinstance(t, Annotation)]
        assert sorted(a.get_text() for a in labels) == sorted(map(short_name, family.model))
        assert all(a.get_fontsize() >= 6 for a in labels)
        boxes = [_text_box(a, renderer) for a in labels]
        stats = ax.texts[0]
        assert f"{ax.get_title()}: R² = " in stats.get_text()
        stats_box = stats.get_window_extent(renderer)
        panel_box = ax.get_window_extent(renderer)
        for box in boxes:
            assert not box.overlaps(stats_box), (ax.get_title(), box)
            assert panel_box.contains(box.x0, box.y0) and panel_box.contains(box.x1, box.y1)
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (ax.get_title(), a, b)
        assert ax.get_xlabel() == TOP1_LABEL
        assert ax.get_ylabel() == "α̂ (weighted α, dimensionless)"
        assert ax.get_legend() is None  # one legend for the figure
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "models",
        "least-squares fit (R² in panel)",
    ]
    assert not legend.get_window_extent(renderer).overlaps(
        fig._suptitle.get_window_extent(renderer)
    )
    _save_and_check(fig, tmp_path, "families")


def test_metrics_comparison_bars_are_the_trend_r2(models: pd.DataFrame, tmp_path) -> None:
    table = trends.family_trends(models)
    fig = metrics_comparison_figure(table)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 9) for p in ax.patches if p.get_height() > 0)
    expected = sorted(round(r, 9) for r in table.loc[table.status == "ok", "r2"] if r > 0)
    assert heights == expected
    assert len(ax.get_legend().get_texts()) == len(trends.METRICS)
    _save_and_check(fig, tmp_path, "metrics")
    empty = metrics_comparison_figure(table.assign(status="too_few_models"))
    assert "no family has enough models" in empty.axes[0].texts[0].get_text()


def test_alpha_histogram_share_and_clipping(tmp_path) -> None:
    alphas = np.array([1.5, 2.5, 3.0, 3.5, 4.5, 12.0, np.nan, 2.0, 4.0, 3.9])
    fig = alpha_histogram_figure(alphas, n_models=2)
    text = fig.axes[0].texts[-1].get_text()
    # finite: 9 values; strictly inside (2, 4): 2.5, 3.0, 3.5, 3.9 -> 4/9
    assert f"{4 / 9:.1%} of 9 matrices from 2 models have 2 < α < 4" in text
    assert "1 α outside [1, 8] not drawn" in text and "max 12.00" in text
    assert [line.get_xdata()[0] for line in fig.axes[0].lines] == [2.0, 4.0]
    _save_and_check(fig, tmp_path, "alpha")


def test_esd_figure_uses_the_largest_ok_matrix(tmp_path) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_t(3, size=(300, 120))
    evals = np.sort(np.linalg.eigvalsh(w.T @ w))
    table = pd.DataFrame(
        [
            {"layer": "big", "slice": "", "N": 900, "M": 900, "status": "too_large",
             "alpha": np.nan, "xmin": np.nan, "n_tail": 0, "evals": evals},
            {"layer": "fc", "slice": "", "N": 300, "M": 120, "status": "ok",
             "alpha": 3.2, "xmin": float(evals[-30]), "n_tail": 30, "evals": evals, "D": 0.05},
            {"layer": "small", "slice": "0,0", "N": 60, "M": 60, "status": "ok",
             "alpha": 2.0, "xmin": 1.0, "n_tail": 5, "evals": evals[:60]},
        ]
    )  # fmt: skip
    assert largest_matrix(table)["layer"] == "fc"
    fig = esd_figure(table, "toy")
    ax = fig.axes[0]
    assert ax.get_title() == "toy\nfc (300×120)\nα = 3.20, KS distance D = 0.050"
    assert ax.get_xscale() == ax.get_yscale() == "log"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "power-law fit, α = 3.20" in legend and any(t.startswith("xmin = ") for t in legend)
    assert any(t.startswith("λmax = ") for t in legend)
    _save_and_check(fig, tmp_path, "esd")
    failed = esd_figure(table.assign(status="fit_failed"), "toy")
    legend = [t.get_text() for t in failed.axes[0].get_legend().get_texts()]
    assert "no power-law fit (status fit_failed)" in legend


def _text_box(label: Annotation, renderer) -> Bbox:
    """The box of a label's text alone (an Annotation's own extent includes its leader line)."""
    label.update_positions(renderer)
    return Text.get_window_extent(label, renderer)
