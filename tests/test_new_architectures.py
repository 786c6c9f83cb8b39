"""The architectures added for the four questions (U-Net, convolutional autoencoder and VAE,
decoder-only transformer) and the training levers (label noise, graph training size): the
quality each task measures against a reference formula, determinism, and resume from a saved
epoch to the same weights as an uninterrupted run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import htsr
from htsr.experiments import nets, train

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402


def _scenes(n: int = 24, size: int = 8, classes: int = 3) -> dict:
    """Tiny segmentation data: bright squares of class 1..classes-1 on a dark background."""
    g = torch.Generator().manual_seed(0)

    def split(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.zeros(m, 1, size, size, dtype=torch.uint8)
        y = torch.zeros(m, size, size, dtype=torch.int64)
        for i in range(m):
            c = int(torch.randint(1, classes, (1,), generator=g))
            r, s = torch.randint(0, size - 3, (2,), generator=g).tolist()
            x[i, 0, r : r + 3, s : s + 3] = 80 * c
            y[i, r : r + 3, s : s + 3] = c
        return x, y

    (xt, yt), (xs, ys) = split(n), split(n // 2)
    meta = {"kind": "segmentation", "channels": 1, "size": size, "classes": classes,
            "mean": [0.1], "std": [0.2], "source": "tests"}  # fmt: skip
    return {"x_train": xt, "y_train": yt, "x_test": xs, "y_test": ys, "meta": meta}


def _text(n: int = 4000) -> dict:
    base = b"the quick brown fox jumps over the lazy dog. " * (n // 45 + 1)
    tokens = torch.tensor(list(base[:n]), dtype=torch.int64)
    cut = int(0.9 * n)
    return {"train_tokens": tokens[:cut], "test_tokens": tokens[cut:],
            "meta": {"kind": "text", "vocab": 256, "source": "tests"}}  # fmt: skip


GRAY = synthetic.images(n=128, size=16, channels=1)
CASES = [
    ("unet", _scenes(), {"epochs": 2, "batch_size": 8, "optimizer": "adam", "lr": 0.003,
                         "width": 2}),
    ("conv_ae", GRAY, {"epochs": 2, "batch_size": 32, "optimizer": "adam", "code": 4,
                       "width": 4}),
    ("conv_vae", GRAY, {"epochs": 2, "batch_size": 32, "optimizer": "adam", "code": 4,
                        "width": 4}),
    ("transformer", _text(), {"epochs": 2, "steps_per_epoch": 5, "batch_size": 4,
                              "optimizer": "adam", "lr": 0.003, "width": 16, "context": 16,
                              "eval_tokens": 256}),
]  # fmt: skip


@pytest.mark.parametrize(("arch", "data", "hp"), CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_weights_and_resume_ends_where_a_whole_run_ends(
    arch: str, data: dict, hp: dict, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    whole, result = train.train(arch, hp, data, seed=3)
    again, _ = train.train(arch, hp, data, seed=3)
    a, b = whole.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    q = train.TASK_QUALITY[nets.ARCHITECTURES[arch].task][0]
    assert np.isfinite(result[f"test_{q}"]) and np.isfinite(result[f"train_{q}"])
    assert result["curve"][-1]["epoch"] == hp["epochs"] and f"test_{q}" in result["curve"][-1]
    if nets.ARCHITECTURES[arch].task != "language":  # the reported quality is the final model's
        assert result[f"test_{q}"] == train.evaluate(whole, arch, data, hp)
    # a run stopped after epoch 1 (its resume point on disk) and rerun to the end
    state = tmp_path / "resume.pt"
    train.train(arch, {**hp, "epochs": 1}, data, seed=3, state_path=state)
    resumed, again_result = train.train(arch, hp, data, seed=3, state_path=state)
    c = resumed.state_dict()
    assert again_result["resumed_from"] == 1
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert again_result[f"test_{q}"] == result[f"test_{q}"]


def test_task_qualities_follow_their_formulas() -> None:
    confusion = torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # class 2 absent: not averaged
    ious = [5 / (5 + 1 + 2), 3 / (3 + 2 + 1)]
    assert train.miou(confusion) == pytest.approx(100 * np.mean(ious))
    assert train.psnr(1e-3) == pytest.approx(30.0)
    # the language model's quality is the mean next-token cross-entropy over the windows
    torch.manual_seed(0)
    model = nets.build("transformer", {"kind": "text", "vocab": 256}, {"width": 16, "context": 8})
    tokens = torch.randint(0, 256, (50,))
    windows = train._windows(tokens, 8, 0)
    assert windows.shape == (6, 9) and torch.equal(windows[1], tokens[8:17])
    logits = model(windows[:, :-1]).detach()
    targets = windows[:, 1:].reshape(-1)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), targets)
    assert train._log_ppl(model, windows, 2) == pytest.approx(float(expected), rel=1e-5)


def test_label_noise_and_graph_training_size() -> None:
    y = torch.arange(1000) % 10
    noisy = train._noisy(y, 0.3, 10, seed=1)
    assert int((noisy != y).sum()) == 300  # a noisy label is always another class
    assert torch.equal(noisy, train._noisy(y, 0.3, 10, seed=1))
    graph = synthetic.graph()
    hp = {"epochs": 5, "optimizer": "adam", "hidden": 16, "train_size": 150}
    _, clean = train.train("gcn", hp, graph, seed=0)
    _, noisy_run = train.train("gcn", {**hp, "label_noise": 0.5}, graph, seed=0)
    assert clean["hyperparameters"]["train_size"] == 150
    assert (
        clean["test_acc"] != noisy_run["test_acc"] or clean["train_acc"] != noisy_run["train_acc"]
    )


def test_analysis_sees_the_new_architectures_layers() -> None:
    """The transformer's embeddings are excluded and its attention split into q, k, v; the
    autoencoder's bottleneck and the U-Net's convolutions are analysed."""
    lm = nets.build("transformer", {"kind": "text", "vocab": 256}, {"width": 32, "depth": 2})
    table = htsr.analyze(lm)
    assert not table["layer"].str.contains("embed").any()
    attention = table[table["layer"].str.contains("in_proj")]
    assert len(attention) == 2 * 3 and set(attention["N"]) == {32}
    assert (table["layer"] == "head").any()
    ae = nets.build("conv_ae", {"kind": "images", "channels": 1, "size": 28}, {"code": 8})
    assert (htsr.analyze(ae)["layer"] == "encoder.5").any()
    unet = nets.build("unet", {"kind": "segmentation", "channels": 1, "size": 32,
                               "classes": 11}, {"width": 8})  # fmt: skip
    assert htsr.analyze(unet)["layer"].str.startswith("bottom.").any()
    with pytest.raises(ValueError, match="multiple of 4"):
        nets.build("unet", {"kind": "segmentation", "channels": 1, "size": 30, "classes": 3}, {})
