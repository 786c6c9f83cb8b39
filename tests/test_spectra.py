"""Which matrices a model yields (counts under the paper convention) and their eigenvalues."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

import htsr
from htsr.spectral.eigen import eigenvalues
from htsr.spectral.matrices import infer_layer, iter_layers, layer_matrices

#: Martin & Mahoney's matrix counts (conv slices with min(N, M) >= 50, all linear layers).
PAPER_COUNTS = {
    "vgg11": 66,
    "vgg16": 111,
    "resnet18": 148,
    "resnet50": 181,
    "densenet121": 62,
    "squeezenet1_0": 23,
}


def _analysed(table) -> int:
    return int((table["status"] != "too_small").sum())


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Random-init models (counts do not depend on the weights) and their saved files."""
    root = tmp_path_factory.mktemp("models")
    out: dict[str, dict[str, object]] = {}
    torch.manual_seed(0)
    for name in PAPER_COUNTS:
        model = torchvision.models.get_model(name, weights=None).eval()
        sd = model.state_dict()
        pth, st = root / f"{name}.pth", root / f"{name}.safetensors"
        torch.save(sd, pth)
        save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
        out[name] = {"model": model, "pth": pth, "safetensors": st}
    return out


@pytest.fixture(scope="session")
def module_tables(saved_models: dict) -> dict[str, object]:
    """``analyze`` (paper, defaults) of each module, computed once per session."""
    return {name: htsr.analyze(entry["model"]) for name, entry in saved_models.items()}


def _fitted_rows(table) -> set[tuple[str, str]]:
    return {(r.layer, r.slice) for r in table.itertuples() if r.status != "too_small"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PAPER_COUNTS))
def test_paper_matrix_counts_module(name: str, module_tables: dict) -> None:
    table = module_tables[name]
    assert _analysed(table) == PAPER_COUNTS[name]
    assert (table["N"] >= table["M"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pth", "safetensors"])
@pytest.mark.parametrize("name", list(PAPER_COUNTS))
def test_paper_matrix_counts_file(
    name: str, kind: str, saved_models: dict, module_tables: dict
) -> None:
    # float32 keeps this faster; which rows exist and are analysed does not depend on precision.
    table = htsr.analyze(saved_models[name][kind], dtype="float32")
    assert _analysed(table) == PAPER_COUNTS[name]
    # the inference path yields the same layer names and slices as the module path
    assert _fitted_rows(table) == _fitted_rows(module_tables[name])


def test_conv_slices_and_labels() -> None:
    conv = nn.Conv2d(60, 80, (2, 3))
    (layer,) = iter_layers(nn.Sequential(conv))
    stack = layer_matrices(layer)
    assert stack.slices == ("0,0", "0,1", "0,2", "1,0", "1,1", "1,2")
    assert stack.shape == (80, 60)
    assert torch.equal(stack.matrices[4], conv.weight.detach()[:, :, 1, 1])


def test_eigenvalues_gram_matches_svd_and_is_ascending() -> None:
    torch.manual_seed(1)
    for shape in [(3, 70, 20), (2, 20, 70), (1, 64, 64)]:
        x = torch.randn(*shape)
        ref = torch.linalg.svdvals(x.double()).square().flip(-1)
        got = eigenvalues(x, dtype="float64", method="gram")
        assert got.shape == ref.shape
        assert torch.allclose(got, ref, rtol=1e-10, atol=1e-10)
        assert (got.diff(dim=-1) >= 0).all()
        assert torch.allclose(eigenvalues(x, method="svd"), ref, rtol=1e-10, atol=1e-10)


def test_eigenvalues_blocked_gram(monkeypatch: pytest.MonkeyPatch) -> None:
    import htsr.spectral.eigen as spectra

    torch.manual_seed(2)
    x = torch.randn(1, 3000, 40)
    whole = eigenvalues(x)
    monkeypatch.setattr(spectra, "GRAM_BLOCK_BYTES", 40 * 8 * 128)  # 128-row blocks
    assert torch.allclose(eigenvalues(x), whole, rtol=1e-12, atol=1e-9)


def test_eigenvalues_float64_torch_route_matches_lapack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large float64 Gram matrices go to torch's eigvalsh (MKL); same values as scipy's syevd."""
    import htsr.spectral.eigen as spectra

    torch.manual_seed(3)
    x = torch.randn(2, 300, 120, dtype=torch.float64)
    lapack = eigenvalues(x, dtype="float64")
    monkeypatch.setattr(spectra, "TORCH_EIGVALSH_MIN_DIM", 100)
    mkl = eigenvalues(x, dtype="float64")
    assert torch.allclose(mkl, lapack, rtol=1e-12, atol=1e-9)
    monkeypatch.setattr(spectra, "TORCH_EIGVALSH_MIN_DIM", 121)
    assert torch.equal(eigenvalues(x, dtype="float64"), lapack)


@pytest.mark.parametrize("method", ["gram", "svd", "batched"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_eigenvalues_nonfinite_matrix_gives_nan_row(
    method: str, bad: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NaN/Inf entry makes that matrix's row NaN; the solver never sees it, others unchanged."""
    import htsr.spectral.eigen as spectra

    torch.manual_seed(4)
    x = torch.randn(3, 60, 40, dtype=torch.float64)
    clean = eigenvalues(x, dtype="float64", method="gram")
    x[1, 5, 7] = bad
    if method == "batched":  # the torch path that CUDA takes, run on CPU tensors
        got = spectra._eigvalsh_masked(x.mT @ x)
    else:
        got = eigenvalues(x, dtype="float64", method=method)
    assert torch.isnan(got[1]).all()
    assert torch.allclose(got[[0, 2]], clean[[0, 2]], rtol=1e-9, atol=1e-9)


def test_eigenvalues_rank_deficient_clipped_to_zero() -> None:
    u = torch.randn(100, 1, dtype=torch.float64)
    ev = eigenvalues((u @ u.T)[None, :, :30])
    assert (ev >= 0).all()
    assert ev[0, -1] > 0 and (ev[0, :-1] < 1e-10 * ev[0, -1]).all()


def test_multihead_attention_split_into_qkv() -> None:
    torch.manual_seed(3)
    mha = nn.MultiheadAttention(64, 4)
    model = nn.ModuleDict({"attn": mha})
    table = htsr.analyze(model)
    att = table[table.layer_type == "attention"]
    assert list(att.slice) == ["q", "k", "v"]
    assert set(att.layer) == {"attn.in_proj_weight"}
    q = mha.in_proj_weight.detach()[:64].double()
    assert att.lambda_max.iloc[0] == pytest.approx(float(torch.linalg.matrix_norm(q, 2) ** 2))
    assert list(table[table.layer_type == "linear"].layer) == ["attn.out_proj"]
    # the state_dict path infers the same rows
    from_sd = htsr.analyze(model.state_dict())
    assert list(from_sd.layer) == list(table.layer)
    assert list(from_sd.slice) == list(table.slice)


def test_multihead_attention_separate_projections() -> None:
    mha = nn.MultiheadAttention(64, 4, kdim=32, vdim=48)
    table = htsr.analyze(nn.ModuleDict({"a": mha}))
    att = table[table.layer_type == "attention"]
    assert list(att.layer) == ["a.q_proj_weight", "a.k_proj_weight", "a.v_proj_weight"]
    assert list(zip(att.N, att.M, strict=True)) == [(64, 64), (64, 32), (64, 48)]


def test_grouped_and_depthwise_conv_per_group_matrices() -> None:
    model = nn.Sequential(
        nn.Conv2d(128, 256, 3, groups=2),  # per-group matrices (256, 64): kept
        nn.Conv2d(256, 256, 3, groups=256),  # depthwise (256, 1): too small
    )
    table = htsr.analyze(model)
    grouped, depthwise = table[table.layer == "0"], table[table.layer == "1"]
    assert len(grouped) == 9 and (grouped.N == 256).all() and (grouped.M == 64).all()
    assert (grouped.status != "too_small").all()
    assert len(depthwise) == 9 and (depthwise.M == 1).all()
    assert (depthwise.status == "too_small").all()
    assert depthwise.lambda_max.isna().all()  # below min_dim: no eigensolve (paper)


def test_conv1d_slices() -> None:
    model = nn.Sequential(nn.Conv1d(64, 96, 5))
    table = htsr.analyze(model)
    assert list(table.slice) == ["0", "1", "2", "3", "4"]
    assert set(table.layer_type) == {"conv1d"}
    assert (table.N == 96).all() and (table.M == 64).all()
    w = model[0].weight.detach()[:, :, 2].double()
    assert table.lambda_max.iloc[2] == pytest.approx(float(torch.linalg.matrix_norm(w, 2) ** 2))
    assert list(htsr.analyze(model.state_dict()).layer_type) == ["conv1d"] * 5


class _TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(500, 64)
        self.pos_embedding = nn.Parameter(torch.randn(1, 100, 64))
        self.head = nn.Linear(64, 200)


def test_embeddings_opt_in() -> None:
    model = _TokenModel()
    assert list(htsr.analyze(model).layer) == ["head"]
    with_emb = htsr.analyze(model, include_embeddings=True)
    assert set(with_emb.layer) == {"tok", "pos_embedding", "head"}
    emb = with_emb.set_index("layer")
    assert emb.loc["tok", "layer_type"] == "embedding"
    assert (emb.loc["tok", "N"], emb.loc["tok", "M"]) == (500, 64)
    assert (emb.loc["pos_embedding", "N"], emb.loc["pos_embedding", "M"]) == (100, 64)
    # A bare state_dict has no module types: an embedding is recognised only by its name.
    sd = model.state_dict()
    from_sd = htsr.analyze(sd, include_embeddings=True).set_index("layer")
    assert from_sd.loc["pos_embedding", "layer_type"] == "embedding"
    assert from_sd.loc["tok", "layer_type"] == "linear"  # 2-D weight, no "embed" in the name
    renamed = {k.replace("tok.", "tok_embed."): v for k, v in sd.items()}
    assert list(htsr.analyze(renamed).layer) == ["head"]
    assert (
        htsr.analyze(renamed, include_embeddings=True)
        .set_index("layer")
        .loc["tok_embed", "layer_type"]
        == "embedding"
    )


def test_state_dict_inference_rules() -> None:
    t = torch.zeros
    assert infer_layer("fc.weight", t(10, 20)) == "linear"
    assert infer_layer("conv.weight", t(10, 20, 3)) == "conv1d"
    assert infer_layer("conv.weight", t(10, 20, 3, 3)) == "conv2d"
    assert infer_layer("patch_embed.proj.weight", t(768, 3, 16, 16)) == "conv2d"
    assert infer_layer("fc.bias", t(10)) is None
    assert infer_layer("bn.weight", t(10)) is None
    assert infer_layer("bn.running_mean", t(10)) is None
    assert infer_layer("bn.num_batches_tracked", torch.tensor(0)) is None
    assert infer_layer("attn.in_proj_weight", t(96, 32)) == "attention"
    assert infer_layer("word_embeddings.weight", t(100, 8)) is None
    assert infer_layer("word_embeddings.weight", t(100, 8), include_embeddings=True) == "embedding"
    assert infer_layer("class_token", t(1, 1, 8)) is None


def test_vit_layers_paper() -> None:
    model = torchvision.models.get_model("vit_b_16", weights=None)
    layers = list(iter_layers(model))
    kinds = [lw.layer_type for lw in layers]
    assert kinds.count("attention") == 12 and kinds.count("conv2d") == 1
    assert kinds.count("linear") == 12 * 3 + 1  # out_proj, mlp.0, mlp.3 per block + head
    sd_layers = list(iter_layers(model.state_dict()))
    assert [lw.name for lw in sd_layers] == [lw.name for lw in layers]
