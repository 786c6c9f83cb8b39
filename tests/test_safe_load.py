"""Checkpoints whose pickles name classes beyond tensors (mmengine's) load without running any
code from them (htsr.checkpoints.safe_load)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import htsr
from htsr.weights import checkpoints

WRITER = textwrap.dedent(
    """
    import os, sys, numpy as np, torch
    sys.path.insert(0, sys.argv[1])  # the fake mmengine package exists only while saving
    from mmengine.logging.history_buffer import HistoryBuffer
    torch.manual_seed(0)
    state = {"backbone.conv.weight": torch.randn(64, 32, 3, 3),
             "decode_head.linear.weight": torch.randn(150, 64),
             "decode_head.linear.bias": torch.zeros(150)}
    buffer = HistoryBuffer(); buffer.update(0.5)
    checkpoint = {"meta": {"env_info": "x", "CLASSES": ("road", "sky"),
                           "PALETTE": np.array([[1, 2, 3]]), "epoch": 160, "iter": 16000},
                  "state_dict": state,
                  "message_hub": {"log_scalars": {"loss": buffer}}}
    torch.save(checkpoint, sys.argv[2])

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {sys.argv[3]}",))
    torch.save({"state_dict": state, "meta": {"hook": Evil()}}, sys.argv[4])
    """
)
HISTORY_BUFFER = textwrap.dedent(
    """
    class HistoryBuffer:
        def __init__(self):
            self._log_history = []
        def update(self, value):
            self._log_history.append(value)
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("mmengine")
    pkg = tmp / "fake" / "mmengine" / "logging"
    pkg.mkdir(parents=True)
    for folder in (pkg.parent, pkg):
        (folder / "__init__.py").write_text("")
    (pkg / "history_buffer.py").write_text(HISTORY_BUFFER)
    out = {"mmengine": tmp / "segformer.pth", "evil": tmp / "evil.pth",
           "marker": tmp / "pwned"}  # fmt: skip
    args = [str(tmp / "fake"), str(out["mmengine"]), str(out["marker"]), str(out["evil"])]
    run = subprocess.run([sys.executable, "-c", WRITER, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert not out["marker"].exists()
    return out


def test_weights_only_refuses_them(files: dict[str, Path]) -> None:
    with pytest.raises(Exception, match="(?i)weights_only|global"):
        torch.load(files["mmengine"], weights_only=True)


def test_mmengine_checkpoint_loads_without_mmengine(files: dict[str, Path]) -> None:
    assert "mmengine" not in sys.modules
    obj = checkpoints.safe_load(files["mmengine"])
    assert "mmengine" not in sys.modules  # never imported
    buffer = obj["message_hub"]["log_scalars"]["loss"]
    assert isinstance(buffer, checkpoints.Inert)
    assert buffer.origin == "mmengine.logging.history_buffer.HistoryBuffer"
    assert buffer.state == {"_log_history": [0.5]}
    assert obj["meta"]["CLASSES"] == ("road", "sky") and obj["meta"]["epoch"] == 160
    assert isinstance(obj["meta"]["PALETTE"], checkpoints.Inert)  # numpy: not needed, inert
    sd = checkpoints.load_state_dict(files["mmengine"])  # only the state_dict is used
    assert sorted(sd) == ["backbone.conv.weight", "decode_head.linear.bias",
                          "decode_head.linear.weight"]  # fmt: skip
    assert sd["backbone.conv.weight"].shape == (64, 32, 3, 3)
    table = htsr.analyze(files["mmengine"])
    assert set(table["layer"]) == {"backbone.conv", "decode_head.linear"}


def test_a_pickle_that_calls_os_system_runs_nothing(files: dict[str, Path]) -> None:
    obj = checkpoints.safe_load(files["evil"])
    hook = obj["meta"]["hook"]
    assert isinstance(hook, checkpoints.Inert) and hook.origin.endswith(".system")
    assert hook.args == (f"touch {files['marker']}",)  # the call it asked for, never made
    assert not files["marker"].exists()
    checkpoints.load_state_dict(files["evil"])
    htsr.analyze(files["evil"])
    assert not files["marker"].exists()
