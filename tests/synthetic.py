"""Synthetic datasets for the controlled experiments' tests, in htsr.datasets' format.

``images(...)``: small colour images whose class is a noisy prototype (learnable, not trivially:
the noise weight sets the difficulty); ``graph(...)``: the library's planted-partition graph
(``htsr.datasets.planted_partition``: edges mostly within a class, node features around each
class's centre, a train/validation/test split of the nodes) at a small size. Both are seeded,
so a test that writes them twice gets the same bytes.
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
    """``htsr.datasets.planted_partition`` at a test's size."""
    from htsr.experiments.datasets import planted_partition

    return planted_partition(nodes=n, features=features, classes=classes, within=within,
                             seed=seed)  # fmt: skip
