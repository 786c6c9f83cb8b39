"""Train one model of a controlled experiment, deterministically and resumably.

:func:`train` builds ``architecture`` (:mod:`htsr.experiments.nets`) with
``torch.manual_seed(seed)``, trains it on a prepared dataset (:mod:`htsr.experiments.datasets`) and
returns the model and a result record:
``train_acc``, ``test_acc`` (percent), ``gap`` = train − test accuracy (percentage points), the
training ``curve`` (per epoch: mean training loss, test accuracy), the hyperparameters, the
seed and the wall time.

* **Images** (``mini_alexnet``, ``capsnet``): minibatch SGD with momentum (``optimizer: sgd``,
  default) or Adam; ``epochs`` passes over the training set (its first ``train_size`` images
  after a permutation fixed by the seed, if given) in an order drawn from a generator seeded
  by (seed, epoch); inputs scaled to [0, 1] and standardised per channel.
* **Graphs** (``gcn``, ``gat``): full-batch Adam on the training nodes, ``epochs`` steps; the
  curve every ``eval_every`` steps; ``val_acc`` reported beside the test accuracy.

**Determinism.** ``torch.use_deterministic_algorithms(True)`` while training; the data order
does not depend on the global RNG; the global RNG (dropout) is saved with each resume point. On
CPU with the same threads the same seed gives a bit-identical checkpoint, resumed or not.

**Resume.** After every epoch (graphs: every ``eval_every`` steps) the model, optimizer, RNG
state, curve and epoch are written atomically to ``state_path``; a rerun with that file
continues from there and ends with the same weights as an uninterrupted run. The caller removes
it once the outputs are written.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from htsr.experiments import nets
from htsr.io import atomic_output

__all__ = ["TRAINING_DEFAULTS", "train"]

#: Hyperparameters a run takes unless the experiment fixes or varies them.
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "batch_size": 128, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0,
    "optimizer": "sgd", "train_size": 0, "eval_batch": 1000, "eval_every": 0,
}  # fmt: skip


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _loss(model: nn.Module, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model.loss(out, y) if hasattr(model, "loss") else F.cross_entropy(out, y)


def _optimizer(model: nn.Module, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    if hp["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    if hp["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"],
                               weight_decay=hp["weight_decay"])  # fmt: skip
    raise ValueError(f"optimizer must be sgd or adam, got {hp['optimizer']!r}")


def _percent(correct: int | torch.Tensor, total: int) -> float:
    return 100.0 * float(correct) / max(total, 1)


def _save_state(path: Path | None, model: nn.Module, opt: torch.optim.Optimizer,
                curve: list[dict[str, float]], epoch: int) -> None:  # fmt: skip
    """The resume point after ``epoch`` (nothing without a ``path``), written atomically."""
    if path is None:
        return
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "rng": torch.get_rng_state(), "curve": curve, "epoch": epoch}  # fmt: skip
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def _resume(model: nn.Module, opt: torch.optim.Optimizer,
            state: Mapping[str, Any] | None) -> tuple[list[dict[str, float]], int]:  # fmt: skip
    """Restore a resume point into ``model`` and ``opt`` (and the global RNG); ``(curve so
    far, epochs done)``, ``([], 0)`` without one."""
    if state is None:
        return [], 0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return list(state["curve"]), int(state["epoch"])


def _load_state(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def _image_tensors(data: Mapping[str, Any], hp: Mapping[str, Any], seed: int):
    meta = data["meta"]
    where = data["x_train"].device
    mean = torch.tensor(meta["mean"], dtype=torch.float32, device=where).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], dtype=torch.float32, device=where).view(1, -1, 1, 1)

    def scale(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255.0 - mean) / std

    x_train, y_train = data["x_train"], data["y_train"]
    n = int(hp["train_size"]) or len(y_train)
    if n < len(y_train):
        keep = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))[:n]
        keep = keep.to(x_train.device)
        x_train, y_train = x_train[keep], y_train[keep]
    return scale(x_train), y_train, scale(data["x_test"]), data["y_test"]


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch):
        out = model(x[i : i + batch])
        pred = model.predict(out) if hasattr(model, "predict") else out.argmax(1)
        correct += int((pred == y[i : i + batch]).sum())
    return _percent(correct, len(y))


def _train_images(model, data, hp, seed, state_path, log, start_state):
    x_train, y_train, x_test, y_test = _image_tensors(data, hp, seed)
    opt = _optimizer(model, hp)
    curve, first = _resume(model, opt, start_state)
    batch, n = int(hp["batch_size"]), len(y_train)
    for epoch in range(first, int(hp["epochs"])):
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        order = order.to(x_train.device)
        total, steps = 0.0, 0
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            opt.zero_grad(set_to_none=True)
            loss = _loss(model, model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        test_acc = _accuracy(model, x_test, y_test, int(hp["eval_batch"]))
        curve.append({"epoch": epoch + 1, "train_loss": total / max(steps, 1),
                      "test_acc": test_acc})  # fmt: skip
        log(f"epoch {epoch + 1}/{hp['epochs']}: loss {total / max(steps, 1):.4f}, test"
            f" accuracy {test_acc:.2f} %")  # fmt: skip
        _save_state(state_path, model, opt, curve, epoch + 1)
    eval_batch = int(hp["eval_batch"])
    return {"train_acc": _accuracy(model, x_train, y_train, eval_batch),
            "test_acc": _accuracy(model, x_test, y_test, eval_batch), "curve": curve}  # fmt: skip


def _train_graph(model, data, hp, seed, state_path, log, start_state):
    x, edges, y = data["x"].float(), data["edge_index"], data["y"]
    masks = {k: data[f"{k}_mask"] for k in ("train", "val", "test")}
    opt = _optimizer(model, hp)
    steps = int(hp["epochs"])
    every = int(hp["eval_every"]) or max(1, steps // 50)
    curve, first = _resume(model, opt, start_state)

    @torch.no_grad()
    def accuracy() -> dict[str, float]:
        model.eval()
        pred = model(x, edges).argmax(1)
        return {k: _percent((pred[m] == y[m]).sum(), int(m.sum())) for k, m in masks.items()}

    for step in range(first, steps):
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x, edges)[masks["train"]], y[masks["train"]])
        loss.backward()
        opt.step()
        if (step + 1) % every == 0 or step + 1 == steps:
            acc = accuracy()
            curve.append({"epoch": step + 1, "train_loss": loss.item(), "test_acc": acc["test"]})
            log(f"step {step + 1}/{steps}: loss {loss.item():.4f}, test accuracy"
                f" {acc['test']:.2f} %")  # fmt: skip
            _save_state(state_path, model, opt, curve, step + 1)
    acc = accuracy()
    return {"train_acc": acc["train"], "test_acc": acc["test"], "val_acc": acc["val"],
            "curve": curve}  # fmt: skip


def train(
    architecture: str,
    hyperparameters: Mapping[str, Any],
    data: Mapping[str, Any],
    seed: int,
    *,
    state_path: str | os.PathLike[str] | None = None,
    log: Any = None,
    device: str = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``architecture`` on ``data`` (see the module docstring); returns ``(model,
    result)``, the model on the CPU. ``state_path``: the resume file (written each epoch, read
    if present); ``device``: where to train (bit-identical results are promised on CPU only)."""
    hp = {**TRAINING_DEFAULTS, **hyperparameters}
    log = log or (lambda message: None)
    path = Path(state_path) if state_path is not None else None
    start = time.perf_counter()
    with _deterministic():
        torch.manual_seed(seed)
        model = nets.build(architecture, data["meta"], hp).to(device)
        data = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in data.items()}
        resume = _load_state(path)
        if resume is not None:
            log(f"resuming from epoch {resume['epoch']} ({path})")
        run = _train_images if nets.ARCHITECTURES[architecture].data == "images" else _train_graph
        result = run(model, data, hp, seed, path, log, resume)
    result = {
        "architecture": architecture, "seed": seed, "hyperparameters": hp,
        "train_acc": result["train_acc"], "test_acc": result["test_acc"],
        "gap": result["train_acc"] - result["test_acc"],
        **({"val_acc": result["val_acc"]} if "val_acc" in result else {}),
        "curve": result["curve"], "resumed_from": resume["epoch"] if resume else None,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "wall_s": time.perf_counter() - start,
    }  # fmt: skip
    return model.cpu().eval(), result
