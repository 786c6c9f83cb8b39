"""Small random checkpoints with the real key names and file formats of the segmentation and
autoencoder studies' ``url`` rows, for the offline end-to-end test.

``make_url_files(rows, root) -> dict[model, Path]`` writes each url row's file under
``{root}/models/`` (served there by ``tests/zoo_server.py`` as ``/{file name}``), one file per
``weights`` key, built by what its URL names:

* CompressAI (``compressai.s3``): the state_dict of ``FactorizedPrior``,
  ``ScaleHyperprior`` or ``MeanScaleHyperprior`` (``bmshj2018-factorized``,
  ``bmshj2018-hyperprior``, ``mbt2018-mean``) with CompressAI's key names and layer shapes
  (``compressai/models/google.py``: ``g_a``/``g_s`` convolutions and GDNs, ``h_a``/``h_s``,
  ``entropy_bottleneck._matrices.0``...), from plain torch tensors (no CompressAI), saved as
  ``{name}-{sha8}.pth.tar`` where ``sha8`` starts this file's sha256, the hash-in-name
  convention of CompressAI's URLs. A row whose ``note`` starts with ``legacy`` is saved in
  torch's pre-1.6 format.
* mmsegmentation (``download.openmmlab.com``): an mmengine checkpoint, a ``state_dict`` with
  SegFormer's key names beside ``meta`` (numpy arrays, a tuple of class names) and a
  ``message_hub`` holding an ``mmengine.logging.history_buffer.HistoryBuffer``, pickled from a
  stand-in module that exists only while saving; ``{name}-{sha8}.pth``.
* latent-diffusion's ``kl-f8.zip``: a zip holding ``model.ckpt``, a Lightning checkpoint of a
  small KL autoencoder with the ``ldm`` key names (``encoder.*``, ``quant_conv``,
  ``post_quant_conv``, ``decoder.*``) plus the training loss's networks (``loss.*``), and a
  callback object of a class that is not importable when it is read. No hash in its name: the
  url source records it at the first download.

``served_url_table(rows, files, base)`` points each url row at ``{base}/{file name}``.
"""

from __future__ import annotations

import hashlib
import io
import sys
import types
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

#: CompressAI's (N, M) at quality levels 1-5 of the bmshj2018 and mbt2018-mean codecs.
N, M = 128, 192


def _w(gen: torch.Generator, *shape: int) -> torch.Tensor:
    fan_in = int(np.prod(shape[1:])) or 1
    return torch.randn(*shape, generator=gen) / fan_in**0.5


def _conv(state: dict, key: str, cin: int, cout: int, k: int, gen: torch.Generator) -> None:
    state[f"{key}.weight"] = _w(gen, cout, cin, k, k)
    state[f"{key}.bias"] = torch.zeros(cout)


def _deconv(state: dict, key: str, cin: int, cout: int, k: int, gen: torch.Generator) -> None:
    state[f"{key}.weight"] = _w(gen, cin, cout, k, k)  # ConvTranspose2d: (in, out, kh, kw)
    state[f"{key}.bias"] = torch.zeros(cout)


def _gdn(state: dict, key: str, n: int) -> None:
    state[f"{key}.beta"] = torch.ones(n)
    state[f"{key}.gamma"] = 0.1 * torch.eye(n)
    for name in ("beta_reparam", "gamma_reparam"):
        state[f"{key}.{name}.pedestal"] = torch.tensor(2.0**-36)
        state[f"{key}.{name}.lower_bound.bound"] = torch.tensor(1e-6)


def _entropy_bottleneck(state: dict, channels: int, gen: torch.Generator) -> None:
    filters = (1, 3, 3, 3, 3, 1)
    for i in range(len(filters) - 1):
        state[f"entropy_bottleneck._matrices.{i}"] = _w(gen, channels, filters[i + 1], filters[i])
        state[f"entropy_bottleneck._biases.{i}"] = torch.zeros(channels, filters[i + 1], 1)
        if i < len(filters) - 2:
            state[f"entropy_bottleneck._factors.{i}"] = torch.zeros(channels, filters[i + 1], 1)
    state["entropy_bottleneck.quantiles"] = torch.zeros(channels, 1, 3)
    state["entropy_bottleneck._offset"] = torch.zeros(channels, dtype=torch.int32)
    state["entropy_bottleneck._quantized_cdf"] = torch.zeros(channels, 10, dtype=torch.int32)
    state["entropy_bottleneck._cdf_length"] = torch.full((channels,), 10, dtype=torch.int32)


def compressai_state(arch: str, n: int = N, m: int = M, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state_dict of CompressAI's ``arch`` with its key names and shapes."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    channels = [3, n, n, n, m]
    for i in range(4):  # g_a: conv, GDN, conv, GDN, conv, GDN, conv (5x5, stride 2)
        _conv(state, f"g_a.{2 * i}", channels[i], channels[i + 1], 5, gen)
        if i < 3:
            _gdn(state, f"g_a.{2 * i + 1}", n)
    for i in range(4):  # g_s: the mirror, transposed convolutions and inverse GDNs
        _deconv(state, f"g_s.{2 * i}", channels[4 - i], channels[3 - i], 5, gen)
        if i < 3:
            _gdn(state, f"g_s.{2 * i + 1}", n)
    if arch == "bmshj2018-factorized":
        _entropy_bottleneck(state, m, gen)
        return state
    _conv(state, "h_a.0", m, n, 3, gen)
    _conv(state, "h_a.2", n, n, 5, gen)
    _conv(state, "h_a.4", n, n, 5, gen)
    if arch == "bmshj2018-hyperprior":
        _deconv(state, "h_s.0", n, n, 5, gen)
        _deconv(state, "h_s.2", n, n, 5, gen)
        _conv(state, "h_s.4", n, m, 3, gen)
    elif arch == "mbt2018-mean":
        _deconv(state, "h_s.0", n, m, 5, gen)
        _deconv(state, "h_s.2", m, m * 3 // 2, 5, gen)
        _conv(state, "h_s.4", m * 3 // 2, m * 2, 3, gen)
    else:
        raise ValueError(f"no CompressAI architecture {arch!r} here")
    _entropy_bottleneck(state, n, gen)
    state["gaussian_conditional.scale_table"] = torch.exp(torch.linspace(-2.2, 5.5, 64))
    state["gaussian_conditional.lower_bound_scale.bound"] = torch.tensor(0.11)
    state["gaussian_conditional._offset"] = torch.zeros(64, dtype=torch.int32)
    state["gaussian_conditional._quantized_cdf"] = torch.zeros(64, 10, dtype=torch.int32)
    state["gaussian_conditional._cdf_length"] = torch.full((64,), 10, dtype=torch.int32)
    return state


def segformer_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A few SegFormer tensors with mmsegmentation's key names (two 128-wide blocks)."""
    gen = torch.Generator().manual_seed(seed)
    c = 128
    state = {"backbone.layers.0.0.projection.weight": _w(gen, 64, 3, 7, 7)}
    for b in range(2):
        key = f"backbone.layers.1.1.{b}"
        state[f"{key}.attn.attn.in_proj_weight"] = _w(gen, 3 * c, c)
        state[f"{key}.attn.attn.out_proj.weight"] = _w(gen, c, c)
        state[f"{key}.attn.sr.weight"] = _w(gen, c, c, 4, 4)
        state[f"{key}.ffn.layers.0.weight"] = _w(gen, 4 * c, c, 1, 1)
        state[f"{key}.ffn.layers.1.weight"] = _w(gen, 4 * c, 1, 3, 3)  # depthwise
        state[f"{key}.ffn.layers.4.weight"] = _w(gen, c, 4 * c, 1, 1)
        state[f"{key}.norm1.weight"] = torch.ones(c)
    state["decode_head.linear_fuse.conv.weight"] = _w(gen, 256, 4 * c, 1, 1)
    state["decode_head.conv_seg.weight"] = _w(gen, 150, 256, 1, 1)
    state["decode_head.conv_seg.bias"] = torch.zeros(150)
    return state


def _stand_in(module: str, name: str) -> type:
    """A class pickled as ``module.name`` (a stand-in module exists only while saving)."""

    def update(self: Any, value: float) -> None:
        self._log_history.append(value)

    cls = type(name, (), {"__init__": lambda self: setattr(self, "_log_history", []),
                          "update": update, "__module__": module})  # fmt: skip
    return cls


def _save_with_stand_ins(obj_factory: Any, classes: Mapping[str, str], **save: Any) -> bytes:
    """``torch.save`` of ``obj_factory(made)`` into bytes, ``made[name]`` being a class that
    pickles as ``classes[name]`` (a dotted path); its modules are removed afterwards."""
    added, made = [], {}
    try:
        for name, dotted in classes.items():
            module, _, attr = dotted.rpartition(".")
            parts = module.split(".")
            for i in range(len(parts)):
                mod = ".".join(parts[: i + 1])
                if mod not in sys.modules:
                    sys.modules[mod] = types.ModuleType(mod)
                    added.append(mod)
            cls = _stand_in(module, attr)
            setattr(sys.modules[module], attr, cls)
            made[name] = cls
        buffer = io.BytesIO()
        torch.save(obj_factory(made), buffer, **save)
        return buffer.getvalue()
    finally:
        for mod in added:
            sys.modules.pop(mod, None)


def mmengine_checkpoint_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    def build(made: Mapping[str, type]) -> dict[str, Any]:
        buffer = made["HistoryBuffer"]()
        buffer.update(0.25)
        dataset = {"classes": ("wall", "building", "sky"),
                   "palette": np.array([[120, 120, 120]])}  # fmt: skip
        meta = {"mmseg_version": "1.0.0", "epoch": 0, "iter": 160000, "seed": np.int64(0),
                "dataset_meta": dataset}  # fmt: skip
        return {"meta": meta, "state_dict": dict(state),
                "message_hub": {"log_scalars": {"train/loss": buffer}}}  # fmt: skip

    return _save_with_stand_ins(
        build, {"HistoryBuffer": "mmengine.logging.history_buffer.HistoryBuffer"}
    )


def kl_vae_state(seed: int = 0, ch: int = 64, z: int = 4) -> dict[str, torch.Tensor]:
    """A small KL autoencoder with latent-diffusion's key names, plus its loss's networks."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    _conv(state, "encoder.conv_in", 3, ch, 3, gen)
    _conv(state, "encoder.down.0.block.0.conv1", ch, ch, 3, gen)
    _conv(state, "encoder.down.0.block.0.conv2", ch, ch, 3, gen)
    _conv(state, "encoder.down.1.block.0.conv1", ch, 2 * ch, 3, gen)
    _conv(state, "encoder.down.1.block.0.conv2", 2 * ch, 2 * ch, 3, gen)
    _conv(state, "encoder.down.1.block.0.nin_shortcut", ch, 2 * ch, 1, gen)
    for name in ("q", "k", "v", "proj_out"):
        _conv(state, f"encoder.mid.attn_1.{name}", 2 * ch, 2 * ch, 1, gen)
    state["encoder.norm_out.weight"] = torch.ones(2 * ch)
    _conv(state, "encoder.conv_out", 2 * ch, 2 * z, 3, gen)
    _conv(state, "quant_conv", 2 * z, 2 * z, 1, gen)
    _conv(state, "post_quant_conv", z, z, 1, gen)
    _conv(state, "decoder.conv_in", z, 2 * ch, 3, gen)
    _conv(state, "decoder.mid.block_1.conv1", 2 * ch, 2 * ch, 3, gen)
    _conv(state, "decoder.mid.block_1.conv2", 2 * ch, 2 * ch, 3, gen)
    _conv(state, "decoder.up.0.block.0.conv1", 2 * ch, ch, 3, gen)
    _conv(state, "decoder.up.0.block.0.conv2", ch, ch, 3, gen)
    _conv(state, "decoder.up.0.block.0.nin_shortcut", 2 * ch, ch, 1, gen)
    _conv(state, "decoder.conv_out", ch, 3, 3, gen)
    _conv(state, "loss.discriminator.main.0", 3, 64, 4, gen)
    _conv(state, "loss.discriminator.main.2", 64, 128, 4, gen)
    _conv(state, "loss.perceptual_loss.net.slice1.0", 3, 64, 3, gen)
    _conv(state, "loss.perceptual_loss.net.slice2.5", 64, 128, 3, gen)
    return state


def lightning_checkpoint_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    def build(made: Mapping[str, type]) -> dict[str, Any]:
        return {"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.4.2",
                "state_dict": dict(state),
                "callbacks": {"ModelCheckpoint": made["ModelCheckpoint"]()}}  # fmt: skip

    return _save_with_stand_ins(
        build, {"ModelCheckpoint": "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"}
    )


def _with_hash(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    sha8 = hashlib.sha256(data).hexdigest()[:8]
    path = folder / f"{stem}-{sha8}{suffix}"
    path.write_bytes(data)
    return path


def _real_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def make_url_files(rows: pd.DataFrame, root: str | Path) -> dict[str, Path]:
    """One file per ``weights`` key of the url ``rows`` under ``{root}/models/``; returns model
    key -> path (rows that share a file map to the same path)."""
    folder = Path(root) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    by_weights: dict[str, Path] = {}
    files: dict[str, Path] = {}
    for i, row in enumerate(rows[rows["source"] == "url"].to_dict("records")):
        weights = row.get("weights") or row["model"]
        if weights not in by_weights:
            url = row["url"]
            name = _real_name(url)
            if "compressai" in url:
                # bmshj2018-factorized-prior-1-…, bmshj2018-hyperprior-1-…, mbt2018-mean-1-…;
                # compressai_state refuses any other architecture
                arch = "-".join(name.split("-")[:2])
                buffer = io.BytesIO()
                legacy = str(row.get("note", "")).startswith("legacy")
                torch.save(compressai_state(arch, seed=i), buffer,
                           _use_new_zipfile_serialization=not legacy)  # fmt: skip
                stem = name.rsplit("-", 1)[0]
                by_weights[weights] = _with_hash(folder, stem, ".pth.tar", buffer.getvalue())
            elif "openmmlab" in url:
                data = mmengine_checkpoint_bytes(segformer_state(seed=i))
                stem = name.rsplit("-", 1)[0]
                by_weights[weights] = _with_hash(folder, stem, ".pth", data)
            elif name.endswith(".zip"):
                path = folder / name
                with zipfile.ZipFile(path, "w") as zf:
                    zf.writestr("model.ckpt", lightning_checkpoint_bytes(kl_vae_state(seed=i)))
                by_weights[weights] = path
            else:
                raise ValueError(f"{row['model']}: no test file for url {url}")
        files[row["model"]] = by_weights[weights]
    return files


def served_url_table(rows: pd.DataFrame, files: Mapping[str, Path], base: str) -> pd.DataFrame:
    """Copy of ``rows`` whose url rows point at ``{base}/{served file name}``."""
    table = rows.copy()
    for i, row in table.iterrows():
        if row["source"] == "url":
            table.at[i, "url"] = f"{base.rstrip('/')}/{files[row['model']].name}"
    return table
