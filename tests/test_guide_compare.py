"""The α-guided comparisons (issue 23): the declared studies, the verdict's statistics against
scipy, the training hooks on CPU, and the quick grid of every comparison end to end through the
pipeline (real MNIST subset slices, the real Cora, the real pretrained packages)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from scipy import stats
from snakemake.utils import validate

from htsr.experiments import datasets, train
from htsr.guide import compare, runs
from htsr.guide.compare import comparison_from_dict, paired_differences, t_interval, verdict
from htsr.guide.training import GuideHooks

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "comparison.schema.yaml"
COMPARISONS = {
    "guide_tempbalance_mnist": "training",
    "guide_tempbalance_cora": "training",
    "guide_alphadecay_mnist": "training",
    "guide_alphapruning_mnist": "pruning",
    "guide_modelbalancing_finetune": "finetuning",
    "guide_alphapruning_pretrained": "allocation",
}
SMALL = {"epochs": 2, "batch_size": 64, "lr": 0.05, "conv_width": 16, "fc_widths": [64, 64],
         "schedule": "cosine", "weight_decay": 5e-4}  # fmt: skip


def _spec(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / "studies" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparisons_are_declared_with_five_seeds(name: str) -> None:
    spec = _spec(name)
    validate(spec, str(SCHEMA))
    c = comparison_from_dict(name, spec)
    assert c.kind == COMPARISONS[name]
    if c.kind == "allocation":
        assert {w["name"] for w in c.weights} == {"efficientnet-lite0", "all-MiniLM-L6-v2"}
        assert c.sparsities == (0.5, 0.7, 0.9)
        return
    assert len(c.seeds) >= 5 and "excludes 0" in c.rule
    arms = {r.arm for r in c.scored}
    per_arm = pd.Series([r.arm for r in c.scored]).value_counts()
    if c.kind == "finetuning":
        assert arms == {"finetune", "modelbalancing"}
        assert {r.group for r in c.scored} == {"labels 1%", "labels 10%"}
        assert (per_arm == 2 * len(c.seeds)).all()
        pre = [r for r in c.runs if r.kind == "pretrain"]
        assert [r.classes for r in pre] == [(0, 1, 2, 3, 4)] * len(c.seeds)
        assert all(r.init == f"pretrain-s{r.seed}" and r.classes == (5, 6, 7, 8, 9)
                   for r in c.scored)  # fmt: skip
    else:
        assert (per_arm == len(c.seeds)).all()
        assert c.kind == "pruning" or c.baseline in arms
    quick = comparison_from_dict(name, spec, "quick")
    assert len(quick.seeds) == 2 and len(quick.runs) < len(c.runs)
    guided = [r for r in c.runs if r.guide]
    if name == "guide_alphadecay_mnist":  # the published interval, unscaled, fits 3 times
        (every,) = {r.guide["every"] for r in guided}
        steps = c.runs[0].hyperparameters["epochs"] * math.ceil(4000 / 32)
        assert every == 500 and steps // every >= 3
    with pytest.raises(ValueError, match="experiment_grid"):
        comparison_from_dict(name, spec, "huge")


def test_bad_comparisons_are_refused_naming_the_study() -> None:
    spec = _spec("guide_tempbalance_mnist")
    bad = json.loads(json.dumps(spec))
    bad["comparison"]["baseline"] = "nope"
    with pytest.raises(ValueError, match="study x: baseline 'nope' is not an arm"):
        comparison_from_dict("x", bad)
    bad["comparison"]["kind"] = "magic"
    with pytest.raises(ValueError, match="study x: comparison kind"):
        comparison_from_dict("x", bad)


def test_t_interval_and_verdict_against_scipy() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 5, 9):
        d = rng.normal(0.3, 1.0, n)
        ci = t_interval(d)
        ref = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
        assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
        assert ci.mean == pytest.approx(d.mean()) and ci.n == n
    assert math.isnan(t_interval([1.0]).low)
    assert verdict(0.1, 0.2) == "better" and verdict(-0.2, -0.1) == "worse"
    assert verdict(-0.2, -0.1, higher_is_better=False) == "better"
    assert verdict(-0.1, 0.1) == verdict(float("nan"), float("nan")) == "undecided"


def test_paired_differences_pair_by_seed_and_report_missing() -> None:
    rec = pd.DataFrame({
        "group": ["g"] * 7, "arm": ["base", "m"] * 3 + ["m"], "seed": [0, 0, 1, 1, 2, 2, 3],
        "quality": [90.0, 91.0, 80.0, 82.0, 70.0, np.nan, 60.0],
    })  # fmt: skip
    out = paired_differences(rec, "base").iloc[0]
    assert out["n"] == 2 and out["mean"] == pytest.approx(1.5)
    assert out["differences"] == "0:1;1:2" and out["missing"] == "2;3"
    ref = stats.ttest_1samp([1.0, 2.0], 0.0).confidence_interval(0.95)
    assert (out["low"], out["high"]) == pytest.approx((ref.low, ref.high))
    assert out["verdict"] == "undecided" and out["wins"] == 2
    with pytest.raises(ValueError, match="lack column"):
        paired_differences(rec.drop(columns="seed"), "base")


def test_differences_without_spread_are_named_not_decided() -> None:
    # Identical arms, or the same difference on every seed (here 1 test image of 1,000 in
    # float, so the spread is rounding noise): the t-interval has (almost) zero width and would
    # exclude 0 for any non-zero constant; the verdict names the case instead of deciding.
    base = np.array([0.902, 0.803, 0.705, 0.911, 0.899])
    ci, v = compare.paired_verdict(base.copy(), base)
    assert v == "identical" and (ci.low, ci.high) == (0.0, 0.0)
    ci, v = compare.paired_verdict(base + 0.001, base)
    assert v == "degenerate" and ci.high - ci.low < 1e-12 and ci.mean == pytest.approx(0.001)
    assert verdict(ci.low, ci.high) == "better"  # what the bare interval rule would say
    assert compare.paired_verdict(base + [0.001, 0.002, 0.001, 0.003, 0.001], base)[1] == "better"
    assert compare.paired_verdict(base - [0.001, 0.002, 0.001, 0.003, 0.001], base)[1] == "worse"
    assert compare.paired_verdict([0.9], [0.8])[1] == "undecided"
    rec = pd.DataFrame({"group": ["same"] * 6 + ["shift"] * 6, "arm": ["b", "m"] * 6,
                        "seed": [0, 0, 1, 1, 2, 2] * 2,
                        "quality": [0.9, 0.9, 0.8, 0.8, 0.7, 0.7,
                                    0.9, 0.92, 0.8, 0.82, 0.7, 0.72]})  # fmt: skip
    out = paired_differences(rec, "b").set_index("group")["verdict"].to_dict()
    assert out == {"same": "identical", "shift": "degenerate"}
    from htsr.figures.comparisons import differences_figure

    diff = paired_differences(rec, "b")
    fig = differences_figure(diff, title="t", quality_label="q")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("identical" in x for x in labels) and any("degenerate" in x for x in labels)


def test_cosine_schedule_is_tempbalances() -> None:
    assert train.cosine_lr(0.1, 0, 8) == pytest.approx(0.1)
    assert train.cosine_lr(0.1, 4, 8) == pytest.approx(0.05)
    assert train.cosine_lr(0.1, 9, 8) == pytest.approx(0.0)


def test_guide_hooks_follow_the_published_intervals() -> None:
    """TempBalance refits once per epoch at the cosine rate (one more fit at the start);
    AlphaDecay every `every` steps with per-layer weight decay in [0.666, 3] x the base; plain
    training with the hooks and a constant schedule equals training without them."""
    data = synthetic.images(n=256, size=16, channels=1)
    tb = GuideHooks("tempbalance")
    _, res = train.train("mini_alexnet", SMALL, data, 0, hooks=tb)
    assert tb.refits == 1 + (SMALL["epochs"] - 1)
    assert res["cpu_s"] > 0
    ad = GuideHooks("alphadecay", every=3)
    model, _ = train.train("mini_alexnet", {**SMALL, "epochs": 1}, data, 0, hooks=ad)
    assert ad.refits == 1 + 4 // 3  # 4 steps of 64
    wd = list(ad.guide.values(5e-4).values())
    # the middle layers with >= 50 eigenvalues; the linear map's ends are 0.666x and 3x the base
    assert len(wd) == 3 and min(wd) == pytest.approx(0.666 * 5e-4) and max(wd) == 1.5e-3
    plain, _ = train.train("mini_alexnet", {**SMALL, "schedule": "constant"}, data, 1)
    hooked, _ = train.train("mini_alexnet", {**SMALL, "schedule": "constant"}, data, 1,
                            hooks=GuideHooks(None))  # fmt: skip
    for (k, a), b in zip(plain.state_dict().items(), hooked.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="method must be one of"):
        GuideHooks("alphapruning")


def test_finetuning_run_starts_from_the_pretrained_network() -> None:
    data = synthetic.images(n=256, size=16, channels=1, classes=4)
    cut = datasets.subset_classes(data, [2, 3])
    assert cut["meta"]["classes"] == 2 and set(cut["y_train"].tolist()) == {0, 1}
    assert len(cut["y_train"]) == int(((data["y_train"] == 2) | (data["y_train"] == 3)).sum())
    with pytest.raises(ValueError, match="class"):
        datasets.subset_classes(data, [2, 9])
    spec = {"comparison": {
        "kind": "finetuning", "title": "t", "architecture": "mini_alexnet", "seeds": [0, 1],
        "pretrain": {"classes": [0, 1]}, "task": {"classes": [2, 3]}, "label_fractions": [0.1],
        "fixed": {**SMALL, "epochs": 1}, "baseline": "ft",
        "arms": {"ft": {}, "mb": {"guide": "modelbalancing", "every": 2,
                                  "options": {"unit": "layer"}}},
    }}  # fmt: skip
    c = comparison_from_dict("ft", spec)
    pre = c.runs[0].as_dict()
    pretrained, rec = runs.train_run(pre, data)
    assert rec["train_size"] == len(datasets.subset_classes(data, [0, 1])["y_train"])
    mb = next(r for r in c.runs if r.arm == "mb" and r.seed == 0).as_dict()
    state = pretrained.state_dict()
    model, rec = runs.train_run({**mb, "hyperparameters": {**mb["hyperparameters"], "lr": 0.0,
                                                           "momentum": 0.0,
                                                           "weight_decay": 0.0}},
                                data, init_state=state)  # fmt: skip
    assert rec["train_size"] == round(0.1 * len(cut["y_train"])) and rec["refits"] >= 1
    for k, v in model.state_dict().items():  # lr 0: the pretrained weights, unchanged
        assert torch.equal(v, state[k]), k


def test_prune_records_keep_the_target_and_never_fall_back_silently() -> None:
    data = synthetic.images(n=256, size=16, channels=1)
    spec = {"comparison": {"kind": "pruning", "title": "p", "architecture": "mini_alexnet",
                           "seeds": [0, 1], "fixed": SMALL, "arms": {"dense": {}},
                           "prune": {"sparsities": [0.5]}}}  # fmt: skip
    run = comparison_from_dict("p", spec).runs[0].as_dict()
    model, _ = runs.train_run(run, data)
    out = {r["arm"]: r for r in runs.prune_records(run, model, data, [0.5, 0.99])
           if r["target"] == 0.5}  # fmt: skip
    assert set(out) == {"uniform", "alphapruning"}
    for r in out.values():
        assert r["achieved"] == pytest.approx(0.5, abs=1e-3) and 0 <= r["quality"] <= 100
    assert out["alphapruning"]["epsilon"] == 0.3
    high = [r for r in runs.prune_records(run, model, data, [0.99]) if r["arm"] == "alphapruning"]
    assert math.isnan(high[0]["quality"]) and "sparsity >= 1" in high[0]["note"]


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", HTSR_OFFLINE="1")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--workflow-profile", "none", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


def _counts(out: str) -> dict[str, int]:
    import re

    block = out.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def test_default_comparisons_plan_their_jobs(tmp_path: Path) -> None:
    (tmp_path / "config").symlink_to(ROOT / "config")
    names = ",".join(COMPARISONS)
    run = _snakemake(tmp_path, "-n", "--quiet", "rules", "--config", f"studies=[{names}]")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = _counts(run.stdout + run.stderr)
    # 2 arms x 5 seeds (MNIST TempBalance, Cora, AlphaDecay), 5 dense (pruning), 5 pre-trained
    # + 2 arms x 2 label fractions x 5 seeds (fine-tuning)
    assert counts["comparison_run"] == 10 + 10 + 10 + 5 + 5 + 20
    assert counts["comparison_prune"] == 5 and counts["comparison_allocation"] == 1
    assert counts["comparison_table"] == counts["comparison_figure"] == 5
    assert counts["prepare_dataset"] == 2  # mnist5k, planetoid-Cora
    assert "model_spectra" not in counts and "aggregate" not in counts


#: Through Snakemake end to end (runs, a fine-tuning's pre-trained input, table, figure,
#: allocation); the other comparisons' quick grids run in-process below through the same library
#: calls the rules' scripts make (one interpreter: the ~3 s start-up of each job's process is
#: most of a quick job's cost). The rule comparison_prune ran end to end in the session that
#: wrote it; test_default_comparisons_plan_their_jobs plans it.
PIPELINE = ("guide_modelbalancing_finetune", "guide_alphapruning_pretrained")
IN_PROCESS = ("guide_tempbalance_mnist", "guide_tempbalance_cora", "guide_alphadecay_mnist",
              "guide_alphapruning_mnist")  # fmt: skip


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("comparisons")
    shutil.copytree(ROOT / "config", work / "config")
    run = _snakemake(work, "--cores", "2", "--config", f"studies=[{','.join(PIPELINE)}]",
                     "experiment_grid=quick", "train_threads=1")  # fmt: skip
    assert run.returncode == 0, run.stderr[-5000:]
    return work


def _check_differences(name: str, table: pd.DataFrame, diff: pd.DataFrame) -> None:
    """The verdict table against its interval recomputed from the per-seed records."""
    # The quick grids' 2 seeds on tiny data can give both seeds the same difference (one test
    # image each): then the verdict is `degenerate` (or `identical`), not decided.
    verdicts = {"better", "worse", "undecided", "identical", "degenerate"}
    assert (diff["n"] == 2).all() and set(diff["verdict"]) <= verdicts, name
    for rec in diff.itertuples():
        g = table[table["group"] == rec.group].pivot(index="seed", columns="arm",
                                                     values="quality")  # fmt: skip
        ref = t_interval((g[rec.arm] - g[rec.baseline]).to_numpy())
        assert (rec.mean, rec.low, rec.high) == pytest.approx(tuple(ref[:3])), name
        expected = compare.paired_verdict(g[rec.arm], g[rec.baseline])[1]
        assert rec.verdict == expected, (name, rec.verdict, rec.differences)
        if expected not in ("identical", "degenerate"):
            assert rec.verdict == verdict(rec.low, rec.high)


@pytest.mark.slow
def test_quick_comparisons_through_the_pipeline(quick: Path) -> None:
    for name in PIPELINE:
        kind = COMPARISONS[name]
        res = quick / "results" / name
        figure = "allocation" if kind == "allocation" else "differences"
        for ext in ("png", "pdf"):
            assert (res / "figures" / f"{figure}.{ext}").stat().st_size > 0
        with Image.open(res / "figures" / f"{figure}.png") as image:
            assert image.format == "PNG" and min(image.size) > 300
        if kind == "allocation":
            summ = pd.read_csv(res / "allocation_summary.tsv", sep="\t")
            assert list(summ["model"]) == ["efficientnet-lite0", "all-MiniLM-L6-v2"]
            assert np.allclose(summ["weighted_sparsity"], 0.5) and (summ["over_one"] == 0).all()
            assert (summ["distance_mean"] > 0).all() and (summ["sparsity_max"] < 1).all()
            continue
        c = comparison_from_dict(name, _spec(name), "quick")
        table = pd.read_csv(res / "runs.tsv", sep="\t")
        diff = pd.read_csv(res / "differences.tsv", sep="\t", keep_default_na=False,
                           na_values=[""])  # fmt: skip
        _check_differences(name, table, diff)
        assert len(table) == len(c.scored) and (table["cpu_s"] > 0).all()
        assert (table.loc[table["arm"] == "modelbalancing", "refits"] >= 1).all()
        mnist = datasets.load(quick / "resources" / "datasets" / "mnist5k.pt")
        n59 = len(datasets.subset_classes(mnist, [5, 6, 7, 8, 9])["y_train"])
        assert (table["train_size"] == round(0.1 * n59)).all()
    bench = quick / "logs" / "benchmarks" / "comparison_run" / "guide_modelbalancing_finetune"
    assert len(list(bench.glob("*.tsv"))) == 6  # 2 pre-trained, 2 arms x 2 seeds


@pytest.mark.slow
def test_quick_training_comparisons_in_process(tmp_path: Path, monkeypatch) -> None:
    """TempBalance on MNIST and on Cora, AlphaDecay and AlphaPruning on MNIST: each quick grid's
    runs through htsr.guide.runs (train_run, prune_records) on the real data, the table and the
    figure."""
    from htsr.figures.common import save_figure
    from htsr.figures.comparisons import differences_figure

    monkeypatch.setenv("HTSR_OFFLINE", "1")
    raw = tmp_path / "raw"
    (raw / "planetoid").mkdir(parents=True)
    for f in (ROOT / "tests" / "data" / "planetoid").glob("ind.cora.*"):
        shutil.copyfile(f, raw / "planetoid" / f.name)
    loaded = {}
    for name in IN_PROCESS:
        c = comparison_from_dict(name, _spec(name), "quick")
        key = c.dataset.get("dataset", c.dataset["name"])
        if key not in loaded:
            datasets.prepare(c.dataset, tmp_path / f"{key}.pt", root=raw)
            loaded[key] = datasets.load(tmp_path / f"{key}.pt")
        records = []
        for run in c.runs:
            model, rec = runs.train_run(run.as_dict(), loaded[key], quality=c.quality)
            rec.pop("result")
            if c.kind == "pruning":
                sp, eps = c.prune["sparsities"], c.prune["epsilon"]
                records += runs.prune_records(run.as_dict(), model, loaded[key], sp, epsilon=eps)
            else:
                records.append(rec)
        table = pd.DataFrame(records)
        diff = paired_differences(table, c.baseline)
        _check_differences(name, table, diff)
        assert list(diff["arm"]) == [a for a in dict.fromkeys(table["arm"]) if a != c.baseline]
        if c.kind == "pruning":
            assert set(diff["group"]) == {"sparsity 50%"} and set(diff["arm"]) == {"alphapruning"}
            assert np.allclose(table["achieved"], 0.5, atol=1e-3)
        else:
            guided = table[table["arm"] != c.baseline]
            assert (guided["refits"] >= 1).all()
            assert (table.loc[table["arm"] == c.baseline, "refits"] == 0).all()
        fig = differences_figure(diff, title=c.title, quality_label=c.quality_label)
        save_figure(fig, [tmp_path / f"{name}.png"])
        with Image.open(tmp_path / f"{name}.png") as image:
            assert min(image.size) > 300


def test_module_exports() -> None:
    import doctest

    assert compare.KINDS == ("training", "finetuning", "pruning", "allocation")
    assert doctest.testmod(compare).failed == 0
