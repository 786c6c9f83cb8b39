"""The benchmark scripts run end to end (their output, not their speed, is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_analyze.py"


def _run(*args: str, script: str = BENCH.name) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/{script}`` with ``args`` (default: bench_analyze.py)."""
    return subprocess.run(
        [sys.executable, str(BENCH.with_name(script)), *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_bench_analyze_prints_its_table():
    res = _run(
        "--models", "resnet18", "--conventions", "ww", "--skip-ww", "--threads", "1",
        "--repeat", "2",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = lines[lines.index("analyze vs WeightWatcher 0.7.7 vs svdvals floor (seconds)") + 1]
    assert header.split() == [
        "model", "convention", "rows", "ours_s", "ww_s", "floor_s", "eig_s",
        "ours_over_ww", "ours_over_floor", "ours_over_eig", "eig_over_ww",
    ]  # fmt: skip
    row = dict(zip(header.split(), lines[-1].split(), strict=True))
    assert row["model"] == "resnet18" and row["convention"] == "ww"
    assert int(row["rows"]) == 21  # resnet18's 21 weight layers, one pooled row each
    for col in ("ours_s", "floor_s", "eig_s"):
        assert float(row[col]) > 0
    assert float(row["ours_over_eig"]) == pytest.approx(
        float(row["ours_s"]) / float(row["eig_s"]), rel=0.05, abs=2e-3
    )  # the printed ratio is of the printed (rounded) times
    assert row["ww_s"] == "NaN"  # --skip-ww: no WeightWatcher time, and no ratio pretending one


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_bench_analyze_cuda_without_gpu_is_a_clear_error():
    res = _run("--models", "resnet18", "--device", "cuda", "--skip-ww")
    assert res.returncode != 0
    assert "--device cuda given but torch sees no CUDA device" in res.stderr


def test_bench_methods_prints_its_table():
    res = _run("--models", "squeezenet1_1", "--threads", "1", script="bench_methods.py")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = [c.strip() for c in lines[1].strip("|").split("|")]
    assert header[:3] == ["model", "Mparams", "a exact"] and "b/a" in header
    row = dict(zip(header, [c.strip() for c in lines[-1].strip("|").split("|")], strict=True))
    assert row["model"] == "squeezenet1_1"
    for col in ("a exact", "b tsvd", "c ww2020 tsvd", "d sklearn floor", "e a+b+c shared",
                "b/a", "c/a", "d/b", "e/(a+b+c)"):  # fmt: skip
        assert float(row[col]) > 0, col
    assert float(row["b/a"]) == pytest.approx(float(row["b tsvd"]) / float(row["a exact"]),
                                              rel=0.1, abs=0.02)  # fmt: skip
    separate = sum(float(row[c]) for c in ("a exact", "b tsvd", "c ww2020 tsvd"))
    assert float(row["e/(a+b+c)"]) == pytest.approx(float(row["e a+b+c shared"]) / separate,
                                                    rel=0.1, abs=0.02)  # fmt: skip


def test_bench_streaming_prints_memory_and_the_floor_ratio():
    res = _run("--layers", "1", "--shards", "2", "--threads", "1", script="bench_streaming.py")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = lines[lines.index("streaming analysis of a sharded checkpoint (threads: 1)") + 1]
    row = dict(zip(header.split(), lines[-1].split(), strict=True))
    # one GPT-NeoX block: q, k, v, dense, h_to_4h, 4h_to_h, and embed_out; embed_in excluded
    assert row["rows"] == row["ok"] == "7"
    assert 0 < float(row["peak_anon_gb"]) < float(row["checkpoint_gb"])
    assert float(row["ours_s"]) > 0 and float(row["floor_s"]) > 0


def test_bench_experiments_estimates_a_grid():
    res = _run("--study", "gnn", "--grid", "quick", "--threads", "1", "--cores", "2",
               script="bench_experiments.py")  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    per_setting = [line for line in lines if line.startswith("gnn gcn_deep")]
    assert len(per_setting) == 2 and "s per 20 steps" in per_setting[0]
    assert "gnn: 16 models" in res.stdout and "estimated wall time on 2 cores" in res.stdout
    assert json.loads(lines[-1])["gnn"] > 0


def test_bench_guide_refit_prints_the_ratios():
    res = _run("--n", "128", "--epochs", "2", "--threads", "1", script="bench_guide_refit.py")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = lines[1].split()
    assert header == ["mode", "cpu_s", "wall_s", "fits", "steps"]
    rows = {r.split()[0]: dict(zip(header, r.split(), strict=True)) for r in lines[2:5]}
    assert set(rows) == {"floor", "epoch", "step"}
    assert rows["floor"]["fits"] == "0" and rows["epoch"]["fits"] == "2"
    assert int(rows["step"]["fits"]) == 2 + 1 + 1  # each of 2 steps, one epoch's end, the start
    ratios = json.loads(lines[-1])
    assert set(ratios) == {"step_over_floor", "epoch_over_floor", "step_over_epoch"}
    assert all(v > 0 for v in ratios.values())


def test_bench_scheduler_prints_both_schedulers_and_the_ratio():
    res = _run("--jobs", "4", "--sleep", "0", script="bench_scheduler.py")
    assert res.returncode == 0, res.stderr
    rows = [line.strip("|").split("|") for line in res.stdout.splitlines() if line.startswith("| ")]
    table = {r[0].strip(): [float(c) for c in r[1:]] for r in rows[1:]}
    assert set(table) == {"ilp", "greedy"}
    for wall, own, per_job in table.values():
        # own is printed to 0.1 s: per job to 1000 * 0.05 / 8 ms, plus its own rounding
        assert wall > 0 and own > 0 and per_job == pytest.approx(1000 * own / 8, abs=8)
    ratio = float(res.stdout.rsplit(":", 1)[1])
    # from the unrounded seconds: within the 0.05 s rounding of each printed value
    low = (table["ilp"][1] - 0.05) / (table["greedy"][1] + 0.05)
    high = (table["ilp"][1] + 0.05) / (table["greedy"][1] - 0.05)
    assert low - 0.005 <= ratio <= high + 0.005
