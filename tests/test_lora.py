"""LoRA / PEFT adapters written by ``peft`` itself on a tiny Llama: analysed as s·B·A alone,
as W + s·B·A with the base, equal to WeightWatcher's ``peft=True`` rows and to ``peft``'s
``merge_and_unload`` weights."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from htsr import analyze
from htsr.cli import main
from htsr.weights.describe import describe
from htsr.weights.lora import LoraStateDict, adapter_scaling, open_adapter

pytest.importorskip("peft")

TARGETS = ["q_proj", "v_proj", "down_proj", "embed_tokens"]


@pytest.fixture(scope="module")
def peft_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny Llama (2 layers, hidden 64) saved by transformers, a LoRA adapter on it (r = 4,
    alpha = 8, random B so the update is not 0) saved by peft as safetensors and as .bin, and
    peft's merged state_dict."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("lora")
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4)  # fmt: skip
    base = LlamaForCausalLM(cfg)
    base.save_pretrained(root / "base")
    torch.save(base.state_dict(), root / "base.bin")  # the modules' order, as pickles keep it
    lcfg = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False)
    model = get_peft_model(base, lcfg)
    model.save_pretrained(root / "adapter")
    model.save_pretrained(root / "adapter_bin", safe_serialization=False)
    merged = {k: v.detach().clone() for k, v in model.merge_and_unload().state_dict().items()}
    return {"root": root, "base": root / "base", "adapter": root / "adapter",
            "bin": root / "adapter_bin", "base_bin": root / "base.bin",
            "merged": merged}  # fmt: skip


def test_adapter_alone_matches_weightwatcher_peft_rows(peft_files: dict) -> None:
    import weightwatcher

    sd = load_file(peft_files["adapter"] / "adapter_model.safetensors")
    # WW 0.7.7 refuses the adapter with its default min_evals = 8 (it filters the lora_A
    # factor, M = r = 4, before multiplying): min_evals=1 makes it analyse B·A
    watcher = weightwatcher.WeightWatcher(log_level=logging.ERROR)
    assert watcher.analyze(model=sd, peft=True).empty
    ref = watcher.analyze(model=sd, peft=True, min_evals=1)
    ours = analyze(open_adapter(peft_files["adapter"], scale=False), "ww", dtype="float64")
    assert list(ours["layer"]) == list(ref["name"])  # WW's names: <module>.lora_BA
    assert all(n.endswith(".lora_BA") for n in ours["layer"]) and len(ours) == 6
    assert list(ours["num_evals"]) == list(ref["num_evals"]) == [4] * 6  # the rank r
    for col in ("alpha", "lambda_max", "log_norm", "log_spectral_norm"):
        np.testing.assert_allclose(ours[col], ref[col], rtol=1e-9, err_msg=col)
    assert (ours["warning"] != "").all()  # 4 eigenvalues < 8: "few eigenvalues"
    scaled = analyze(peft_files["adapter"], "ww", dtype="float64")  # by path: scaled by s = 2
    np.testing.assert_allclose(scaled["lambda_max"], 4 * ref["lambda_max"], rtol=1e-9)
    np.testing.assert_allclose(scaled["alpha"], ref["alpha"], rtol=1e-9)


def test_with_base_equals_peft_merge(peft_files: dict) -> None:
    lora = open_adapter(peft_files["adapter"] / "adapter_model.safetensors",
                        base=peft_files["base"])  # fmt: skip
    merged = peft_files["merged"]
    keys = [k for k in lora if k.endswith(".lora_W_plus_AB.weight")]
    assert len(keys) == 7  # q, v, down in 2 layers, and the embedding
    for key in keys:
        base_key = key.removeprefix("base_model.model.").replace(".lora_W_plus_AB", "")
        torch.testing.assert_close(lora[key], merged[base_key], rtol=1e-6, atol=1e-6)
    # in the base checkpoint's order: a safetensors base is stored sorted (mlp before
    # self_attn); a .bin base in the modules' order (q_proj, v_proj before down_proj)
    order = [k.split(".")[-3] for k in lora if k.endswith(".lora_BA.weight")]
    assert order[:4] == ["embed_tokens", "down_proj", "q_proj", "v_proj"]
    lora_bin = open_adapter(peft_files["adapter"], base=peft_files["base_bin"])
    order = [k.split(".")[-3] for k in lora_bin if k.endswith(".lora_BA.weight")]
    assert order[:4] == ["embed_tokens", "q_proj", "v_proj", "down_proj"]
    table = analyze(lora, "paper", include_embeddings=True)
    assert (table["status"] == "ok").all()
    assert table["layer"].str.endswith(".lora_W_plus_AB").sum() == 7


def test_bin_adapter_and_shuffled_keys_pair_by_name(peft_files: dict) -> None:
    bin_lora = open_adapter(peft_files["bin"] / "adapter_model.bin", scale=False)
    st_lora = open_adapter(peft_files["adapter"], scale=False)
    assert sorted(bin_lora) == sorted(st_lora)
    # the .bin keeps peft's module order: q_proj, v_proj, then down_proj
    order = [k.split(".")[-3] for k in bin_lora if k.endswith(".lora_BA.weight")]
    assert order[:4] == ["embed_tokens", "q_proj", "v_proj", "down_proj"]
    sd = dict(load_file(peft_files["adapter"] / "adapter_model.safetensors"))
    keys = list(sd)
    random.Random(0).shuffle(keys)
    shuffled = LoraStateDict({k: sd[k] for k in keys})
    for key in st_lora:
        torch.testing.assert_close(shuffled[key], st_lora[key])


def test_scaling_config_and_describe(peft_files: dict, capsys) -> None:
    cfg = json.loads((peft_files["adapter"] / "adapter_config.json").read_text())
    assert adapter_scaling(cfg)("model.layers.0.self_attn.q_proj") == 2.0
    rs = adapter_scaling({**cfg, "use_rslora": True, "rank_pattern": {"v_proj": 16}})
    assert (rs("a.q_proj"), rs("a.v_proj")) == (8 / 2, 8 / 4)
    t = describe(peft_files["adapter"], "ww")
    lin = t[t["layer_type"] == "linear"]
    assert list(lin["num_evals"].unique()) == [4] and list(lin["M"].unique()) == [64]
    assert main(["analyze", str(peft_files["adapter"]), "--base", str(peft_files["base"]),
                 "--convention", "ww"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "of 12 matrices analysed" in out.splitlines()[0]
    assert "self_attn.q_proj.lora_W_plus_AB" in out
