"""The architectures the controlled experiments train (:mod:`htsr.experiments.grids`).

Each entry of :data:`ARCHITECTURES` builds a ``torch.nn.Module`` from the prepared dataset's
description (``meta``: ``kind`` ``images``, ``graph``, ``segmentation`` or ``text``,
``channels``, ``size``, ``features``, ``classes``, ``vocab``) and the experiment's
hyperparameters, and names the data it takes and its task (``classify``, ``segment``,
``reconstruct``, ``language``: what :mod:`htsr.experiments.train` trains it for and measures). A
module
may define ``loss(output, target)`` and ``predict(output)``; the default is cross-entropy on
logits and their argmax. Adding an architecture is one function here and one entry in
:data:`ARCHITECTURES`.

* ``mini_alexnet``: the small AlexNet-like CNN of Martin & Mahoney's batch-size experiments
  (*Implicit Self-Regularization in Deep Neural Networks*, JMLR 22(165), 2021, §7: two 5×5
  convolutions with max-pooling and local response normalisation, then fully connected layers
  384 and 192 wide, the head). Widths ``conv_width`` (64) and ``fc_widths`` (384, 192).
* ``gcn``, ``gat``: PyTorch Geometric's ``GCNConv`` (Kipf & Welling 2017) and ``GATConv``
  (Veličković et al. 2018), ``depth`` graph convolutions ``hidden`` wide (the last maps to the
  classes), ReLU/ELU and dropout between them. The default ``hidden`` is 128 and ``depth`` 3,
  so every hidden weight matrix is at least 128 on its smaller side (a 16-unit GCN has a
  16-eigenvalue spectrum, too short to fit a tail), and the middle layer is a square
  ``hidden × hidden`` matrix. The hidden layers are ``convs.{i}``, the output layer ``out``.
* ``capsnet``: CapsNet (Sabour, Frosst & Hinton 2017) with dynamic routing, at reduced width by
  default (``conv_channels`` 64, ``primary_caps`` 16 maps of 8-D capsules, 9×9 kernels, 16-D
  class capsules): on MNIST 576 primary capsules. The class-capsule transform is stored as
  ``digit_caps.capsule_weight``, shape ``(in_caps, out_caps, out_dim, in_dim)``;
  :mod:`htsr.spectral.matrices` cuts it into one matrix per output capsule (``in_caps ×
  out_dim·in_dim``,
  the input capsules' transforms to it as rows), the same rule for every capsule layer.
* ``unet``: a small U-Net (Ronneberger, Fischer & Brox 2015) for segmentation: two
  down-sampling levels of two 3×3 convolutions (``width``, 2·``width``, 4·``width`` channels at
  the bottom), transposed-convolution up-sampling with skip connections, a 1×1 head to the
  classes. Quality: held-out mean IoU.
* ``conv_ae``, ``conv_vae``: a convolutional autoencoder (two stride-2 3×3 convolutions,
  ``width`` and 2·``width`` channels, a fully connected layer of ``hidden`` (256) units and a
  bottleneck of ``code`` units, the mirror image with transposed convolutions, a sigmoid
  output; the two flat × hidden matrices ``encoder.5`` and ``decoder.2`` have ``hidden``
  eigenvalues whatever the code) and its variational version (Kingma &
  Welling 2014: the bottleneck gives the mean and log-variance of a Gaussian code; the decoder
  reads a sample while training, the mean when measured). Quality: held-out PSNR (dB).
* ``transformer``: a small decoder-only transformer (pre-norm ``torch.nn.TransformerEncoderLayer``
  blocks under a causal mask, ``depth`` blocks of ``d_model`` (``width``) units, ``heads``
  heads, 4·``d_model`` feed-forward, learned positions up to ``context``), a byte vocabulary.
  Token and position tables are named ``embed_tokens`` / ``embed_positions``, which the
  analysis excludes as embeddings; the attention's ``in_proj_weight`` is split into q, k, v.
  Quality: held-out log perplexity (nats per byte).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's convention

__all__ = ["ARCHITECTURES", "Architecture", "build"]


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture, the data it takes (``images``, ``graph``,
    ``segmentation``, ``text``) and its task (``classify``, ``segment``, ``reconstruct``,
    ``language``)."""

    build: Callable[[Mapping[str, Any], Mapping[str, Any]], nn.Module]
    data: str
    task: str = "classify"


class MiniAlexNet(nn.Module):
    """conv5×5 → ReLU → maxpool 3/2 → LRN → conv5×5 → ReLU → LRN → maxpool 3/2 → fc → fc → head."""

    def __init__(self, channels: int, size: int, classes: int, conv_width: int = 64,
                 fc_widths: tuple[int, int] = (384, 192)) -> None:  # fmt: skip
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, conv_width, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2, padding=1), nn.LocalResponseNorm(4, alpha=0.001 / 9, beta=0.75),
            nn.Conv2d(conv_width, conv_width, 5, padding=2), nn.ReLU(),
            nn.LocalResponseNorm(4, alpha=0.001 / 9, beta=0.75), nn.MaxPool2d(3, 2, padding=1),
        )  # fmt: skip
        side = math.ceil(math.ceil(size / 2) / 2)  # two 3/2 max-poolings with padding 1
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(conv_width * side * side, fc_widths[0]), nn.ReLU(),
            nn.Linear(fc_widths[0], fc_widths[1]), nn.ReLU(), nn.Linear(fc_widths[1], classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _mini_alexnet(meta: Mapping[str, Any], hp: Mapping[str, Any]) -> nn.Module:
    widths = tuple(hp.get("fc_widths", (384, 192)))
    return MiniAlexNet(int(meta["channels"]), int(meta["size"]), int(meta["classes"]),
                       int(hp.get("conv_width", 64)), (int(widths[0]), int(widths[1])))  # fmt: skip


class GraphNet(nn.Module):
    """``depth`` graph convolutions of one kind (GCN or GAT), dropout between them: the hidden
    ones in ``convs``, the last (hidden → classes) as ``out``, so a ``layers`` pattern
    ``convs\\.`` names the hidden layers at any depth."""

    def __init__(self, conv: Callable[[int, int, bool], nn.Module], features: int, classes: int,
                 hidden: int, layers: int, dropout: float, act: Callable) -> None:  # fmt: skip
        super().__init__()
        if layers < 2:
            raise ValueError(f"graph network: depth {layers} < 2")
        dims = [features, *([hidden] * (layers - 1)), classes]
        self.convs = nn.ModuleList(conv(dims[i], dims[i + 1], False) for i in range(layers - 1))
        self.out = conv(dims[-2], dims[-1], True)
        self.dropout, self.act = dropout, act

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = self.act(conv(F.dropout(x, self.dropout, self.training), edge_index))
        return self.out(F.dropout(x, self.dropout, self.training), edge_index)


def _gcn(meta: Mapping[str, Any], hp: Mapping[str, Any]) -> nn.Module:
    from torch_geometric.nn import GCNConv

    return GraphNet(lambda i, o, last: GCNConv(i, o), int(meta["features"]), int(meta["classes"]),
                    int(hp.get("hidden", 128)), int(hp.get("depth", 3)),
                    float(hp.get("dropout", 0.5)), F.relu)  # fmt: skip


def _gat(meta: Mapping[str, Any], hp: Mapping[str, Any]) -> nn.Module:
    from torch_geometric.nn import GATConv

    heads = int(hp.get("heads", 8))
    hidden = int(hp.get("hidden", 128))
    if hidden % heads:
        raise ValueError(f"gat: hidden {hidden} is not a multiple of heads {heads}")

    def conv(i: int, o: int, last: bool) -> nn.Module:
        # hidden layers concatenate `heads` heads of hidden/heads units: a hidden x in matrix
        return GATConv(i, o, heads=1) if last else GATConv(i, o // heads, heads=heads)

    return GraphNet(conv, int(meta["features"]), int(meta["classes"]), hidden,
                    int(hp.get("depth", 3)), float(hp.get("dropout", 0.5)), F.elu)  # fmt: skip


def squash(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """v = |s|²/(1+|s|²) · s/|s| (Sabour et al. 2017, eq. 1)."""
    n2 = (s * s).sum(dim, keepdim=True)
    return n2 / (1 + n2) * s / torch.sqrt(n2 + 1e-9)


class CapsuleLayer(nn.Module):
    """Class capsules by dynamic routing: û_{j|i} = W_ij u_i; ``routing`` iterations of
    agreement (Sabour et al. 2017, procedure 1). ``capsule_weight``: (in_caps, out_caps,
    out_dim, in_dim)."""

    def __init__(self, in_caps: int, in_dim: int, out_caps: int, out_dim: int,
                 routing: int) -> None:  # fmt: skip
        super().__init__()
        self.capsule_weight = nn.Parameter(0.01 * torch.randn(in_caps, out_caps, out_dim, in_dim))
        self.routing = routing

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u_hat = torch.einsum("ijdk,bik->bijd", self.capsule_weight, u)
        b = torch.zeros(u_hat.shape[:3], device=u.device, dtype=u.dtype)
        for r in range(self.routing):
            c = b.softmax(dim=2)
            v = squash((c.unsqueeze(-1) * u_hat).sum(1))
            if r < self.routing - 1:
                b = b + (u_hat * v.unsqueeze(1)).sum(-1)
        return v


class CapsNet(nn.Module):
    """conv → primary capsules (conv, 8-D, squashed) → class capsules by routing; the output is
    the class capsules' lengths, trained with the margin loss (eq. 4; no reconstruction)."""

    def __init__(self, channels: int, size: int, classes: int, conv_channels: int = 64,
                 primary_caps: int = 16, caps_dim: int = 8, out_dim: int = 16, kernel: int = 9,
                 routing: int = 3) -> None:  # fmt: skip
        super().__init__()
        self.conv = nn.Conv2d(channels, conv_channels, kernel)
        self.primary = nn.Conv2d(conv_channels, primary_caps * caps_dim, kernel, stride=2)
        side = (size - kernel + 1 - kernel) // 2 + 1
        self.caps_dim = caps_dim
        self.digit_caps = CapsuleLayer(primary_caps * side * side, caps_dim, classes, out_dim,
                                       routing)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(x))
        p = self.primary(h)  # (B, caps*dim, s, s)
        b, _, s, _ = p.shape
        u = p.view(b, -1, self.caps_dim, s, s).permute(0, 1, 3, 4, 2).reshape(b, -1, self.caps_dim)
        return self.digit_caps(squash(u)).norm(dim=-1)

    @staticmethod
    def loss(lengths: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Margin loss: T max(0, 0.9 − |v|)² + 0.5 (1 − T) max(0, |v| − 0.1)²."""
        t = F.one_hot(target, lengths.shape[1]).to(lengths.dtype)
        loss = t * F.relu(0.9 - lengths) ** 2 + 0.5 * (1 - t) * F.relu(lengths - 0.1) ** 2
        return loss.sum(1).mean()


def _capsnet(meta: Mapping[str, Any], hp: Mapping[str, Any]) -> nn.Module:
    keys = ("conv_channels", "primary_caps", "caps_dim", "out_dim", "kernel", "routing")
    return CapsNet(int(meta["channels"]), int(meta["size"]), int(meta["classes"]),
                   **{k: int(hp[k]) for k in keys if k in hp})  # fmt: skip


def _double_conv(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(o, o, 3, padding=1), nn.ReLU())  # fmt: skip


class UNet(nn.Module):
    """enc(w) → pool → enc(2w) → pool → bottom(4w) → up(2w) ⊕ skip → dec(2w) → up(w) ⊕ skip →
    dec(w) → 1×1 head: per-pixel class logits (the input's side must be a multiple of 4)."""

    def __init__(self, channels: int, classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2 = _double_conv(channels, w), _double_conv(w, 2 * w)
        self.bottom = _double_conv(2 * w, 4 * w)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), _double_conv(4 * w, 2 * w)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, 2), _double_conv(2 * w, w)
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


def _unet(meta: Mapping[str, Any], hp: Mapping[str, Any]) -> nn.Module:
    if int(meta["size"]) % 4:
        raise ValueError(f"unet: the image side {meta['size']} is not a multiple of 4")
    return UNet(int(meta["channels"]), int(meta["classes"]), int(hp.get("width", 16)))


class ConvAutoencoder(nn.Module):
    """conv 3×3/2 (w) → conv 3×3/2 (2w) → fc (hidden) → fc (code) → fc (hidden) → fc → deconv
    4×4/2 (w) → deconv 4×4/2 → sigmoid: a reconstruction in [0, 1], trained with the per-pixel
    binary cross-entropy (grey levels as Bernoulli probabilities, as for MNIST autoencoders since
    Kingma & Welling).
    ``variational``: the encoder gives a Gaussian code's mean and log-variance; ``loss`` is then
    the negative ELBO per pixel (the cross-entropy plus the KL divergence to N(0, I) spread over
    the pixels)."""

    def __init__(self, channels: int, size: int, code: int = 16, width: int = 16,
                 variational: bool = False, hidden: int = 256) -> None:  # fmt: skip
        super().__init__()
        if size % 4:
            raise ValueError(f"conv_ae: the image side {size} is not a multiple of 4")
        self.side, self.width, self.variational = size // 4, width, variational
        flat = 2 * width * self.side * self.side
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(), nn.Flatten(),
            nn.Linear(flat, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * code if variational else code),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(code, hidden), nn.ReLU(), nn.Linear(hidden, flat), nn.ReLU(),
            nn.Unflatten(1, (2 * width, self.side, self.side)),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Sigmoid(),
        )  # fmt: skip
        self._kl = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if not self.variational:
            return self.decoder(h)
        mu, logvar = h.chunk(2, dim=1)
        self._kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decoder(z)

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy(out, target)
        if not self.variational:
            return bce
        return bce + self._kl / target[0].numel()


def _conv_ae(meta: Mapping[str, Any], hp: Mapping[str, Any], variational: bool = False):
    return ConvAutoencoder(int(meta["channels"]), int(meta["size"]), int(hp.get("code", 16)),
                           int(hp.get("width", 16)), variational,
                           int(hp.get("hidden", 256)))  # fmt: skip


class TinyTransformer(nn.Module):
    """Byte-level decoder-only transformer: token + position embeddings, ``depth`` pre-norm
    blocks under a causal mask, a final norm and a linear head to the vocabulary."""

    def __init__(self, vocab: int, d_model: int = 64, depth: int = 2, heads: int = 4,
                 context: int = 64, dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        if d_model % heads:
            raise ValueError(f"transformer: width {d_model} is not a multiple of heads {heads}")
        self.context = context
        self.embed_tokens = nn.Embedding(vocab, d_model)
        self.embed_positions = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model,
                heads,
                4 * d_model,
                dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )  # fmt: skip
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        pos = torch.arange(n, device=tokens.device)
        h = self.embed_tokens(tokens) + self.embed_positions(pos)
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=tokens.device)
        for block in self.blocks:
            h = block(h, src_mask=mask, is_causal=True)
        return self.head(self.norm(h))


def _transformer(meta: Mapping[str, Any], hp: Mapping[str, Any]) -> nn.Module:
    return TinyTransformer(int(meta["vocab"]), int(hp.get("width", 64)), int(hp.get("depth", 2)),
                           int(hp.get("heads", 4)), int(hp.get("context", 64)),
                           float(hp.get("dropout", 0.0)))  # fmt: skip


ARCHITECTURES: dict[str, Architecture] = {
    "mini_alexnet": Architecture(_mini_alexnet, "images"),
    "gcn": Architecture(_gcn, "graph"),
    "gat": Architecture(_gat, "graph"),
    "capsnet": Architecture(_capsnet, "images"),
    "unet": Architecture(_unet, "segmentation", "segment"),
    "conv_ae": Architecture(_conv_ae, "images", "reconstruct"),
    "conv_vae": Architecture(lambda m, h: _conv_ae(m, h, True), "images", "reconstruct"),
    "transformer": Architecture(_transformer, "text", "language"),
}


def build(name: str, meta: Mapping[str, Any], hyperparameters: Mapping[str, Any]) -> nn.Module:
    """The architecture ``name`` for a dataset described by ``meta``; ``ValueError`` naming the
    known ones, or the data kind the architecture needs, otherwise."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    arch = ARCHITECTURES[name]
    if meta.get("kind") != arch.data:
        raise ValueError(f"architecture {name} trains on {arch.data}, the dataset holds"
                         f" {meta.get('kind')!r}")  # fmt: skip
    return arch.build(meta, hyperparameters)
