"""``describe``: the matrices analyze would see, from headers only (WW's ``describe``)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from htsr.cli import main
from htsr.weights.checkpoints import TensorStore
from htsr.weights.describe import describe

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_describe.py"
_spec = importlib.util.spec_from_file_location("bench_describe", _BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_7b_shaped_shards_described_from_headers_only(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "llama"
    size = bench.write_sharded(folder, list(bench.llama_tensors()))
    assert size > 13e9 and sum(f.stat().st_blocks for f in folder.iterdir()) * 512 < 1e7

    def no_data(self, key):
        raise AssertionError(f"read the data of {key}")

    monkeypatch.setattr(TensorStore, "__getitem__", no_data)
    t = describe(folder)
    layers = t[t["layer_type"] != ""]
    assert len(layers) == 32 * 7 + 1 and (layers["status"] == "ok").all()
    # layer by layer in depth order across both shards (layers.2 before layers.10), though
    # safetensors stores its keys sorted (within a layer the order is the keys' order)
    depth = [int(n.split(".")[2]) for n in layers["layer"][:-1]]
    assert depth == sorted(depth) and depth[7 * 2] == 2 and depth[-1] == 31
    down = layers[layers["layer"] == "model.layers.31.mlp.down_proj"].iloc[0]
    assert (down["shape"], down["dtype"], down["N"], down["M"], down["num_evals"]) == (
        "4096x11008", "bfloat16", 11008, 4096, 4096)  # fmt: skip
    assert layers["layer"].iloc[-1] == "lm_head"
    other = t[t["layer_type"] == ""]
    assert list(other["layer"]) == ["model.embed_tokens.weight"]
    assert list(other["status"]) == ["excluded"]


def test_describe_agrees_with_weightwatcher_describe() -> None:
    import weightwatcher

    m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 32, 3), nn.Flatten(),
                      nn.Linear(128, 100), nn.Linear(100, 6), nn.Conv2d(64, 32, 2))  # fmt: skip
    ref = weightwatcher.WeightWatcher(log_level=logging.ERROR).describe(model=m)
    ours = describe(m, "ww")
    ok = ours[ours["status"] == "ok"]
    assert list(ok["layer"]) == list(ref["name"])
    assert list(ok["num_evals"]) == list(ref["num_evals"])
    assert list(ok["n_slices"]) == list(ref["rf"])
    # WW drops the 6-output head silently; here it is listed with why
    (small,) = ours[ours["status"] != "ok"].itertuples()
    assert (small.layer, small.status, small.num_evals) == ("4", "too_small", 6)
    assert small.reason == "fewer than min_evals = 8 eigenvalues (M·slices)"


def test_describe_command(tmp_path: Path, capsys) -> None:
    sd = {"a.weight": torch.randn(64, 32, 3, 3), "b.weight": torch.randn(10, 64),
          "c.weight": torch.zeros(20, 20, dtype=torch.int8)}  # fmt: skip
    from safetensors.torch import save_file

    save_file(sd, str(tmp_path / "m.safetensors"))
    assert main(["describe", str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:3] == ["a", "conv2d", "64x32x3x3"]
    assert (
        out[-3] == f"{tmp_path / 'm.safetensors'}: 3 layers, 11 rows (paper), 1 layers to fit;"
        " 0 other tensors of 2+ dimensions"
    )
    assert out[-2] == "  a: too_small: a conv slice with min(N, M) < min_dim = 50"
    assert out[-1] == "  c: non_float: not a floating-point tensor (integer or quantized weights)"
    with pytest.raises(SystemExit):
        main(["describe"])
