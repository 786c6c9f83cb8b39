"""The architectures the controlled experiments train (:mod:`htsr.experiments.grids`).

Each entry of :data:`ARCHITECTURES` builds a ``torch.nn.Module`` from the prepared dataset's
description (``meta``: ``kind`` ``images`` or ``graph``, ``channels``, ``size``, ``features``,
``classes``) and the experiment's hyperparameters, and names the data it takes (``images`` or
``graph``). A module may define ``loss(output, target)`` and ``predict(output)``; the default
is cross-entropy on logits and their argmax. Adding an architecture is one function here and
one entry in :data:`ARCHITECTURES`.

* ``mini_alexnet``: the small AlexNet-like CNN of Martin & Mahoney's batch-size experiments
  (*Implicit Self-Regularization in Deep Neural Networks*, JMLR 22(165), 2021, §7: two 5×5
  convolutions with max-pooling and local response normalisation, then fully connected layers
  384 and 192 wide, the head). Widths ``conv_width`` (64) and ``fc_widths`` (384, 192).
* ``gcn``, ``gat``: PyTorch Geometric's ``GCNConv`` (Kipf & Welling 2017) and ``GATConv``
  (Veličković et al. 2018), ``depth`` graph convolutions ``hidden`` wide (the last maps to the
  classes), ReLU/ELU and dropout between them. The default ``hidden`` is 128 and ``depth`` 3,
  so every hidden weight matrix is at least 128 on its smaller side (a 16-unit GCN has a
  16-eigenvalue spectrum, too short to fit a tail), and the middle layer is a square
  ``hidden × hidden`` matrix.
* ``capsnet``: CapsNet (Sabour, Frosst & Hinton 2017) with dynamic routing, at reduced width by
  default (``conv_channels`` 64, ``primary_caps`` 16 maps of 8-D capsules, 9×9 kernels, 16-D
  class capsules): on MNIST 576 primary capsules. The class-capsule transform is stored as
  ``digit_caps.capsule_weight``, shape ``(in_caps, out_caps, out_dim, in_dim)``;
  :mod:`htsr.spectral.matrices` cuts it into one matrix per output capsule (``in_caps ×
  out_dim·in_dim``, the input capsules' transforms to it as rows), the same rule for every capsule
  layer.
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
    """How to build one architecture, and the data it takes (``images`` or ``graph``)."""

    build: Callable[[Mapping[str, Any], Mapping[str, Any]], nn.Module]
    data: str


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
    """``depth`` graph convolutions of one kind (GCN or GAT), dropout between them."""

    def __init__(self, conv: Callable[[int, int, bool], nn.Module], features: int, classes: int,
                 hidden: int, layers: int, dropout: float, act: Callable) -> None:  # fmt: skip
        super().__init__()
        dims = [features, *([hidden] * (layers - 1)), classes]
        self.convs = nn.ModuleList(
            conv(dims[i], dims[i + 1], i == layers - 1) for i in range(layers)
        )
        self.dropout, self.act = dropout, act

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = F.dropout(x, self.dropout, self.training)
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = self.act(x)
        return x


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


ARCHITECTURES: dict[str, Architecture] = {
    "mini_alexnet": Architecture(_mini_alexnet, "images"),
    "gcn": Architecture(_gcn, "graph"),
    "gat": Architecture(_gat, "graph"),
    "capsnet": Architecture(_capsnet, "images"),
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
