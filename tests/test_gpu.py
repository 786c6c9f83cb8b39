"""The CUDA path of :func:`htsr.analyze` agrees with the CPU path; without CUDA it falls back.

The GPU tests (marker ``gpu``) are skipped where ``torch.cuda.is_available()`` is false; run them
on a GPU machine with ``pytest -m gpu tests/test_gpu.py``. The fallback test runs everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import htsr

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="torch.cuda.is_available() is False")

#: Random-init torchvision architectures compared on both devices.
GPU_MODELS = ("resnet18", "vgg11", "vit_b_16")
CONVENTIONS = ("paper", "ww")
#: Columns that identify a row; they must match exactly between devices.
KEY_COLUMNS = ["layer", "layer_type", "slice", "N", "M", "num_evals", "status"]
ALPHA_ATOL = 0.01
NORM_RTOL = 1e-4


def _random_model(name: str) -> nn.Module:
    """A torchvision architecture with seeded random weights (no download)."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None).eval()


@pytest.fixture(scope="module")
def tables() -> dict[tuple[str, str, str], pd.DataFrame]:
    """``analyze`` tables keyed by (model, convention, device), computed once per module."""
    out: dict[tuple[str, str, str], pd.DataFrame] = {}
    for name in GPU_MODELS:
        model = _random_model(name)
        for convention in CONVENTIONS:
            for device in ("cpu", "cuda"):
                # float64 on both: this checks the algorithm across devices. In float32, CPU
                # LAPACK and cuSOLVER differ by up to 0.018 in α (measured on an H200); float32's
                # accuracy against float64 is tested on CPU (test_metrics.py); CUDA defaults to
                # float64.
                out[name, convention, device] = htsr.analyze(
                    model, convention, device=device, dtype="float64"
                )
    return out


def _assert_same_analysis(cpu: pd.DataFrame, gpu: pd.DataFrame, what: str) -> None:
    """Same rows and statuses; α within ALPHA_ATOL; λmax and log-norm within NORM_RTOL."""
    assert len(cpu) > 0, f"{what}: analyze returned no rows"
    pd.testing.assert_frame_equal(
        cpu[KEY_COLUMNS].reset_index(drop=True),
        gpu[KEY_COLUMNS].reset_index(drop=True),
        obj=f"{what} row keys",
    )
    ok = (cpu["status"] == "ok").to_numpy()
    assert ok.any(), f"{what}: no row has status ok"
    a_cpu, a_gpu = cpu["alpha"].to_numpy()[ok], gpu["alpha"].to_numpy()[ok]
    worst = np.nanmax(np.abs(a_cpu - a_gpu))
    assert np.array_equal(np.isnan(a_cpu), np.isnan(a_gpu)), f"{what}: alpha NaN pattern differs"
    assert worst <= ALPHA_ATOL, f"{what}: alpha differs by up to {worst:.4g} (> {ALPHA_ATOL})"
    rel = {
        col: np.nanmax(np.abs(gpu[col].to_numpy()[ok] / cpu[col].to_numpy()[ok] - 1))
        for col in ("lambda_max", "log_norm")
    }
    print(f"{what}: {ok.sum()} ok rows, max |dalpha| {worst:.2e}, max rel diff {rel}")
    for col in ("lambda_max", "log_norm"):
        np.testing.assert_allclose(
            gpu[col].to_numpy()[ok],
            cpu[col].to_numpy()[ok],
            rtol=NORM_RTOL,
            atol=0,
            err_msg=f"{what}: {col} cuda vs cpu",
        )


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("name", GPU_MODELS)
def test_cuda_matches_cpu(
    tables: dict[tuple[str, str, str], pd.DataFrame], name: str, convention: str
) -> None:
    _assert_same_analysis(
        tables[name, convention, "cpu"],
        tables[name, convention, "cuda"],
        f"{name} ({convention}, random init)",
    )


@pytest.mark.gpu
@needs_cuda
def test_cuda_summary_matches_cpu(tables: dict[tuple[str, str, str], pd.DataFrame]) -> None:
    """Model-level α̂ and log-norm, the numbers the study regresses, agree across devices."""
    for (name, convention, device), table in tables.items():
        if device != "cuda":
            continue
        cpu = htsr.summarize(tables[name, convention, "cpu"])
        gpu = htsr.summarize(table)
        assert cpu["n_matrices"] == gpu["n_matrices"], f"{name} ({convention})"
        for metric in ("alpha_weighted", "log_norm"):
            assert gpu[metric] == pytest.approx(cpu[metric], rel=1e-3), (
                f"{name} ({convention}): {metric} cuda {gpu[metric]} vs cpu {cpu[metric]}"
            )


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(120, 100), nn.ReLU(), nn.Linear(100, 80))


def test_cuda_request_without_gpu_warns_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for cuda where there is none warns (naming the device) and computes on the CPU.

    On a machine with a GPU, CUDA is hidden from torch for this test only, so the same
    fallback path runs everywhere.
    """
    if HAS_CUDA:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = _small_model()
    with pytest.warns(RuntimeWarning, match=r"cuda.*not available.*cpu"):
        fallback = htsr.analyze(model, device="cuda")
    reference = htsr.analyze(model, device="cpu")
    assert list(fallback["status"]) == ["ok", "ok"], fallback[["layer", "status"]]
    pd.testing.assert_frame_equal(fallback, reference)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_cuda_bad_layers_same_status_as_cpu(convention: str) -> None:
    """NaN/Inf, all-zero, rank-1 and tiny layers: on CUDA the NaN matrices are kept away from
    the solver (rows of NaN eigenvalues) and every row gets the CPU's status."""
    from test_metrics import _bad_model

    model = _bad_model()
    cpu = htsr.analyze(model, convention, dtype="float64")
    gpu = htsr.analyze(model, convention, device="cuda")
    assert list(gpu.status) == list(cpu.status)
    assert "nonfinite" in set(gpu.status) and "zero" in set(gpu.status)
    ok = (cpu.status == "ok").to_numpy()
    np.testing.assert_allclose(gpu.alpha[ok], cpu.alpha[ok], rtol=1e-6)


@pytest.mark.gpu
@needs_cuda
def test_cuda_eigenvalues_nan_row() -> None:
    from htsr.spectral.eigen import eigenvalues

    torch.manual_seed(4)
    x = torch.randn(3, 60, 40, dtype=torch.float64)
    x[1, 5, 7] = float("nan")
    got = eigenvalues(x.cuda(), dtype="float64", device="cuda").cpu()
    ref = eigenvalues(x, dtype="float64")
    assert torch.isnan(got[1]).all() and torch.isnan(ref[1]).all()
    assert torch.allclose(got[[0, 2]], ref[[0, 2]], rtol=1e-9, atol=1e-9)
