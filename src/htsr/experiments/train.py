"""Train one model of a controlled experiment, deterministically and resumably.

:func:`train` builds ``architecture`` (:mod:`htsr.experiments.nets`) with
``torch.manual_seed(seed)``, trains it on a prepared dataset (:mod:`htsr.experiments.datasets`) and
returns the model and a result record:
``train_acc``, ``test_acc`` (percent), ``gap`` = train − test accuracy (percentage points), the
training ``curve`` (per epoch: mean training loss, test accuracy), the hyperparameters, the
seed and the wall time (other tasks: their quality instead of the accuracy, below).

* **Images** (``mini_alexnet``, ``capsnet``): minibatch SGD with momentum (``optimizer: sgd``,
  default) or Adam; ``epochs`` passes over the training set (its first ``train_size`` images
  after a permutation fixed by the seed, if given) in an order drawn from a generator seeded
  by (seed, epoch); inputs scaled to [0, 1] and standardised per channel.
* **Graphs** (``gcn``, ``gat``): full-batch Adam on the training nodes, ``epochs`` steps; the
  curve every ``eval_every`` steps; ``val_acc`` reported beside the test accuracy.
  ``train_size`` > 0 trains on that many nodes instead of the public split's, drawn (seeded by
  the seed) from the nodes outside the validation and test sets.
* **Label noise** (images and graphs): ``label_noise`` = p replaces round(p·n) training labels,
  chosen by a generator seeded with the seed, by a different class drawn uniformly.
* **Other tasks** (the architecture's ``task``, :mod:`htsr.experiments.nets`), minibatches as for
images:

  - ``segment`` (``unet`` on ``segmentation`` data): per-pixel cross-entropy; quality
    ``train_miou`` / ``test_miou``: mean over the classes present of IoU = TP / (TP + FP + FN),
    counted over the whole set (percent).
  - ``reconstruct`` (``conv_ae``, ``conv_vae`` on images in [0, 1]): the model's loss
    (per-pixel binary cross-entropy; the VAE's negative ELBO); quality ``train_psnr`` /
    ``test_psnr`` = 10·log10(1 / MSE) in dB, MSE over every pixel of the set (pixels in [0, 1]).
  - ``language`` (``transformer`` on ``text``): each epoch ``steps_per_epoch`` (100) steps of
    ``batch_size`` windows of ``context`` + 1 tokens at starts drawn from a generator seeded by
    (seed, epoch), over the first ``train_size`` training tokens (all if 0); quality
    ``train_log_ppl`` / ``test_log_ppl``: the mean next-token cross-entropy in nats (the log of
    the perplexity), over non-overlapping windows (at most ``eval_tokens`` tokens, evenly
    spaced, if > 0).

  ``gap`` is train − test quality (for log perplexity test − train): how much worse the held-out
  data are.

**Schedule.** ``schedule: cosine`` sets the learning rate after each epoch (graphs: each step)
``e`` = 0, 1, ... that is followed by another to ``lr·½(1 + cos(π·(e+1)/E))`` (TempBalance's
``config.cosine_decay``, set after each epoch in its ``main_tb.py``); ``constant`` (default)
never touches it.

**Hooks.** ``hooks`` (a :class:`TrainingHooks`) may load weights into the built model, give the
optimizer its parameter groups, act after every optimizer step and set the scheduled rate (the
α-guided methods of :mod:`htsr.guide.training` do so); without hooks training is unchanged.

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
import math
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

__all__ = [
    "TASK_QUALITY", "TRAINING_DEFAULTS", "TrainingHooks", "cosine_lr", "evaluate", "miou", "psnr",
    "train",
]  # fmt: skip

#: Hyperparameters a run takes unless the experiment fixes or varies them.
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 10, "batch_size": 128, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0,
    "optimizer": "sgd", "train_size": 0, "eval_batch": 1000, "eval_every": 0,
    "label_noise": 0.0, "steps_per_epoch": 100, "eval_tokens": 0, "schedule": "constant",
}  # fmt: skip

#: The quality a task reports (``train_`` / ``test_`` prefixed), and whether higher is better.
TASK_QUALITY: dict[str, tuple[str, bool]] = {
    "classify": ("acc", True), "segment": ("miou", True), "reconstruct": ("psnr", True),
    "language": ("log_ppl", False),
}  # fmt: skip


def cosine_lr(lr: float, epoch: int, total: int) -> float:
    """The cosine-decayed rate ``lr·½(1 + cos(π·min(epoch, total)/total))``, TempBalance's
    ``config.cosine_decay`` (YefanZhou/TempBalance ``config.py``).

    >>> cosine_lr(0.1, 5, 10)
    0.05
    """
    return float(lr * 0.5 * (1 + math.cos(math.pi * min(epoch, total) / total)))


class TrainingHooks:
    """What :func:`train` calls beside plain training; this base class changes nothing.

    * :meth:`prepare` ``(model)``: after the model is built (seeded), before the optimizer;
    * :meth:`param_groups` ``(model, hp)``: the optimizer's parameter groups (None: all
      parameters, one group);
    * :meth:`after_step` ``(optimizer)``: after every optimizer step;
    * :meth:`set_lr` ``(optimizer, lr)``: after an epoch (graphs: a step) followed by another,
      with the scheduled rate; called when the schedule is not ``constant`` or hooks are given.
    """

    def prepare(self, model: nn.Module) -> None:
        """Act on the freshly built model (e.g. load pretrained weights)."""

    def param_groups(self, model: nn.Module, hp: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The optimizer's parameter groups, or None for ``model.parameters()``."""
        return None

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Called after every optimizer step."""

    def set_lr(self, optimizer: torch.optim.Optimizer, lr: float) -> None:
        """Set the scheduled rate ``lr`` (default: on every group)."""
        for group in optimizer.param_groups:
            group["lr"] = lr


def _schedule(opt: torch.optim.Optimizer, hp: Mapping[str, Any], hooks: TrainingHooks | None,
              done: int, total: int) -> None:  # fmt: skip
    """After ``done`` of ``total`` epochs (graphs: steps): the scheduled rate, if one is due."""
    if done >= total or (hooks is None and hp["schedule"] == "constant"):
        return
    if hp["schedule"] not in ("constant", "cosine"):
        raise ValueError(f"schedule must be constant or cosine, got {hp['schedule']!r}")
    lr = cosine_lr(hp["lr"], done, total) if hp["schedule"] == "cosine" else float(hp["lr"])
    (hooks or TrainingHooks()).set_lr(opt, lr)


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


def _optimizer(model: nn.Module, hp: Mapping[str, Any],
               hooks: TrainingHooks | None = None) -> torch.optim.Optimizer:  # fmt: skip
    params = (hooks.param_groups(model, hp) if hooks else None) or model.parameters()
    if hp["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
    if hp["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"],
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


def _noisy(y: torch.Tensor, p: float, classes: int, seed: int) -> torch.Tensor:
    """``y`` with round(p·n) labels (chosen by a generator seeded with ``seed``) replaced by a
    different class drawn uniformly."""
    if p <= 0:
        return y
    g = torch.Generator().manual_seed(seed * 7919 + 17)
    n = int(round(p * len(y)))
    idx = torch.randperm(len(y), generator=g)[:n].to(y.device)
    shift = torch.randint(1, classes, (n,), generator=g).to(y.device)
    y = y.clone()
    y[idx] = (y[idx] + shift) % classes
    return y


def _image_tensors(data: Mapping[str, Any], hp: Mapping[str, Any], seed: int, task: str):
    meta = data["meta"]
    where = data["x_train"].device
    mean = torch.tensor(meta["mean"], dtype=torch.float32, device=where).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], dtype=torch.float32, device=where).view(1, -1, 1, 1)

    def scale(x: torch.Tensor) -> torch.Tensor:
        if task == "reconstruct":  # the autoencoders read and write pixels in [0, 1]
            return x.float() / 255.0
        return (x.float() / 255.0 - mean) / std

    x_train, y_train = data["x_train"], data["y_train"]
    n = int(hp["train_size"]) or len(y_train)
    if n < len(y_train):
        keep = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))[:n]
        keep = keep.to(x_train.device)
        x_train, y_train = x_train[keep], y_train[keep]
    if task == "classify":
        y_train = _noisy(y_train, float(hp["label_noise"]), int(meta["classes"]), seed)
    if task == "reconstruct":
        x_train, x_test = scale(x_train), scale(data["x_test"])
        return x_train, x_train, x_test, x_test
    return scale(x_train), y_train, scale(data["x_test"]), data["y_test"]


def miou(confusion: torch.Tensor) -> float:
    """Mean IoU (percent) of a confusion matrix (rows true, columns predicted): the mean over
    the classes present (TP + FP + FN > 0) of TP / (TP + FP + FN).

    >>> miou(torch.tensor([[3, 1], [0, 4]]))
    77.5
    """
    c = confusion.double()
    tp = c.diag()
    union = c.sum(0) + c.sum(1) - tp
    present = union > 0
    return float(100.0 * (tp[present] / union[present]).mean())


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 10·log10(peak² / MSE).

    >>> psnr(0.01)
    20.0
    """
    return float(10.0 * torch.log10(torch.tensor(peak**2 / mse, dtype=torch.float64)))


@torch.no_grad()
def _quality(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, task: str,
             classes: int = 0) -> float:  # fmt: skip
    """The task's quality of ``model`` on ``(x, y)``: accuracy or mIoU (percent), PSNR (dB)."""
    model.eval()
    if task == "segment":
        confusion = torch.zeros(classes, classes, dtype=torch.int64)
        for i in range(0, len(y), batch):
            pred = model(x[i : i + batch]).argmax(1).flatten().cpu()
            true = y[i : i + batch].flatten().cpu()
            confusion += torch.bincount(true * classes + pred, minlength=classes**2).view(
                classes, classes)  # fmt: skip
        return miou(confusion)
    if task == "reconstruct":
        total = 0.0
        for i in range(0, len(y), batch):
            total += float(((model(x[i : i + batch]) - y[i : i + batch]) ** 2).double().sum())
        return psnr(total / max(y.numel(), 1))
    correct = 0
    for i in range(0, len(y), batch):
        out = model(x[i : i + batch])
        pred = model.predict(out) if hasattr(model, "predict") else out.argmax(1)
        correct += int((pred == y[i : i + batch]).sum())
    return _percent(correct, len(y))


def _train_images(model, data, hp, seed, state_path, log, start_state, task="classify",
                  hooks=None):  # fmt: skip
    x_train, y_train, x_test, y_test = _image_tensors(data, hp, seed, task)
    classes = int(data["meta"].get("classes", 0))
    key = f"test_{TASK_QUALITY[task][0]}"
    opt = _optimizer(model, hp, hooks)
    curve, first = _resume(model, opt, start_state)
    batch, n = int(hp["batch_size"]), len(y_train)
    eval_batch = int(hp["eval_batch"])
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
            if hooks is not None:
                hooks.after_step(opt)
            total, steps = total + loss.item(), steps + 1
        _schedule(opt, hp, hooks, epoch + 1, int(hp["epochs"]))
        test_q = _quality(model, x_test, y_test, eval_batch, task, classes)
        curve.append({"epoch": epoch + 1, "train_loss": total / max(steps, 1), key: test_q})
        log(f"epoch {epoch + 1}/{hp['epochs']}: loss {total / max(steps, 1):.4f}, {key}"
            f" {test_q:.4g}")  # fmt: skip
        _save_state(state_path, model, opt, curve, epoch + 1)
    q = TASK_QUALITY[task][0]
    # the last epoch's entry already holds the final model's test quality
    test_q = curve[-1][key] if curve else _quality(model, x_test, y_test, eval_batch, task, classes)
    return {f"train_{q}": _quality(model, x_train, y_train, eval_batch, task, classes),
            f"test_{q}": test_q, "curve": curve}  # fmt: skip


def _windows(tokens: torch.Tensor, context: int, limit: int) -> torch.Tensor:
    """Non-overlapping windows of ``context`` + 1 tokens (at most ``limit`` tokens' worth,
    evenly spaced, if ``limit`` > 0), one per row."""
    starts = torch.arange(0, len(tokens) - context - 1, context)
    if limit > 0 and len(starts) * context > limit:
        keep = torch.linspace(0, len(starts) - 1, max(1, limit // context)).round().long()
        starts = starts[keep]
    return torch.stack([tokens[s : s + context + 1] for s in starts.tolist()])


@torch.no_grad()
def _log_ppl(model: nn.Module, windows: torch.Tensor, batch: int) -> float:
    """Mean next-token cross-entropy (nats) over ``windows``."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        w = windows[i : i + batch]
        logits = model(w[:, :-1])
        total += float(F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(),
                                       reduction="sum"))  # fmt: skip
        count += w[:, 1:].numel()
    return total / max(count, 1)


def _train_text(model, data, hp, seed, state_path, log, start_state):
    context = int(model.context)
    train_tokens = data["train_tokens"]
    if int(hp["train_size"]):
        train_tokens = train_tokens[: int(hp["train_size"])]
    limit = int(hp["eval_tokens"])
    test_w = _windows(data["test_tokens"], context, limit)
    train_w = _windows(train_tokens, context, limit or len(data["test_tokens"]))
    opt = _optimizer(model, hp)
    curve, first = _resume(model, opt, start_state)
    batch, steps = int(hp["batch_size"]), int(hp["steps_per_epoch"])
    eval_batch = max(1, int(hp["eval_batch"]) // context)
    offsets = torch.arange(context + 1)
    for epoch in range(first, int(hp["epochs"])):
        model.train()
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        total = 0.0
        for _ in range(steps):
            starts = torch.randint(0, len(train_tokens) - context - 1, (batch, 1), generator=g)
            w = train_tokens[(starts + offsets).to(train_tokens.device)]
            opt.zero_grad(set_to_none=True)
            logits = model(w[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten())
            loss.backward()
            opt.step()
            total += loss.item()
        test_q = _log_ppl(model, test_w, eval_batch)
        curve.append({"epoch": epoch + 1, "train_loss": total / steps, "test_log_ppl": test_q})
        log(f"epoch {epoch + 1}/{hp['epochs']}: loss {total / steps:.4f}, test log perplexity"
            f" {test_q:.4f}")  # fmt: skip
        _save_state(state_path, model, opt, curve, epoch + 1)
    # the last epoch's entry already holds the final model's test quality
    test_q = curve[-1]["test_log_ppl"] if curve else _log_ppl(model, test_w, eval_batch)
    return {"train_log_ppl": _log_ppl(model, train_w, eval_batch), "test_log_ppl": test_q,
            "curve": curve}  # fmt: skip


def _train_graph(model, data, hp, seed, state_path, log, start_state, hooks=None):
    x, edges, y = data["x"].float(), data["edge_index"], data["y"]
    masks = {k: data[f"{k}_mask"] for k in ("train", "val", "test")}
    if int(hp["train_size"]):
        outside = (~masks["val"] & ~masks["test"]).nonzero().flatten()
        pick = torch.randperm(len(outside), generator=torch.Generator().manual_seed(seed))
        masks["train"] = torch.zeros_like(masks["train"])
        masks["train"][outside[pick[: int(hp["train_size"])].to(outside.device)]] = True
    y_fit = y.clone()
    y_fit[masks["train"]] = _noisy(y[masks["train"]], float(hp["label_noise"]),
                                   int(data["meta"]["classes"]), seed)  # fmt: skip
    opt = _optimizer(model, hp, hooks)
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
        loss = F.cross_entropy(model(x, edges)[masks["train"]], y_fit[masks["train"]])
        loss.backward()
        opt.step()
        if hooks is not None:
            hooks.after_step(opt)
        _schedule(opt, hp, hooks, step + 1, steps)
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
    hooks: TrainingHooks | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``architecture`` on ``data`` (see the module docstring); returns ``(model,
    result)``, the model on the CPU. ``state_path``: the resume file (written each epoch, read
    if present); ``device``: where to train (bit-identical results are promised on CPU only);
    ``hooks``: a :class:`TrainingHooks` (the module docstring)."""
    hp = {**TRAINING_DEFAULTS, **hyperparameters}
    log = log or (lambda message: None)
    path = Path(state_path) if state_path is not None else None
    start, cpu = time.perf_counter(), time.process_time()
    with _deterministic():
        torch.manual_seed(seed)
        model = nets.build(architecture, data["meta"], hp).to(device)
        if hooks is not None:
            hooks.prepare(model)
        data = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in data.items()}
        resume = _load_state(path)
        if resume is not None:
            log(f"resuming from epoch {resume['epoch']} ({path})")
        arch = nets.ARCHITECTURES[architecture]
        if arch.data == "graph":
            result = _train_graph(model, data, hp, seed, path, log, resume, hooks)
        elif arch.task == "language":
            if hooks is not None:
                raise ValueError(f"{architecture}: training hooks are not supported for language"
                                 " models")  # fmt: skip
            result = _train_text(model, data, hp, seed, path, log, resume)
        else:
            result = _train_images(model, data, hp, seed, path, log, resume, arch.task, hooks)
    q, higher = TASK_QUALITY[arch.task]
    gap = result[f"train_{q}"] - result[f"test_{q}"]
    result = {
        "architecture": architecture, "seed": seed, "hyperparameters": hp, "task": arch.task,
        f"train_{q}": result[f"train_{q}"], f"test_{q}": result[f"test_{q}"],
        "gap": gap if higher else -gap,
        **({"val_acc": result["val_acc"]} if "val_acc" in result else {}),
        "curve": result["curve"], "resumed_from": resume["epoch"] if resume else None,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
    }  # fmt: skip
    return model.cpu().eval(), result


def evaluate(
    model: nn.Module,
    architecture: str,
    data: Mapping[str, Any],
    hyperparameters: Mapping[str, Any] | None = None,
    split: str = "test",
) -> float:
    """The quality of a trained ``model`` (of ``architecture``) on ``split`` (``train`` or
    ``test``) of ``data``, as :func:`train` reports it: accuracy (percent) for classifiers and
    graph networks, mIoU (percent), PSNR (dB). ``hyperparameters``: those of the run (the
    training subset and label noise of ``train``), defaults otherwise. Not for language models.

    >>> evaluate(model, "mini_alexnet", data)  # doctest: +SKIP
    97.1
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    hp = {**TRAINING_DEFAULTS, **dict(hyperparameters or {})}
    arch = nets.ARCHITECTURES[architecture]
    model.eval()
    if arch.data == "graph":
        with torch.no_grad():
            pred = model(data["x"].float(), data["edge_index"]).argmax(1)
        mask = data[f"{split}_mask"]
        return _percent((pred[mask] == data["y"][mask]).sum(), int(mask.sum()))
    if arch.task == "language":
        raise ValueError(f"{architecture}: evaluate() does not score language models")
    x_train, y_train, x_test, y_test = _image_tensors(data, hp, 0, arch.task)
    x, y = (x_test, y_test) if split == "test" else (x_train, y_train)
    return _quality(model, x, y, int(hp["eval_batch"]), arch.task,
                    int(data["meta"].get("classes", 0)))  # fmt: skip
