"""``htsr analyze`` on the terminal (table, --json, skipped layers), table formats by suffix,
the few-eigenvalue warning and ``summarize --min-evals``; ``htsr describe``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from htsr import analyze
from htsr.cli import main
from htsr.studies.trends import summarize


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state_dict with a fitted conv and linears, a 3-channel conv (too small for the paper
    convention), a 7-output head (7 eigenvalues), int8 weights, an embedding and an LSTM-like
    parameter that no layer is made from."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Conv2d(64, 64, 3), nn.Flatten(),
                      nn.Linear(64, 100), nn.Linear(100, 7))  # fmt: skip
    sd = m.state_dict()
    sd["emb.word_embeddings.weight"] = torch.randn(50, 16)
    sd["q.weight"] = torch.randint(-5, 5, (60, 60), dtype=torch.int8)
    sd["lstm.weight_ih_l0"] = torch.randn(40, 10)
    p = tmp_path_factory.mktemp("out") / "m.pth"
    torch.save(sd, p)
    return p


def test_analyze_prints_table_and_every_skipped_layer(checkpoint: Path, capsys) -> None:
    with pytest.warns(RuntimeWarning, match="non_float"):
        assert main(["analyze", str(checkpoint)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{checkpoint}: alpha_weighted=")
    assert out[0].endswith("11 of 21 matrices analysed")
    assert out[1].split() == ["layer", "slice", "layer_type", "N", "M", "num_evals", "alpha",
                              "alpha_weighted", "log_norm", "lambda_max", "D", "status",
                              "warning"]  # fmt: skip
    assert len(out) == 2 + 21 + 1 + 4
    assert out[2 + 21] == "not analysed (10 rows, 2 other tensors):"
    skipped = out[-4:]
    assert skipped[0] == "  0 (9 slices): too_small: a conv slice with min(N, M) < min_dim = 50"
    assert skipped[1].startswith("  q: non_float: not a floating-point tensor")
    assert skipped[2].startswith("  emb.word_embeddings.weight (50x16): excluded: an embedding")
    assert skipped[3].startswith("  lstm.weight_ih_l0 (40x10): unsupported: a 2-D parameter")
    head = next(line for line in out if line.startswith("4 "))
    assert " ".join(head.split()[-6:]) == "ok few eigenvalues (7 < 8)"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_analyze_json_summary(checkpoint: Path, capsys) -> None:
    assert main(["analyze", str(checkpoint), "--json", "--convention", "ww"]) == 0
    obj = json.loads(capsys.readouterr().out)
    ref = summarize(analyze(checkpoint, "ww"), convention="ww")
    assert obj["alpha_weighted"] == pytest.approx(ref["alpha_weighted"], rel=1e-12)
    assert (obj["n_matrices"], obj["n_rows"]) == (3, 5)
    assert obj["not_analysed"] == {"too_small": 1, "non_float": 1}
    assert [t["tensor"] for t in obj["not_layers"]] == ["emb.word_embeddings.weight",
                                                         "lstm.weight_ih_l0"]  # fmt: skip


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".parquet"])
def test_output_format_by_suffix(checkpoint: Path, tmp_path: Path, suffix: str, capsys) -> None:
    out = tmp_path / f"t{suffix}"
    assert main(["analyze", str(checkpoint), "-o", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "layer" not in printed[1]  # with -o, no table on the terminal, the skipped list yes
    read = {".tsv": lambda p: pd.read_csv(p, sep="\t"), ".csv": pd.read_csv,
            ".parquet": pd.read_parquet}[suffix]  # fmt: skip
    table = read(out)
    ref = analyze(checkpoint)
    assert list(table.columns) == list(ref.columns)
    np.testing.assert_allclose(table["alpha"].to_numpy(float), ref["alpha"].to_numpy(float))
    assert main(["analyze", str(checkpoint), "-o", str(tmp_path / "t.xlsx")]) == 2
    assert "-o takes a .tsv, .csv, .parquet file" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_few_eigenvalues_warning_and_summarize_option(checkpoint: Path, tmp_path: Path,
                                                      capsys) -> None:  # fmt: skip
    table = analyze(checkpoint, min_evals=50)
    few = table[table["warning"].str.contains("few eigenvalues")]
    assert list(few["layer"]) == ["4"] and few["warning"].iloc[0].endswith("(7 < 50)")
    default = analyze(checkpoint)  # WW's min_evals = 8: the 7-eigenvalue head is flagged too
    assert default.loc[default["layer"] == "4", "warning"].iloc[0].endswith("(7 < 8)")
    assert default.loc[default["layer"] == "3", "warning"].iloc[0] == ""
    kept, left = summarize(table), summarize(table, min_evals=50)
    assert (kept["n_matrices"], left["n_matrices"]) == (11, 10)
    ok = table[(table["status"] == "ok") & (table["num_evals"] >= 50)]
    assert left["alpha"] == pytest.approx(ok["alpha"].mean())
    path = tmp_path / "t.tsv"
    table.to_csv(path, sep="\t", index=False)
    assert main(["summarize", str(path), "--min-evals", "50"]) == 0
    assert capsys.readouterr().out.strip().endswith("10 of 21 matrices analysed")
