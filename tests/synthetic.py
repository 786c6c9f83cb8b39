"""Synthetic datasets for the controlled experiments' tests, in htsr.datasets' format.

``images(...)``: small colour images whose class is a noisy prototype (learnable, not trivially:
the noise weight sets the difficulty); ``graph(...)``: a graph with planted communities (edges
mostly within a class) and node features drawn around each class's centre, with a
train/validation/test split of the nodes. Both are seeded, so a test that writes them twice
gets the same bytes.
"""

from __future__ import annotations

from typing import Any

import torch


def images(n: int = 512, size: int = 16, channels: int = 3, classes: int = 4,
           noise: float = 0.75, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(classes, channels, size, size, generator=g)

    def split(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, classes, (m,), generator=g)
        x = (1 - noise) * protos[y] + noise * torch.rand(m, channels, size, size, generator=g)
        return (x * 255).to(torch.uint8), y

    x_train, y_train = split(n)
    x_test, y_test = split(n // 2)
    scaled = x_train.double() / 255
    meta = {"kind": "images", "channels": channels, "size": size, "classes": classes,
            "mean": scaled.mean((0, 2, 3)).tolist(), "std": scaled.std((0, 2, 3)).tolist(),
            "source": f"tests/synthetic.py images(seed={seed})"}  # fmt: skip
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "meta": meta}  # fmt: skip


def graph(n: int = 400, classes: int = 4, features: int = 96, within: float = 0.8,
          seed: int = 0) -> dict[str, Any]:  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centres = torch.randn(classes, features, generator=g)
    x = 0.4 * centres[y] + torch.randn(n, features, generator=g)
    src = torch.randint(0, n, (n * 10,), generator=g)
    dst = torch.randint(0, n, (n * 10,), generator=g)
    keep = (y[src] == y[dst]) | (torch.rand(n * 10, generator=g) > within)
    edges = torch.stack([src[keep], dst[keep]])
    edges = torch.cat([edges, edges.flip(0)], 1)
    order = torch.randperm(n, generator=g)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    for mask, part in zip(masks, (order[:80], order[80:160], order[160:]), strict=True):
        mask[part] = True
    meta = {"kind": "graph", "features": features, "classes": classes,
            "source": f"tests/synthetic.py graph(seed={seed})"}  # fmt: skip
    return {"x": x, "edge_index": edges, "y": y, "train_mask": masks[0], "val_mask": masks[1],
            "test_mask": masks[2], "meta": meta}  # fmt: skip
