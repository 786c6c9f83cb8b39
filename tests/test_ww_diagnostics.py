"""WeightWatcher 0.7.7's optional diagnostics (``randomize``, ``mp_fit``, ``detX``, ``vectors``,
``fix_fingers``, ``fit``) against WeightWatcher itself, layer by layer, on two small models: a
random-init CNN and an MLP trained 300 steps on scikit-learn's digits. ``distribution_compare``
and the truncated power law are checked against the ``powerlaw`` package (WW 0.7.7 cannot run
them with powerlaw 2.0.0, see ``test_weightwatcher_powerlaw_paths_fail_with_powerlaw_2``).

WeightWatcher shuffles with ``np.random.shuffle``: seeding the global generator before its
``analyze`` and passing the same ``seed`` to ours gives the same shuffles. The largest
differences are printed (``pytest -s``) for the report.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import htsr
from htsr.spectral import altfits
from htsr.spectral.diagnostics import DETX_COLUMNS, MP_COLUMNS, ww_matrices
from htsr.spectral.matrices import iter_layers, layer_matrices
from htsr.spectral.randomize import RANDOMIZE_COLUMNS
from htsr.spectral.vectors import VECTOR_COLUMNS, vector_columns

ww = pytest.importorskip("weightwatcher")
powerlaw = pytest.importorskip("powerlaw")
logging.getLogger("weightwatcher").setLevel(logging.CRITICAL)

SEED = 7
OPTIONS = dict(randomize=True, mp_fit=True, detX=True, vectors=True)


def _random_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(8, 24, 3),  # out > in: WW keeps N=24, M=8, rf=9 (72 evals: 5 shuffles)
        nn.ReLU(),
        nn.Conv2d(24, 12, 3),  # out < in, 9 taps: WW's N/M swap ends at N=24, M=12
        nn.Flatten(),
        nn.Linear(108, 120),  # 108 evals >= 100: one shuffle
        nn.Linear(120, 60),
    )


def _digits_mlp() -> nn.Module:
    """An MLP trained 300 full-batch Adam steps on scikit-learn's digits (~1 s)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 160), nn.ReLU(), nn.Linear(160, 120), nn.ReLU(),
                        nn.Linear(120, 10))  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: threads only contend
    try:
        for _ in range(300):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    assert (net(x).argmax(1) == y).float().mean() > 0.95  # it did learn
    return net.eval()


MODELS = {"random_cnn": _random_cnn, "digits_mlp": _digits_mlp}


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {name: make() for name, make in MODELS.items()}


def _ww(model: nn.Module, **kw) -> pd.DataFrame:
    np.random.seed(SEED)  # noqa: NPY002 (WW shuffles with the legacy global generator)
    return ww.WeightWatcher(model=model).analyze(**kw).set_index("longname")


@pytest.fixture(scope="module")
def pairs(models) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per model: our ``ww`` table with every diagnostic (float64) and WeightWatcher's."""
    out = {}
    for name, model in models.items():
        ours = htsr.analyze(model, "ww", dtype="float64", seed=SEED, **OPTIONS)
        out[name] = (ours.set_index("layer"), _ww(model, **OPTIONS))
    return out


def _max_rel(ours: pd.DataFrame, ref: pd.DataFrame, cols) -> dict[str, float]:
    out = {}
    for c in cols:
        a, b = ours.loc[ref.index, c].to_numpy(float), ref[c].to_numpy(float)
        out[c] = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
    return out


def _check(name: str, ours, ref, cols, rtol: float = 1e-9) -> None:
    assert list(ours.index[ours.status == "ok"]) == list(ref.index), name
    rel = _max_rel(ours, ref, cols)
    print(f"\n{name}: largest relative difference from WW 0.7.7:",
          {c: f"{v:.1e}" for c, v in rel.items()})  # fmt: skip
    for c in cols:
        np.testing.assert_allclose(ours.loc[ref.index, c].to_numpy(float), ref[c].to_numpy(float),
                                   rtol=rtol, atol=0, err_msg=f"{name} {c}")  # fmt: skip


@pytest.mark.parametrize("name", MODELS)
def test_mp_fit_matches_weightwatcher(name: str, pairs) -> None:
    ours, ref = pairs[name]
    _check(name, ours, ref, MP_COLUMNS)


@pytest.mark.parametrize("name", MODELS)
def test_randomize_matches_weightwatcher(name: str, pairs) -> None:
    """Same shuffles, same shuffled ESD, same MP fit of it: every randomize column agrees."""
    ours, ref = pairs[name]
    _check(name, ours, ref, RANDOMIZE_COLUMNS)
    assert (ours.loc[ref.index, "num_traps"] == ref["num_traps"]).all()


@pytest.mark.parametrize("name", MODELS)
def test_detx_matches_weightwatcher(name: str, pairs) -> None:
    ours, ref = pairs[name]
    _check(name, ours, ref, DETX_COLUMNS)


@pytest.mark.parametrize("name", MODELS)
def test_vectors_match_weightwatcher(name: str, pairs, models) -> None:
    """Every layer agrees to round-off once the one eigenvector at λ = xmin sits on WW's side.

    Ours puts it in the tail; WW compares ``eig(WWᵀ)`` with the xmin of its SVD, so round-off
    decides (see :func:`htsr.spectral.vectors.vector_columns`). Layers where WW put it in the
    bulk are checked against ours with ``rtol=-1e-9`` (the bulk side)."""
    ours, ref = pairs[name]
    assert list(ours.index[ours.status == "ok"]) == list(ref.index)
    stacks = {layer.name: layer_matrices(layer) for layer in iter_layers(models[name])}
    on_bulk_side, worst = [], 0.0
    for layer in ref.index:
        st = stacks[layer]
        got = ours.loc[layer, list(VECTOR_COLUMNS)].to_numpy(float)
        want = ref.loc[layer, list(VECTOR_COLUMNS)].to_numpy(float)
        if not np.allclose(got, want, rtol=1e-9, atol=0):
            scale = 0.5 if st.layer_type == "conv2d" else 1.0
            alt = vector_columns(ww_matrices(st.matrices, st.layer_type),
                                 ours.loc[layer, "xmin"], scale=scale, rtol=-1e-9)  # fmt: skip
            got = np.array([alt[c] for c in VECTOR_COLUMNS])
            np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=f"{name} {layer}")
            on_bulk_side.append(layer)
        worst = max(worst, float(np.max(np.abs(got - want) / np.abs(want))))
    print(f"\n{name}: layers where WW put the xmin eigenvector in the bulk: {on_bulk_side};"
          f" largest relative difference {worst:.1e}")  # fmt: skip


@pytest.mark.parametrize("name", MODELS)
def test_clip_xmax_matches_weightwatcher(name: str, models) -> None:
    ours = htsr.analyze(models[name], "ww", dtype="float64", fix_fingers="clip_xmax")
    ref = _ww(models[name], fix_fingers="clip_xmax")
    _check(name, ours.set_index("layer"), ref,
           ("alpha", "xmin", "D", "num_fingers", "raw_alpha", "alpha_weighted"))  # fmt: skip


def _powerlaw_fit_without_distribution(monkeypatch) -> None:
    """WW 0.7.7 passes ``distribution=`` to ``powerlaw.Fit``, which powerlaw 2.0.0 rejects
    (WW_powerlaw.py:262): drop it, so WW's own method runs."""

    class Fit(powerlaw.Fit):
        def __init__(self, data, distribution=None, **kw):
            super().__init__(data, **kw)

    monkeypatch.setattr(ww.WW_powerlaw.powerlaw, "Fit", Fit)


@pytest.mark.parametrize("name", MODELS)
def test_xmin_peak_matches_weightwatcher(name: str, models, monkeypatch) -> None:
    """``fix_fingers='xmin_peak'`` equals WW's (with pl_package='powerlaw', its call fixed)."""
    _powerlaw_fit_without_distribution(monkeypatch)
    ref = _ww(models[name], fix_fingers="xmin_peak", pl_package="powerlaw")
    ours = htsr.analyze(models[name], "ww", dtype="float64", fix_fingers="xmin_peak")
    ours = ours.set_index("layer")
    # where powerlaw finds < 2 candidates (a 10-eigenvalue layer) WW reports alpha = -1
    failed = ref.index[ref["alpha"] == -1]
    assert (ours.loc[failed, "status"] == "no_candidates").all()
    ref = ref.drop(failed)
    ours = ours.drop(failed)
    _check(name, ours, ref, ("alpha", "xmin", "D", "alpha_weighted"))


def test_weightwatcher_powerlaw_paths_fail_with_powerlaw_2(models) -> None:
    """The documented WW 0.7.7 bugs: with its default pl_package='ww', xmin_peak fails on every
    layer (WWFit cannot take an xmin range); with 'powerlaw' 2.0.0, TPL fails (TypeError on
    ``distribution=``). Both give alpha = -1, which is why ours are checked otherwise."""
    model = models["digits_mlp"]
    assert (_ww(model, fix_fingers="xmin_peak")["alpha"] == -1).all()
    assert (_ww(model, fit="TPL", pl_package="powerlaw")["alpha"] == -1).all()


@pytest.mark.parametrize("name", MODELS)
def test_distribution_compare_matches_powerlaw(name: str, models) -> None:
    """R and p of power law vs lognormal / exponential equal powerlaw's distribution_compare on
    the same tail (xmin fixed at ours; powerlaw's α at that xmin is the same closed-form MLE)."""
    ours = htsr.analyze(models[name], "ww", dtype="float64", distribution_compare=True,
                        keep_evals=True)  # fmt: skip
    ours = ours[ours.status == "ok"]
    worst = {"R_lognormal": 0.0, "R_exponential": 0.0, "p_lognormal": 0.0, "p_exponential": 0.0}
    for _, row in ours.iterrows():
        x = row["evals"][row["evals"] > 1e-5]
        if x.size < 20:  # WW's small-N fit: bias-corrected α = 1 + (n - 1)/Σ, not powerlaw's
            continue
        fit = powerlaw.Fit(x, xmin=row["xmin"], parameter_ranges={"alpha": [1, 100]})
        assert fit.power_law.alpha == pytest.approx(row["alpha"], rel=1e-6)
        for other in ("lognormal", "exponential"):
            R, p = fit.distribution_compare("power_law", other)
            # powerlaw fits the exponential's rate numerically (ours is the closed-form MLE)
            # and the lognormal by its own optimiser: agreement to their tolerance
            assert row[f"R_{other}"] == pytest.approx(R, rel=1e-4, abs=1e-5), (row.layer, other)
            assert row[f"p_{other}"] == pytest.approx(p, rel=1e-2, abs=5e-4), (row.layer, other)
            worst[f"R_{other}"] = max(worst[f"R_{other}"], abs(row[f"R_{other}"] - R))
            worst[f"p_{other}"] = max(worst[f"p_{other}"], abs(row[f"p_{other}"] - p))
    print(f"\n{name}: largest absolute difference from powerlaw 2.0.0: {worst}")


@pytest.mark.parametrize("name", MODELS)
def test_truncated_power_law_is_the_mle(name: str, models) -> None:
    """fit='TPL': α and Λ maximise the TPL likelihood on the power law's tail; powerlaw 2.0.0's
    Truncated_Power_Law (α range widened from its [0, 3]) never finds a higher likelihood."""
    tpl = htsr.analyze(models[name], "ww", dtype="float64", fit="TPL", keep_evals=True)
    pl = htsr.analyze(models[name], "ww", dtype="float64")
    assert (tpl.xmin == pl.xmin).all() and tpl.loc[tpl.status == "ok", "Lambda"].gt(0).all()
    for (_, row), alpha_pl in zip(tpl[tpl.status == "ok"].iterrows(), pl.alpha, strict=False):
        x = row["evals"][row["evals"] > 1e-5]
        x = x[x >= row["xmin"]]
        ours = altfits.truncated_power_law_loglikelihoods(x, row["xmin"], row["alpha"],
                                                          row["Lambda"]).sum()  # fmt: skip
        ref = powerlaw.Truncated_Power_Law(
            xmin=row["xmin"], data=x, parameter_ranges={"alpha": [-50, 50], "Lambda": [0, None]}
        )
        theirs = altfits.truncated_power_law_loglikelihoods(x, row["xmin"], ref.alpha,
                                                            ref.Lambda).sum()  # fmt: skip
        assert ours >= theirs - 1e-6 * abs(theirs), (row.layer, ours, theirs)
        assert np.isfinite(alpha_pl)


@pytest.mark.parametrize("name", MODELS)
def test_intra_matches_weightwatcher(name: str, models) -> None:
    """Pairs of consecutive layers: same pairs, same random S (seeded), same singular-value
    ESD and fit. WW computes the Frobenius norms in float32 (its weights' dtype), hence 1e-6."""
    np.random.seed(SEED)  # noqa: NPY002
    ref = ww.WeightWatcher(model=models[name]).analyze(intra=True)
    ours = htsr.analyze(models[name], "ww", dtype="float64", intra=True, seed=SEED)
    assert len(ours) == len(ref) >= 1 and (ours.status == "ok").all()
    assert list(ours.N) == list(ref.N) and list(ours.M) == list(ref.M)
    rel = {}
    for col in ("alpha", "lambda_max", "xmin", "log_norm", "alpha_weighted", "num_evals"):
        np.testing.assert_allclose(ours[col].to_numpy(float), ref[col].to_numpy(float),
                                   rtol=1e-6, err_msg=f"{name} {col}")  # fmt: skip
        rel[col] = float(np.max(np.abs(ours[col].to_numpy(float) / ref[col].to_numpy(float) - 1)))
    print(f"\n{name} intra {list(ours.layer)}: largest relative difference from WW 0.7.7: {rel}")


def test_cli_analyze_adds_the_diagnostics_columns(tmp_path) -> None:
    """``htsr analyze --randomize --mp-fit --detX --vectors --fix-fingers clip_xmax`` writes
    WW's columns, equal to the library's table."""
    from htsr.cli import main

    torch.manual_seed(0)
    path = tmp_path / "mlp.pt"
    torch.save(nn.Sequential(nn.Linear(50, 40), nn.Linear(40, 30)).state_dict(), path)
    out = tmp_path / "t.tsv"
    args = ["--randomize", "--mp-fit", "--detX", "--vectors", "--fix-fingers", "clip_xmax"]
    assert main(["analyze", str(path), "-o", str(out), "--convention", "ww", "--dtype",
                 "float64", "--seed", str(SEED), *args]) == 0  # fmt: skip
    table = pd.read_csv(out, sep="\t")
    lib = htsr.analyze(path, "ww", dtype="float64", seed=SEED, randomize=True, mp_fit=True,
                       detX=True, vectors=True, fix_fingers="clip_xmax")  # fmt: skip
    for col in ("num_traps", "rand_distance", "num_spikes", "detX_num", "ERG_gap",
                "tail_mean_loc_ratio", "num_fingers", "raw_alpha"):  # fmt: skip
        np.testing.assert_allclose(table[col].to_numpy(float), lib[col].to_numpy(float),
                                   rtol=1e-9, err_msg=col)  # fmt: skip


def test_diagnostics_under_the_per_matrix_conventions() -> None:
    """Under ``paper`` each kernel tap is its own "layer": the columns are there, per row, and
    the per-row MP fit equals a direct ``mp_fit`` of that row's eigenvalues."""
    from htsr.spectral.mp import mp_fit

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(60, 80, 2), nn.Flatten(), nn.Linear(80, 64))
    t = htsr.analyze(net, "paper", dtype="float64", mp_fit=True, detX=True, randomize=True,
                     keep_evals=True)  # fmt: skip
    assert len(t) == 5 and (t.status == "ok").all()
    for _, row in t.iterrows():
        fit = mp_fit(row["evals"], row["N"], row["M"])
        assert row["num_spikes"] == fit.num_spikes and row["sigma_mp"] == fit.sigma_mp
    assert t[["num_traps", "detX_num", "rand_distance"]].notna().all().all()


def test_bad_diagnostic_options_are_refused() -> None:
    net = nn.Sequential(nn.Linear(40, 30))
    with pytest.raises(ValueError, match="fix_fingers"):
        htsr.analyze(net, "ww", fix_fingers="peak")
    with pytest.raises(ValueError, match="intra needs"):
        htsr.analyze(net, "paper", intra=True)
    with pytest.raises(ValueError, match="E_TPL"):
        htsr.analyze(net, "ww", fit="E_TPL", fix_fingers="clip_xmax")
