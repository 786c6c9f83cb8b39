"""Checkpoints analysed from their tensors (htsr.checkpoints, htsr.spectra) and the hf source
(htsr.sources.hf), offline: small hand-made state_dicts with the real key names of GPT-2,
GPT-NeoX, OPT, BLOOM and BERT (tests/lm_states.py), served from a loopback hub (zoo_server)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import htsr
from htsr.spectral.matrices import EMBEDDING_NAMES, layers_from_state_dict
from htsr.weights import checkpoints, zoo
from htsr.weights.download import DownloadError
from htsr.weights.sources import hf

sys.path.insert(0, str(Path(__file__).parent))
from lm_states import HEADS, lm_state, save_hub_folder  # noqa: E402
from zoo_server import make_weight_files, serve_zoo  # noqa: E402

H = 64


def _evals(matrix: torch.Tensor) -> np.ndarray:
    return np.sort(torch.linalg.svdvals(matrix.double()).numpy() ** 2)


def _layers(model_type: str, **kwargs: object) -> dict[tuple[str, str], torch.Tensor]:
    sd, config = lm_state(model_type, H)
    out = {}
    from htsr.spectral.matrices import layer_matrices

    for layer in layers_from_state_dict(sd, config=config, **kwargs):
        stack = layer_matrices(layer)
        for label, m in zip(stack.slices, stack.matrices, strict=True):
            out[(layer.name, label)] = m
    return out


def test_gpt2_conv1d_orientation_fused_split_and_embeddings() -> None:
    sd, _ = lm_state("gpt2", H)
    got = _layers("gpt2")
    assert not any(name in ("wte", "wpe") for name, _ in got)  # embeddings excluded
    c_attn = sd["h.0.attn.c_attn.weight"]  # (in, out) = (H, 3H), columns [q | k | v]
    for i, part in enumerate("qkv"):
        block = got[("h.0.attn.c_attn", part)]
        assert block.shape == (H, H)
        assert torch.equal(block, c_attn[:, i * H : (i + 1) * H].t())
    # a Conv1D (in, out) weight is a dense matrix: the ESD of W and Wᵀ is the same
    fc = sd["h.0.mlp.c_fc.weight"]
    assert fc.shape == (H, 4 * H)
    table = htsr.analyze(sd, convention="paper", dtype="float64", keep_evals=True)
    row = table[table["layer"] == "h.0.mlp.c_fc"].iloc[0]
    assert (row["N"], row["M"]) == (4 * H, H)
    np.testing.assert_allclose(row["evals"], _evals(fc.t()), rtol=1e-9)
    assert len(table) == 2 * (3 + 3)  # q, k, v, c_proj, c_fc, mlp.c_proj per block
    with_emb = htsr.analyze(sd, include_embeddings=True)
    assert {"wte", "wpe"} <= set(with_emb.loc[with_emb["layer_type"] == "embedding", "layer"])


def test_neox_interleaved_qkv_split_by_config_and_untied_head() -> None:
    sd, config = lm_state("gpt_neox", H)
    got = _layers("gpt_neox")
    w = sd["gpt_neox.layers.1.attention.query_key_value.weight"]
    d = H // HEADS
    per_head = w.reshape(HEADS, 3, d, H)  # rows interleaved (head, q/k/v, head_dim)
    for i, part in enumerate("qkv"):
        assert torch.equal(got[("gpt_neox.layers.1.attention.query_key_value", part)],
                           per_head[:, i].reshape(H, H))  # fmt: skip
    assert ("embed_out", "") in got  # a separate output head is a dense matrix
    assert not any("embed_in" in name for name, _ in got)
    # the bool attention mask and rotary frequencies are not weights
    assert not any("rotary" in name or name.endswith("attention.bias") for name, _ in got)
    # without config.json the layout is unknown: analysed whole, with a warning naming it
    with pytest.warns(RuntimeWarning, match="query_key_value.*analysed whole"):
        whole = {layer.name: layer for layer in layers_from_state_dict(sd)}
    assert whole["gpt_neox.layers.0.attention.query_key_value"].weight.shape == (3 * H, H)
    assert config["num_attention_heads"] == HEADS


def test_bloom_split_by_n_head_and_opt_tied_head() -> None:
    got = _layers("bloom")
    assert {p for n, p in got if n == "h.0.self_attention.query_key_value"} == {"q", "k", "v"}
    assert not any("word_embeddings" in n for n, _ in got)
    opt = _layers("opt")
    assert ("lm_head", "") not in opt  # tied to embed_tokens: an embedding, excluded
    assert {("model.decoder.layers.0.self_attn.q_proj", "")} <= set(opt)
    sd, config = lm_state("opt", H)
    emb = htsr.analyze(sd, include_embeddings=True)
    assert emb.set_index("layer").loc["lm_head", "layer_type"] == "embedding"
    untied = dict(sd, **{"lm_head.weight": torch.randn(256, H)})
    assert "lm_head" in set(htsr.analyze(untied)["layer"])


def test_bert_embeddings_excluded_by_name() -> None:
    got = _layers("bert")
    assert not any("embeddings" in n for n, _ in got)
    assert {"word_embeddings", "position_embeddings", "token_type_embeddings"} <= set(
        EMBEDDING_NAMES
    )
    assert ("encoder.layer.0.attention.self.query", "") in got
    assert ("pooler.dense", "") in got


def test_non_float_weights_get_a_row_never_a_silent_drop() -> None:
    sd, _ = lm_state("bert", H)
    sd["encoder.layer.0.intermediate.dense.weight"] = torch.randint(
        -127, 127, (4 * H, H), dtype=torch.int8
    )
    sd["encoder.layer.1.output.dense.weight"] = torch.randn(H, 4 * H, dtype=torch.complex64)
    with pytest.warns(RuntimeWarning, match="not floating point"):
        table = htsr.analyze(sd)
    bad = table.set_index("layer").loc[
        ["encoder.layer.0.intermediate.dense", "encoder.layer.1.output.dense"]
    ]
    assert (bad["status"] == "non_float").all()
    assert bad["N"].tolist() == [4 * H, 4 * H] and bad["M"].tolist() == [H, H]
    assert (table["status"] == "ok").sum() == len(table) - 2


@pytest.mark.parametrize("model_type", ["gpt2", "gpt_neox", "opt", "bloom"])
def test_sharded_checkpoint_gives_the_rows_of_one_file(tmp_path: Path, model_type: str) -> None:
    sd, config = lm_state(model_type, H)
    for kind in ("model.safetensors", "pytorch_model.bin"):
        one = save_hub_folder(tmp_path / f"one_{kind}", sd, config, kind)
        index = kind + ".index.json"
        shards = save_hub_folder(tmp_path / f"shards_{kind}", sd, config, index)
        assert len(list(shards.glob("*-0000?-of-00002.*"))) == 2
        a = htsr.analyze(one, keep_evals=True)
        b = htsr.analyze(shards, keep_evals=True)
        pd.testing.assert_frame_equal(a.drop(columns="evals"), b.drop(columns="evals"))
        for x, y in zip(a["evals"], b["evals"], strict=True):
            np.testing.assert_array_equal(x, y)
        c = htsr.analyze(shards / index)  # the index itself is a path too
        pd.testing.assert_frame_equal(a.drop(columns="evals"), c)
    # .bin keeps the modules' order; safetensors (sorted by the format) natural order: same rows
    bins = htsr.analyze(tmp_path / "one_pytorch_model.bin")
    safe = htsr.analyze(tmp_path / "one_model.safetensors")
    key = ["layer", "slice"]
    pd.testing.assert_frame_equal(bins.sort_values(key).reset_index(drop=True),
                                  safe.sort_values(key).reset_index(drop=True))  # fmt: skip


def test_tensor_store_reads_one_tensor_at_a_time(tmp_path: Path) -> None:
    sd, config = lm_state("gpt_neox", H)
    folder = save_hub_folder(tmp_path / "m", sd, config, "model.safetensors.index.json")
    store = checkpoints.open_checkpoint(folder)
    assert isinstance(store, checkpoints.TensorStore) and store.config == config
    assert set(store) == set(sd) and len(store) == len(sd)
    layers = [k for k in store if "layers." in k]
    assert layers.index("gpt_neox.layers.1.attention.dense.weight") > layers.index(
        "gpt_neox.layers.0.mlp.dense_h_to_4h.weight"
    )  # natural order: layer 0 before layer 1
    assert list(store)[-1] == "embed_out.weight"  # heads last
    assert torch.equal(store["embed_out.weight"], sd["embed_out.weight"])
    with pytest.raises(checkpoints.CheckpointError, match="no weights file found"):
        checkpoints.open_checkpoint(tmp_path)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(checkpoints.CheckpointError, match="00002-of-00002.*file not found"):
        checkpoints.open_checkpoint(folder)


# ------------------------------------------------------------------------------ the hf source

ROWS = [
    {"model": "tiny-neox.step1000", "source": "hf", "repo": "Org/tiny-neox",
     "filename": "pytorch_model.bin.index.json", "revision": "step1000", "model_id": "gpt_neox",
     "note": "hidden 64"},
    {"model": "tiny-gpt2", "source": "hf", "repo": "Org/tiny-gpt2",
     "filename": "model.safetensors", "revision": "", "model_id": "gpt2", "note": "hidden 64"},
]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    files = make_weight_files(ROWS, tmp_path_factory.mktemp("hub"))
    faults: dict[str, str] = {}
    with serve_zoo(files, faults=faults) as base:
        yield base, files, faults


def test_hf_download_fetches_every_shard_verified_at_the_resolved_commit(
    served, tmp_path: Path
) -> None:
    base, files, _ = served
    row = ROWS[0]
    dest = tmp_path / "w" / f"{row['model']}.hf.json"
    assert zoo.weights_path(row, tmp_path / "w") == dest
    result = zoo.download_weights(row, dest, hf_endpoint=base, retries=0)
    manifest = json.loads(dest.read_text())
    assert result["fetched"] and result["revision"] == "step1000"
    assert len(manifest["commit"]) == 40 and manifest["commit"] == result["commit"]
    assert set(manifest["files"]) == {
        "config.json", "pytorch_model.bin.index.json",
        "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
    }  # fmt: skip
    assert "git_sha1" in manifest["files"]["config.json"]  # small files: the git blob id
    assert len(manifest["files"]["pytorch_model-00001-of-00002.bin"]["sha256"]) == 64
    served_rows = htsr.analyze(files[row["model"]])
    pd.testing.assert_frame_equal(htsr.analyze(dest), served_rows)
    store = zoo.load_weights(row, dest)  # what the pipeline's spectra job reads
    assert isinstance(store, checkpoints.TensorStore) and store.config["model_type"] == "gpt_neox"
    pd.testing.assert_frame_equal(htsr.analyze(store), served_rows)
    # a second call verifies what is there and fetches nothing
    before = base.downloads(row["model"])
    again = zoo.download_weights(row, dest, hf_endpoint=base, retries=0)
    assert not again["fetched"] and base.downloads(row["model"]) == before
    # offline: verified against the manifest; a tampered shard is named
    assert not zoo.download_weights(row, dest, offline=True)["fetched"]
    shard = dest.with_name(f"{row['model']}.hf") / "pytorch_model-00002-of-00002.bin"
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DownloadError, match="00002-of-00002.bin.*do not match the manifest"):
        zoo.download_weights(row, dest, offline=True)
    # online, the bad shard alone is fetched again
    zoo.download_weights(row, dest, hf_endpoint=base, retries=0)
    assert base.downloads(row["model"]) == before + 1


def test_hf_corrupt_shard_leaves_no_manifest(served, tmp_path: Path) -> None:
    base, _, faults = served
    row = ROWS[1]
    dest = tmp_path / f"{row['model']}.hf.json"
    faults[row["model"]] = "corrupt"
    try:
        with pytest.raises(DownloadError, match="tiny-gpt2: .*model.safetensors arrived corrupt"):
            zoo.download_weights(row, dest, hf_endpoint=base, retries=0)
    finally:
        faults.clear()
    assert not dest.exists()
    assert not list(dest.with_name(f"{row['model']}.hf").glob("*.safetensors"))
    assert zoo.download_weights(row, dest, hf_endpoint=base, retries=0)["fetched"]
    missing = dict(row, revision="step42")
    with pytest.raises(DownloadError, match="step42"):
        zoo.download_weights(missing, tmp_path / "x.hf.json", hf_endpoint=base, retries=0)
    with pytest.raises(DownloadError, match="offline mode.*x.hf.json is missing"):
        zoo.download_weights(missing, tmp_path / "x.hf.json", offline=True)


def test_hf_uri_in_the_library_and_the_cli(served, tmp_path: Path, monkeypatch) -> None:
    base, files, _ = served
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setenv("HTSR_CACHE", str(tmp_path / "cache"))
    assert hf.parse_uri("hf://Org/tiny-neox@step1000") == ("Org/tiny-neox", "step1000", "")
    with pytest.raises(ValueError, match="not an hf://"):
        hf.parse_uri("hf://just-a-name")
    table = htsr.analyze("hf://Org/tiny-neox@step1000")
    pd.testing.assert_frame_equal(table, htsr.analyze(files["tiny-neox.step1000"]))
    assert list((tmp_path / "cache" / "hf").glob("Org--tiny-neox--step1000.hf.json"))
    cli = subprocess.run(
        [sys.executable, "-m", "htsr.cli", "analyze", "hf://Org/tiny-gpt2", "--output",
         str(tmp_path / "gpt2.tsv")], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-3000:]
    out = pd.read_csv(tmp_path / "gpt2.tsv", sep="\t")
    assert len(out) == 12 and set(out["layer_type"]) == {"attention", "linear"}


def test_no_warning_for_known_layouts() -> None:
    for model_type in ("gpt2", "gpt_neox", "opt", "bloom", "bert"):
        sd, config = lm_state(model_type, H)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            list(layers_from_state_dict(sd, config=config))


def test_guide_reads_an_hf_address(served, tmp_path: Path, monkeypatch, capsys) -> None:
    """`htsr guide` opens its input with open_weights: an hf:// address is fetched, verified
    and gives the table of the same checkpoint read from its file."""
    from htsr.cli import main

    base, files, _ = served
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setenv("HTSR_CACHE", str(tmp_path / "cache"))
    assert main(["guide", "hf://Org/tiny-gpt2", "--method", "tempbalance", "--json",
                 "-o", str(tmp_path / "hub.tsv")]) == 0  # fmt: skip
    hub = json.loads(capsys.readouterr().out)
    assert main(["guide", str(files["tiny-gpt2"]), "--method", "tempbalance", "--json",
                 "-o", str(tmp_path / "file.tsv")]) == 0  # fmt: skip
    local = json.loads(capsys.readouterr().out)
    assert hub["checkpoint"] == "hf://Org/tiny-gpt2" and hub["n_layers"] == local["n_layers"] > 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "hub.tsv", sep="\t"),
                                  pd.read_csv(tmp_path / "file.tsv", sep="\t"))  # fmt: skip
