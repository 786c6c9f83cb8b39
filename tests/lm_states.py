"""Small random language-model checkpoints with the real key names and layouts, for tests.

``lm_state(model_type, hidden, layers, seed)`` returns ``(state_dict, config)``: the tensors a
Hugging Face checkpoint of that architecture holds (GPT-2 with its ``Conv1D`` weights stored
(in, out) and no separate head; GPT-NeoX (Pythia) with interleaved ``query_key_value`` and an
untied ``embed_out``; OPT with separate q/k/v and a head tied to the token embedding; BLOOM with
interleaved ``query_key_value``; BERT with separate q/k/v), and the ``config.json`` fields the
analysis reads. ``save_hub_folder`` writes one the way the hub serves it: one weights file, or
an index and two shards, beside ``config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

VOCAB, POSITIONS, HEADS = 256, 64, 4


def _w(*shape: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) / shape[-1] ** 0.5


def lm_state(
    model_type: str, hidden: int = 64, layers: int = 2, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, config)`` of a random ``model_type`` (gpt2, gpt_neox, opt, bloom, bert)."""
    g = torch.Generator().manual_seed(seed)
    h, f = hidden, 4 * hidden
    sd: dict[str, torch.Tensor] = {}

    def norm(name: str) -> None:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = torch.ones(h), torch.zeros(h)

    def dense(name: str, out: int, inp: int, *, conv1d: bool = False) -> None:
        w = _w(out, inp, gen=g)
        sd[f"{name}.weight"] = w.t().contiguous() if conv1d else w
        sd[f"{name}.bias"] = torch.zeros(out)

    if model_type == "gpt2":
        sd["wte.weight"], sd["wpe.weight"] = _w(VOCAB, h, gen=g), _w(POSITIONS, h, gen=g)
        for i in range(layers):
            p = f"h.{i}"
            norm(f"{p}.ln_1")
            dense(f"{p}.attn.c_attn", 3 * h, h, conv1d=True)
            dense(f"{p}.attn.c_proj", h, h, conv1d=True)
            norm(f"{p}.ln_2")
            dense(f"{p}.mlp.c_fc", f, h, conv1d=True)
            dense(f"{p}.mlp.c_proj", h, f, conv1d=True)
        norm("ln_f")
        config = {"model_type": "gpt2", "n_embd": h, "n_head": HEADS, "n_layer": layers}
    elif model_type == "gpt_neox":
        sd["gpt_neox.embed_in.weight"] = _w(VOCAB, h, gen=g)
        for i in range(layers):
            p = f"gpt_neox.layers.{i}"
            norm(f"{p}.input_layernorm")
            norm(f"{p}.post_attention_layernorm")
            sd[f"{p}.attention.bias"] = torch.ones(1, 1, POSITIONS, POSITIONS, dtype=torch.bool)
            sd[f"{p}.attention.rotary_emb.inv_freq"] = torch.rand(h // HEADS // 2, generator=g)
            dense(f"{p}.attention.query_key_value", 3 * h, h)
            dense(f"{p}.attention.dense", h, h)
            dense(f"{p}.mlp.dense_h_to_4h", f, h)
            dense(f"{p}.mlp.dense_4h_to_h", h, f)
        norm("gpt_neox.final_layer_norm")
        sd["embed_out.weight"] = _w(VOCAB, h, gen=g)
        config = {"model_type": "gpt_neox", "hidden_size": h, "num_attention_heads": HEADS,
                  "num_hidden_layers": layers, "tie_word_embeddings": False}  # fmt: skip
    elif model_type == "opt":
        sd["model.decoder.embed_tokens.weight"] = _w(VOCAB, h, gen=g)
        sd["model.decoder.embed_positions.weight"] = _w(POSITIONS + 2, h, gen=g)
        for i in range(layers):
            p = f"model.decoder.layers.{i}"
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                dense(f"{p}.self_attn.{proj}", h, h)
            norm(f"{p}.self_attn_layer_norm")
            dense(f"{p}.fc1", f, h)
            dense(f"{p}.fc2", h, f)
            norm(f"{p}.final_layer_norm")
        sd["lm_head.weight"] = sd["model.decoder.embed_tokens.weight"].clone()  # tied
        config = {"model_type": "opt", "hidden_size": h, "num_attention_heads": HEADS}
    elif model_type == "bloom":
        sd["word_embeddings.weight"] = _w(VOCAB, h, gen=g)
        norm("word_embeddings_layernorm")
        for i in range(layers):
            p = f"h.{i}"
            norm(f"{p}.input_layernorm")
            dense(f"{p}.self_attention.query_key_value", 3 * h, h)
            dense(f"{p}.self_attention.dense", h, h)
            norm(f"{p}.post_attention_layernorm")
            dense(f"{p}.mlp.dense_h_to_4h", f, h)
            dense(f"{p}.mlp.dense_4h_to_h", h, f)
        norm("ln_f")
        config = {"model_type": "bloom", "hidden_size": h, "n_head": HEADS, "n_layer": layers}
    elif model_type == "bert":
        for name, rows in (("word", VOCAB), ("position", POSITIONS), ("token_type", 2)):
            sd[f"embeddings.{name}_embeddings.weight"] = _w(rows, h, gen=g)
        norm("embeddings.LayerNorm")
        for i in range(layers):
            p = f"encoder.layer.{i}"
            for proj in ("query", "key", "value"):
                dense(f"{p}.attention.self.{proj}", h, h)
            dense(f"{p}.attention.output.dense", h, h)
            norm(f"{p}.attention.output.LayerNorm")
            dense(f"{p}.intermediate.dense", f, h)
            dense(f"{p}.output.dense", h, f)
            norm(f"{p}.output.LayerNorm")
        dense("pooler.dense", h, h)
        config = {"model_type": "bert", "hidden_size": h, "num_attention_heads": HEADS}
    else:
        raise ValueError(f"unknown model_type {model_type!r}")
    return sd, config


def save_hub_folder(
    folder: str | Path, state: dict[str, torch.Tensor], config: dict[str, Any], filename: str
) -> Path:
    """Write ``state`` as the hub serves it: ``filename`` (``model.safetensors``,
    ``pytorch_model.bin``, or an index ``*.index.json`` with two shards of either kind) and
    ``config.json``, into ``folder``. Returns the folder."""
    import safetensors.torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.contiguous() for k, v in state.items()}

    def save(part: dict[str, torch.Tensor], name: str) -> None:
        if name.endswith(".safetensors"):
            safetensors.torch.save_file(part, folder / name, metadata={"format": "pt"})
        else:
            torch.save(part, folder / name)

    if not filename.endswith(".index.json"):
        save(state, filename)
        return folder
    stem, ext = ("model", "safetensors") if "safetensors" in filename else ("pytorch_model", "bin")
    keys = list(state)
    halves = (keys[: len(keys) // 2], keys[len(keys) // 2 :])
    weight_map = {}
    for i, part in enumerate(halves, start=1):
        name = f"{stem}-{i:05d}-of-00002.{ext}"
        save({k: state[k] for k in part}, name)
        weight_map.update(dict.fromkeys(part, name))
    total = sum(v.numel() * v.element_size() for v in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / filename).write_text(json.dumps(index, indent=2) + "\n")
    return folder
