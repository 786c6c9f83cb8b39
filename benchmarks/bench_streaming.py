"""Memory and time of analysing a large sharded checkpoint tensor by tensor.

Builds a synthetic checkpoint with the tensor names, shapes and dtype of EleutherAI's
pythia-1.4b (GPT-NeoX: hidden 2048, 24 layers, vocabulary 50304, float16, ~2.8 GB) as
``pytorch_model-0000k-of-0000n.bin`` shards with a ``pytorch_model.bin.index.json`` and a
``config.json``, random values (seed 0), in a temporary folder (``--keep DIR`` keeps it). Then,
in a fresh child process:

(a) ``htsr.analyze(folder)`` (paper convention, float32 on CPU, the defaults), sampling the
    process's anonymous resident memory (``RssAnon`` of ``/proc/self/status``, every 5 ms) for
    its peak, and timing it;
(b) the floor: the eigenvalues alone of the very matrices (a) analyses (q/k/v split as (a) does
    it, embeddings excluded, ``embed_out`` kept), each read from the checkpoint first (not
    timed), then only its float32 Gram matrix and ``torch.linalg.eigvalsh`` timed.

Prints the peak RssAnon of (a) beyond the process's baseline, the checkpoint's size, both times
and their ratio. Aims (issue "Studies beyond ImageNet"): under 1.5 GB anonymous memory, and (a)
within 1.3x of (b). ``--layers N`` builds a smaller model for a quick run.

Usage::

    python benchmarks/bench_streaming.py [--layers 24] [--shards 3] [--threads N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HIDDEN, VOCAB, HEADS, POSITIONS = 2048, 50304, 16, 2048


def tensors(layers: int):
    """``(name, shape, dtype)`` of pythia-1.4b's checkpoint, in its order."""
    import torch

    h, f = HIDDEN, 4 * HIDDEN
    yield "gpt_neox.embed_in.weight", (VOCAB, h), torch.float16
    for i in range(layers):
        p = f"gpt_neox.layers.{i}"
        for norm in ("input_layernorm", "post_attention_layernorm"):
            yield f"{p}.{norm}.weight", (h,), torch.float16
            yield f"{p}.{norm}.bias", (h,), torch.float16
        yield f"{p}.attention.bias", (1, 1, POSITIONS, POSITIONS), torch.bool
        yield f"{p}.attention.masked_bias", (), torch.float16
        yield f"{p}.attention.rotary_emb.inv_freq", (h // HEADS // 4,), torch.float16
        yield f"{p}.attention.query_key_value.weight", (3 * h, h), torch.float16
        yield f"{p}.attention.query_key_value.bias", (3 * h,), torch.float16
        yield f"{p}.attention.dense.weight", (h, h), torch.float16
        yield f"{p}.attention.dense.bias", (h,), torch.float16
        yield f"{p}.mlp.dense_h_to_4h.weight", (f, h), torch.float16
        yield f"{p}.mlp.dense_h_to_4h.bias", (f,), torch.float16
        yield f"{p}.mlp.dense_4h_to_h.weight", (h, f), torch.float16
        yield f"{p}.mlp.dense_4h_to_h.bias", (h,), torch.float16
    yield "gpt_neox.final_layer_norm.weight", (h,), torch.float16
    yield "gpt_neox.final_layer_norm.bias", (h,), torch.float16
    yield "embed_out.weight", (VOCAB, h), torch.float16


def build(folder: Path, layers: int, shards: int) -> int:
    """Write the checkpoint shard by shard (one shard in memory at a time); its size in bytes."""
    import torch

    g = torch.Generator().manual_seed(0)
    specs = list(tensors(layers))
    total = sum(
        torch.Size(s).numel() * torch.empty((), dtype=d).element_size() for _, s, d in specs
    )
    per_shard, weight_map, part, size, k = total / shards, {}, {}, 0, 1

    def flush() -> None:
        nonlocal part, size, k
        name = f"pytorch_model-{k:05d}-of-{shards:05d}.bin"
        torch.save(part, folder / name)
        weight_map.update(dict.fromkeys(part, name))
        part, size, k = {}, 0, k + 1

    for name, shape, dtype in specs:
        if dtype == torch.bool:
            t = torch.ones(shape, dtype=dtype).tril()
        else:
            t = (torch.randn(shape, generator=g) / max(shape[-1] if shape else 1, 1) ** 0.5).to(
                dtype
            )
        part[name] = t
        size += t.numel() * t.element_size()
        if size >= per_shard and k < shards:
            flush()
    flush()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=1))
    config = {"model_type": "gpt_neox", "hidden_size": HIDDEN, "num_attention_heads": HEADS,
              "num_hidden_layers": layers, "tie_word_embeddings": False}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return total


CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    import torch
    torch.set_num_threads(int(sys.argv[2]))
    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    import htsr
    from htsr.weights.checkpoints import open_checkpoint
    from htsr.spectral.matrices import iter_layers, layer_matrices
    base, peak, done = anon(), [0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon())
            time.sleep(0.005)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    table = htsr.analyze(sys.argv[1])
    ours = time.perf_counter() - start
    done.set(); thread.join()
    store = open_checkpoint(sys.argv[1])
    floor, n = 0.0, 0
    for layer in iter_layers(store, config=store.config):
        stack = layer_matrices(layer)
        for m in stack.matrices:
            w = m.float()
            w = w if w.shape[0] >= w.shape[1] else w.t()
            t0 = time.perf_counter()
            torch.linalg.eigvalsh(w.t() @ w)
            floor += time.perf_counter() - t0
            n += 1
    print(json.dumps({"rows": len(table), "ok": int((table.status == "ok").sum()),
                      "ours_s": ours, "floor_s": floor, "floor_matrices": n,
                      "peak_anon_bytes": peak[0] - base, "baseline_anon_bytes": base}))
    """
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=Path, default=None, help="build the checkpoint here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="htsr-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        size = build(folder, args.layers, args.shards)
        print(
            f"built {folder}: pythia-1.4b shapes, {args.layers} layers, {args.shards} .bin"
            f" shards, {size / 1e9:.2f} GB float16 in {time.perf_counter() - t0:.0f} s"
        )
        res = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(args.threads)],
                             capture_output=True, text=True)  # fmt: skip
        if res.returncode != 0:
            print(res.stderr[-4000:], file=sys.stderr)
            return 1
        r = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"streaming analysis of a sharded checkpoint (threads: {args.threads})")
    print("checkpoint_gb rows ok peak_anon_gb ours_s floor_s ours_over_floor")
    print(
        f"{size / 1e9:.2f} {r['rows']} {r['ok']} {r['peak_anon_bytes'] / 1e9:.3f}"
        f" {r['ours_s']:.1f} {r['floor_s']:.1f} {r['ours_s'] / r['floor_s']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
