"""Time of ``htsr describe`` on a 7B-shaped sharded checkpoint: headers only, no tensor data.

Writes Llama-2-7B's tensor names, shapes and dtype (hidden 4096, MLP 11008, 32 layers,
vocabulary 32000, bfloat16: 6.7e9 parameters, 13.5 GB) as two safetensors shards with their
``model.safetensors.index.json`` and ``config.json``, each shard as its real header followed by
a *sparse* data region (``os.truncate``: no bytes on disk, reading it would give zeros), and
times :func:`htsr.weights.describe.describe` on the folder (best of ``--repeat``), with
``TensorStore.__getitem__`` made to raise: describe never asks for a tensor's data.

For the ratio against WeightWatcher 0.7.7's ``describe`` (which reads every tensor to numpy,
so it cannot run on the sparse 13.5 GB), both describe a reduced model of the same layout with
real data (``--small-layers`` layers, hidden 1024, MLP 2752, float32) from a state_dict in
memory (WW) and from its safetensors file (htsr). Prints both times and the ratio.

Usage::

    python benchmarks/bench_describe.py [--repeat 3] [--small-layers 4] [--skip-ww]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

_CODES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}
_SIZES = {"BF16": 2, "F16": 2, "F32": 4}


def llama_tensors(layers: int = 32, hidden: int = 4096, mlp: int = 11008, vocab: int = 32000):
    """``(name, shape)`` of a Llama checkpoint, in its modules' order."""
    yield "model.embed_tokens.weight", (vocab, hidden)
    for i in range(layers):
        p = f"model.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield f"{p}.self_attn.{proj}.weight", (hidden, hidden)
        yield f"{p}.mlp.gate_proj.weight", (mlp, hidden)
        yield f"{p}.mlp.up_proj.weight", (mlp, hidden)
        yield f"{p}.mlp.down_proj.weight", (hidden, mlp)
        yield f"{p}.input_layernorm.weight", (hidden,)
        yield f"{p}.post_attention_layernorm.weight", (hidden,)
    yield "model.norm.weight", (hidden,)
    yield "lm_head.weight", (vocab, hidden)


def write_header_only(path: Path, shapes: dict[str, tuple[int, ...]], dtype: str = "BF16") -> int:
    """A safetensors file holding ``shapes`` whose data region is sparse (a hole of the right
    size): the header is exact, the values read as 0. Returns the file's apparent size."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in sorted(shapes):  # safetensors stores its keys sorted
        n = _SIZES[dtype]
        for s in shapes[name]:
            n *= s
        header[name] = {"dtype": dtype, "shape": list(shapes[name]),
                        "data_offsets": [offset, offset + n]}  # fmt: skip
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
    size = 8 + len(text) + offset
    os.truncate(path, size)
    return size


def write_sharded(folder: Path, tensors: list[tuple[str, tuple[int, ...]]], shards: int = 2,
                  dtype: str = "BF16") -> int:  # fmt: skip
    """A hub-layout folder of ``shards`` header-only safetensors shards, index and config."""
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(tensors) // shards)
    weight_map, total = {}, 0
    for k in range(shards):
        name = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = dict(tensors[k * per : (k + 1) * per])
        total += write_header_only(folder / name, part, dtype)
        weight_map |= dict.fromkeys(part, name)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return total


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--small-layers", type=int, default=4)
    p.add_argument("--skip-ww", action="store_true")
    args = p.parse_args(argv)
    import torch

    from htsr.weights.checkpoints import TensorStore
    from htsr.weights.describe import describe

    def no_data(self, key):
        raise AssertionError(f"describe read the data of {key}")

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "llama-7b-shaped"
        size = write_sharded(big, list(llama_tensors()))
        orig, TensorStore.__getitem__ = TensorStore.__getitem__, no_data
        try:
            t_big = _best(lambda: describe(big), args.repeat)
            table = describe(big)
        finally:
            TensorStore.__getitem__ = orig
        print(
            f"7B-shaped sharded checkpoint: {size / 1e9:.1f} GB in 2 shards,"
            f" {len(table)} rows, describe {t_big:.3f} s (no tensor data read)"
        )
        if args.skip_ww:
            return 0
        import logging

        import weightwatcher
        from safetensors.torch import save_file

        torch.manual_seed(0)
        small = {n: torch.randn(s) for n, s in llama_tensors(args.small_layers, 1024, 2752, 4000)}
        path = Path(tmp) / "small.safetensors"
        save_file(small, str(path))
        watcher = weightwatcher.WeightWatcher(log_level=logging.ERROR)
        t_ww = _best(lambda: watcher.describe(model=small), args.repeat)
        t_us = _best(lambda: describe(path, "ww"), args.repeat)
        print(
            f"reduced model ({args.small_layers} layers, hidden 1024, float32,"
            f" {path.stat().st_size / 1e6:.0f} MB): htsr describe {t_us:.4f} s,"
            f" WeightWatcher 0.7.7 describe {t_ww:.4f} s, ratio WW/htsr {t_ww / t_us:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
