"""htsr.guide against the published code of TempBalance, Model Balancing, AlphaDecay,
AlphaPruning and FARMS (copied into tests/reference/guide_published.py, CPU only)."""

from __future__ import annotations

import doctest
import hashlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from htsr.cli import main
from htsr.guide import compare, estimators, rules, scheduler, table, training
from htsr.guide.estimators import (
    alpha_peak,
    farms_alphas,
    farms_eigenvalues,
    layer_alphas,
    layer_eigenvalues,
)
from htsr.guide.prune import alphapruning, input_norms, prune_model, pruning_mask, wanda_score
from htsr.guide.scheduler import AlphaGuide
from htsr.guide.table import guide_summary, guide_table

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import guide_published as pub  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "alphapruning"
LLAMA_CACHE = DATA / "llama-7b-hf_alpha_peak.npy"
LLAMA_CACHE_SHA256 = "09cecc799eac4e3f03ff943288f750e9524b475714650cdf60d4a68c7961232c"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Many small SVDs: one thread avoids oversubscription on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _heavy(rows: int, cols: int, seed: int, tail: float = 1.5) -> torch.Tensor:
    """A matrix with power-law singular values (a heavy-tailed ESD, as in trained layers)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g))
    k = min(rows, cols)
    s = (torch.rand(k, generator=g) + 0.02) ** (-1 / tail)
    return (u[:, :k] * s) @ v[:, :k].T / 10


class ConvNet(nn.Module):
    """conv/bn pairs named as torchvision's ResNets (for the 'name' BatchNorm rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64, 96)
        self.fc2 = nn.Linear(96, 40)  # 40 eigenvalues < 50: not tuned
        self.fc3 = nn.Linear(40, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.relu(self.bn3(self.conv3(x))).mean((2, 3))
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _convnet(seed: int = 0) -> ConvNet:
    torch.manual_seed(seed)
    net = ConvNet()
    with torch.no_grad():
        net.fc1.weight.copy_(_heavy(96, 64, seed + 1))
        net.conv3.weight.mul_(3.0).add_(_heavy(64, 288, seed + 2).reshape(64, 32, 3, 3))
    return net


def _lr_by_param(groups: list[dict]) -> dict[int, float]:
    return {id(p): g["lr"] for g in groups for p in list(g["params"])}


def test_docstring_examples() -> None:
    for mod in (estimators, rules, scheduler, table, compare, training):
        assert doctest.testmod(mod).failed == 0, mod.__name__


# ------------------------------------------------------------------ estimators


def test_hill_median_equals_tempbalance_estimator() -> None:
    net = _convnet()
    ref = pub.Tempbalance(net).net_esd_estimator()
    ours = layer_alphas(net, "median")
    assert ours["layer"].tolist() == ref["longname"]
    assert ours["eigs_num"].tolist() == ref["eigs_num"]
    np.testing.assert_array_equal(ours["alpha"].to_numpy(), np.array(ref["alpha"]))
    np.testing.assert_array_equal(ours["D"].to_numpy(), np.array(ref["D"]))
    np.testing.assert_array_equal(ours["spectral_norm"].to_numpy(), ref["spectral_norm"])
    # the eigenvalues are the same pooled float32 ESD
    ev = layer_eigenvalues(net.conv2.weight, "conv2d")
    np.testing.assert_array_equal(ev.numpy(), ref["eigs"][1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_peak_equals_alphapruning_estimator(seed: int) -> None:
    blocks = nn.Sequential(nn.Linear(160, 200), nn.Linear(200, 120), nn.Conv2d(24, 40, 3))
    with torch.no_grad():
        blocks[0].weight.copy_(_heavy(200, 160, seed, tail=1.2))
        blocks[1].weight.copy_(_heavy(120, 200, seed + 10, tail=3.0) * 40)  # peak p > 1
    ref = pub.ap_net_esd_estimator(blocks, fix_fingers="xmin_peak")
    ours = layer_alphas(blocks, "peak")
    np.testing.assert_array_equal(ours["alpha"].to_numpy(), np.array(ref["alpha"]))
    np.testing.assert_array_equal(ours["D"].to_numpy(), np.array(ref["D"]))
    mid = pub.ap_net_esd_estimator(blocks, fix_fingers="xmin_mid")
    np.testing.assert_array_equal(layer_alphas(blocks, "median")["alpha"], mid["alpha"])


def test_alpha_peak_lower_bound_quirk() -> None:
    """The published bound log10(0.95 p) lies below 0.95 p, so smaller xmin compete; the
    corrected bound searches only [0.95 p, 1.5 p] and so never finds a smaller xmin."""
    ev = layer_eigenvalues(_heavy(120, 200, 10, tail=3.0) * 40, "linear")
    pub_fit, fixed = alpha_peak(ev), alpha_peak(ev, lower="corrected")
    counts = torch.histc(torch.log10(ev), 100, min=torch.log10(ev).min(),
                         max=torch.log10(ev).max())  # fmt: skip
    edge = torch.linspace(torch.log10(ev).min(), torch.log10(ev).max(), 101)[counts.argmax()]
    peak = float(10**edge)
    assert np.log10(0.95 * peak) < 0.95 * peak
    assert 0.95 * peak * (1 - 1e-6) <= fixed.xmin <= 1.5 * peak * (1 + 1e-6)
    assert pub_fit.xmin <= fixed.xmin
    assert pub_fit.D <= fixed.D  # a wider search can only lower the minimum D
    with pytest.raises(ValueError, match="lower"):
        alpha_peak(ev, lower="log")


def test_farms_equals_published_sampling() -> None:
    torch.manual_seed(3)
    lin = nn.Linear(70, 130)  # stored 130 x 70: 9 x 9 windows of 40 x 40 (40 rows, Q = 1)
    with torch.no_grad():
        lin.weight.copy_(_heavy(130, 70, 4))
    conv = nn.Conv2d(16, 48, 3)  # slices 48 x 16: 3 divisions of 16 x 16
    opts = {"num_row_samples": 40}
    ours = farms_alphas(farms_eigenvalues(lin.weight, "linear", **opts))
    assert ours == pytest.approx(pub.farms_layer_alpha(lin, **opts), rel=1e-6)
    ours = farms_alphas(farms_eigenvalues(conv.weight, "conv2d"))
    assert ours == pytest.approx(pub.farms_layer_alpha(conv), rel=1e-6)
    opts = {"num_row_samples": 40, "sampling_ops_per_dim": None, "step_size": 15}
    slide = farms_alphas(farms_eigenvalues(lin.weight, "linear", **opts))
    assert slide == pytest.approx(pub.farms_layer_alpha(lin, **opts), rel=1e-6)
    assert len(farms_eigenvalues(conv.weight, "conv2d")) == 3
    t = layer_alphas(nn.Sequential(lin, conv), farms=True, farms_options={"num_row_samples": 40})
    expected = [pub.farms_layer_alpha(lin, num_row_samples=40), pub.farms_layer_alpha(conv)]
    assert t["alpha"].tolist() == pytest.approx(expected, rel=1e-6)
    # published quirk, reproduced: a matrix smaller than the window (96 x 64 < 100 x 100) gives
    # the negative start rows - 100 = -4, i.e. the slice [92:96], a 4 x 36 submatrix
    small = nn.Linear(64, 96)
    (esd,) = farms_eigenvalues(small.weight, "linear")
    assert len(esd) == 4
    assert farms_alphas([esd]) == pytest.approx(pub.farms_layer_alpha(small), rel=1e-6)


def test_estimator_failures_are_rows_not_crashes() -> None:
    net = nn.Sequential(nn.Linear(30, 1), nn.Linear(1, 40), nn.Linear(40, 60))
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")
    t = layer_alphas(net)
    assert t["status"].str.startswith("failed").tolist() == [True, True, True]
    with pytest.raises(ValueError, match="estimator"):
        layer_alphas(net, "ks")


# ------------------------------------------------------------------ rules


def test_tempbalance_groups_and_step_equal_published() -> None:
    net = _convnet()
    ref = pub.Tempbalance(net)  # median, first/last out, >= 50 eigs, [0.5, 1.5], bn by name
    ref_groups, count = ref.build_optimizer_param_group(untuned_lr=0.1, initialize=True)
    ref_groups = [dict(g, params=list(g["params"])) for g in ref_groups]
    guide = AlphaGuide(net, "tempbalance")
    ours = guide.param_groups(0.1)
    assert _lr_by_param(ours) == pytest.approx(_lr_by_param(ref_groups), rel=1e-15)
    tuned = [g["htsr_layer"] for g in ours[:-1]]
    assert tuned == ["conv2", "conv3", "fc1"]  # not conv1 (first), fc2 (< 50 eigs), fc3 (last)
    assert {id(p) for p in net.bn2.parameters()} <= {id(p) for p in ours[0]["params"]}
    # one epoch of training, then the per-epoch refit at the cosine rate, both ways
    opt_ref = torch.optim.SGD(ref_groups, lr=0.1, momentum=0.9)
    opt = torch.optim.SGD(ours, lr=0.1, momentum=0.9)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    ref.step(opt_ref, 0.05)
    assert guide.step(opt, 0.05)
    assert _lr_by_param(opt.param_groups) == pytest.approx(_lr_by_param(opt_ref.param_groups),
                                                           rel=1e-15)  # fmt: skip


def test_alphadecay_linear_map_equals_published() -> None:
    alpha = np.array([2.1, 3.7, 5.2, 2.9, 4.4])
    ref = pub.Tempbalance.get_layer_temps(
        SimpleNamespace(lr_min_ratio=0.666, lr_max_ratio=3.0), "tb_linear_map", alpha, 1e-5
    )  # AlphaDecay's line is this one with wd_min_ratio/wd_max_ratio
    np.testing.assert_array_equal(rules.alphadecay_wd(alpha, 1e-5), ref)
    t = pd.DataFrame({"layer": list("abcdefg"), "alpha": [3.0, *alpha, 9.0],
                      "eigs_num": [64] * 7, "n_params": [1] * 7})  # fmt: skip
    g = guide_table(t, "alphadecay", base=1e-5)
    assert g["tuned"].tolist() == [False, True, True, True, True, True, False]
    np.testing.assert_array_equal(g.loc[g["tuned"], "value"], ref)


@pytest.mark.parametrize(("smin", "smax"), [(2.0, 1.0), (0.25, 0.25), (1.25, 1.25)])
def test_modelbalancing_sigmoid_equals_published(smin: float, smax: float) -> None:
    rng = np.random.default_rng(5)
    names = [
        f"roberta.encoder.layer.{b}.{m}"
        for b in range(6)
        for m in ("attention.self.query", "attention.self.key", "output.dense")
    ]
    names += ["classifier.dense"]
    alpha = rng.uniform(2.0, 6.0, len(names))
    args = SimpleNamespace(lora_esd="False", schedule_func="sigmoid", sigmoid_min=smin,
                           sigmoid_max=smax, exp_temp=10, tb_unit="block",
                           tb_lr_normalize="False")  # fmt: skip
    ref = pub.mb_get_layer_temps(args, "tb_layer_blocks", alpha, 3e-5, {"longname": names})
    ours = rules.modelbalancing_lr(alpha, names, 3e-5, sigmoid_min=smin, sigmoid_max=smax)
    np.testing.assert_array_equal(ours, ref)
    assert ours[-1] == 3e-5  # outside every block


def test_alphapruning_allocation_equals_published() -> None:
    rng = np.random.default_rng(1)
    alpha = rng.uniform(2, 7, 12)
    params = rng.integers(1000, 5000, 12)
    for mapping, blocks in (("block_wise", np.repeat(np.arange(4), 3)), ("layer_wise", None)):
        args = SimpleNamespace(mapping_type=mapping, sparsity_ratio=0.6)
        ref = pub.ap_ww_sparsity_core(args, alpha, params, 3, s1=0.75, s2=1.25)
        ours = rules.alphapruning_sparsity(
            alpha, params, 0.6, epsilon=0.25, blocks=None if blocks is None else list(blocks)
        )
        np.testing.assert_allclose(ours, ref, rtol=1e-7)  # float32 scaler in the published code
        assert np.average(ours, weights=params) == pytest.approx(0.6, rel=1e-12)


def test_llama7b_alpha_cache_block_sparsities_at_70() -> None:
    """AlphaPruning's shipped LLaMA-7B alpha_peak cache -> per-block sparsities at 70 %, ε = 0.3
    (scripts/llama_7b.sh, magnitude_ww), the published function and ours, pinned."""
    assert hashlib.sha256(LLAMA_CACHE.read_bytes()).hexdigest() == LLAMA_CACHE_SHA256
    alpha = np.load(LLAMA_CACHE)
    assert alpha.shape == (224,)
    # find_layers order of a LLaMA-7B decoder block: q, k, v, o (4096 x 4096), gate, down, up
    params = np.tile([4096 * 4096] * 4 + [11008 * 4096] * 3, 32)
    args = SimpleNamespace(mapping_type="block_wise", sparsity_ratio=0.7)
    ref = np.array(pub.ap_ww_sparsity_core(args, alpha, params, 7, s1=0.7, s2=1.3))
    ours = rules.alphapruning_sparsity(alpha, params, 0.7, epsilon=0.3,
                                       blocks=list(np.repeat(np.arange(32), 7)))  # fmt: skip
    # published: `torch.sum(prunables) * 0.7` of an int64 tensor is float32 (torch's type
    # promotion), so its mean sparsity is 0.69999995; ours is float64 and exact
    assert np.average(ref, weights=params) == pytest.approx(0.7, abs=1e-7)
    np.testing.assert_allclose(ours, ref, rtol=1e-7)
    assert np.average(ours, weights=params) == pytest.approx(0.7, rel=1e-12)
    per_block = ours[::7]
    assert np.all(ours.reshape(32, 7) == per_block[:, None])
    pinned = [
        0.504228,
        0.575504,
        0.596555,
        0.595356,
        0.628773,
        0.621807,
        0.594331,
        0.537082,
        0.544972,
        0.500622,
        0.529400,
        0.532859,
        0.547394,
        0.565329,
        0.577282,
        0.651847,
        0.637572,
        0.723578,
        0.836840,
        0.766158,
        0.842948,
        0.888609,
        0.805837,
        0.795069,
        0.869465,
        0.929726,
        0.898315,
        0.913739,
        0.831323,
        0.895915,
        0.913668,
        0.747898,
    ]
    np.testing.assert_allclose(per_block, pinned, atol=5e-7)
    # via the table, with block numbers read from LLaMA's module names
    names = [f"model.layers.{b}.{m}" for b in range(32) for m in
             ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.down_proj", "mlp.up_proj")]  # fmt: skip
    t = pd.DataFrame({"layer": names + ["lm_head"], "alpha": [*alpha, 4.0],
                      "n_params": [*params, 32000 * 4096], "eigs_num": 4096})  # fmt: skip
    g = guide_table(t, "alphapruning", sparsity=0.7, epsilon=0.3)
    np.testing.assert_array_equal(g["sparsity"].to_numpy()[:-1], ours)
    assert not g["tuned"].iloc[-1] and g["sparsity"].iloc[-1] == 0  # the head is not pruned
    assert guide_summary(g, "alphapruning")["weighted_sparsity_tuned"] == pytest.approx(0.7)


# ------------------------------------------------------------------ pruning


def test_masks_equal_published_magnitude_and_wanda() -> None:
    torch.manual_seed(0)
    w = torch.randn(40, 70)
    for s in (0.1, 0.5, 0.73):
        assert torch.equal(pruning_mask(w.abs(), s), pub.ap_prune_magnitude_mask(w, s))
        score = wanda_score(w, torch.rand(70))
        assert torch.equal(pruning_mask(score, s, per_row=True), pub.ap_prune_wanda_mask(score, s))
    assert not pruning_mask(w.abs(), 0.0).any()
    with pytest.raises(ValueError, match="sparsity"):
        pruning_mask(w.abs(), 1.0)


def test_input_norms_equal_wrappedgpt() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 6))
    batches = [torch.randn(2, 5, 12) for _ in range(3)]  # (samples, tokens, features)
    ours = input_norms(net, ["0", "2"], batches)
    for name in ("0", "2"):
        ref = pub.WrappedGPT(net[int(name)])
        h = net[int(name)].register_forward_hook(lambda _, i, o, r=ref: r.add_batch(i[0], o))
        with torch.no_grad():
            for b in batches:
                net(b)
        h.remove()
        torch.testing.assert_close(ours[name], ref.scaler_row, rtol=0, atol=0)
    w = net[2].weight
    s = wanda_score(w, ours["2"])
    torch.testing.assert_close(s, w.abs() * torch.sqrt(ours["2"]).reshape(1, -1))


def test_alphapruning_prunes_model_to_target() -> None:
    net = _convnet()
    guided, summary = alphapruning(net, 0.7, epsilon=0.2)
    assert summary["weighted_sparsity_tuned"] == pytest.approx(0.7, rel=1e-12)
    # the published '<=' threshold prunes int(n*s)+1 weights: at most one more per layer
    assert 0.7 <= summary["achieved_weighted_sparsity"] <= 0.7 + guided["tuned"].sum() / 3000
    assert (net.fc1.weight == 0).float().mean().item() == pytest.approx(
        guided.set_index("layer").loc["fc1", "sparsity"], abs=2 / net.fc1.weight.numel()
    )
    with pytest.raises(ValueError, match="outside"):
        prune_model(net, {"fc1": 1.2})
    _, farms = alphapruning(_convnet(), 0.5, farms=True)
    assert farms["weighted_sparsity_tuned"] == pytest.approx(0.5, rel=1e-12)


# ------------------------------------------------------------------ scheduler


def test_scheduler_refits_every_n_steps_on_cpu() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3),
        nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(256, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )  # fmt: skip
    guide = AlphaGuide(net, "alphadecay", every=3, batchnorm="order")
    opt = torch.optim.AdamW(guide.param_groups(1e-2), lr=1e-3)
    assert [g["htsr_layer"] for g in opt.param_groups] == ["3", "7", None]
    bn4 = {id(p) for p in net[4].parameters()}
    assert bn4 <= {id(p) for p in opt.param_groups[0]["params"]}  # BatchNorm follows its conv
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    refits = []
    for _ in range(7):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        refits.append(guide.step(opt, 1e-2))
    assert refits == [False, False, True, False, False, True, False]
    assert guide.refits == 3  # the initial fit and two refits
    vals = guide.values(1e-2)
    for g in opt.param_groups[:-1]:
        assert g["weight_decay"] == vals[g["htsr_layer"]]
    assert sorted(vals.values()) == pytest.approx([0.666e-2, 3e-2])
    assert opt.param_groups[-1]["weight_decay"] == 1e-2
    with pytest.raises(ValueError, match="method"):
        AlphaGuide(net, "alphapruning")


# ------------------------------------------------------------------ command line


def test_cli_guide(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "net.pth"
    net = _convnet()
    torch.save(net.state_dict(), ckpt)
    out = tmp_path / "prune.tsv"
    rc = main(["guide", str(ckpt), "--method", "alphapruning", "--sparsity", "0.5",
               "--epsilon", "0.2", "--json", "-o", str(out)])  # fmt: skip
    r = capsys.readouterr()
    assert rc == 0, r.err
    summary = json.loads(r.out)
    assert summary["weighted_sparsity_tuned"] == pytest.approx(0.5, rel=1e-12)
    rows = pd.read_csv(out, sep="\t")
    assert rows["layer"].tolist() == ["conv1", "conv2", "conv3", "fc1", "fc2", "fc3"]
    ref = guide_table(layer_alphas(net, "peak"), "alphapruning", sparsity=0.5, epsilon=0.2)
    np.testing.assert_allclose(rows["sparsity"], ref["sparsity"], rtol=1e-12)
    assert main(["guide", str(ckpt), "--method", "tempbalance"]) == 0
    r = capsys.readouterr()
    assert "conv2" in r.out and "3 of 6 layers tuned" in r.out
    argv = ["guide", str(ckpt), "--method", "alphapruning", "--sparsity", "0.5", "--json"]
    assert main([*argv, "--lower", "corrected", "--farms"]) == 0
    assert json.loads(capsys.readouterr().out)["farms"] is True
    assert main(["guide", str(ckpt), "--method", "alphapruning"]) == 2
    assert "--sparsity" in capsys.readouterr().err
    assert main(["guide", str(tmp_path / "missing.pth"), "--method", "alphadecay"]) == 2
    assert "missing.pth" in capsys.readouterr().err
