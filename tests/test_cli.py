"""The ``htsr`` console command, run as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from htsr.spectral.metrics import COLUMNS


def _htsr(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "import sys; from htsr.cli import main; sys.exit(main())", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(64, 96, 3), nn.Flatten(), nn.Linear(96, 120))
    p = tmp_path_factory.mktemp("cli") / "small.pth"
    torch.save(model.state_dict(), p)
    return p


def test_console_script_is_installed() -> None:
    res = subprocess.run(["htsr", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "analyze" in res.stdout


@pytest.mark.parametrize("convention", ["paper", "ww"])
def test_analyze_writes_tsv_and_prints_summary(
    checkpoint: Path, tmp_path: Path, convention: str
) -> None:
    out = tmp_path / "sub" / "table.tsv"
    res = _htsr(
        "analyze", str(checkpoint), "-o", str(out), "--convention", convention,
        "--dtype", "float32", "--min-dim", "8",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out, sep="\t", keep_default_na=False, na_values=[""])
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == (10 if convention == "paper" else 2)
    assert [p.name for p in out.parent.iterdir()] == ["table.tsv"]  # no temp file left
    (line,) = res.stdout.strip().splitlines()
    assert line.startswith(f"{checkpoint}: alpha_weighted=")
    assert "log_norm=" in line and f" of {len(table)} matrices analysed" in line

    summ = _htsr("summarize", str(out))
    assert summ.returncode == 0, summ.stderr
    assert summ.stdout.strip().split(": ", 1)[1] == line.split(": ", 1)[1]


@pytest.mark.parametrize("content", [None, b"garbage", b"\x80\x02truncated"])
def test_bad_file_one_line_error(tmp_path: Path, content: bytes | None) -> None:
    bad = tmp_path / "bad.pth"
    if content is not None:
        bad.write_bytes(content)
    out = tmp_path / "t.tsv"
    res = _htsr("analyze", str(bad), "-o", str(out))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("htsr: error: ") and str(bad) in line
    assert not out.exists()


def test_summarize_bad_table(tmp_path: Path) -> None:
    p = tmp_path / "x.tsv"
    p.write_text("a\tb\n1\t2\n")
    res = _htsr("summarize", str(p))
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert str(p) in res.stderr and "lacks columns" in res.stderr


def test_esd_of_one_layer_and_of_all(checkpoint: Path, tmp_path: Path) -> None:
    """`htsr esd`: one matrix to PNG (a conv tap by --slice, else the tap with the largest
    λmax), every matrix to a multi-page PDF, and an unknown layer or slice named."""
    import re

    png = tmp_path / "esd.png"
    res = _htsr("esd", str(checkpoint), "--layer", "0", "--slice", "1,2", "-o", str(png))
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "[1,2]" in res.stdout
    res = _htsr("esd", str(checkpoint), "--layer", "2", "-o", str(tmp_path / "fc.png"))
    assert res.returncode == 0 and "alpha=" in res.stdout, res.stderr
    pdf = tmp_path / "all.pdf"
    res = _htsr("esd", str(checkpoint), "--all", "-o", str(pdf))
    assert res.returncode == 0, res.stderr
    pages = re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes())
    assert len(pages) == 9 + 1  # 3x3 conv taps and the Linear
    bad = _htsr("esd", str(checkpoint), "--layer", "nope", "-o", str(png))
    assert bad.returncode == 2 and "no layer 'nope' (layers: 0, 2)" in bad.stderr
    bad = _htsr("esd", str(checkpoint), "--layer", "0", "--slice", "7,7", "-o", str(png))
    assert bad.returncode == 2 and "no slice '7,7'" in bad.stderr
    bad = _htsr("esd", str(checkpoint), "--all", "-o", str(tmp_path / "x.png"))
    assert bad.returncode == 2 and "must be a .pdf" in bad.stderr
