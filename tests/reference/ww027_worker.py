"""Run WeightWatcher 0.2.7 — the version behind the Nat. Commun. 2021 tables — on a small CNN.

``tests/reference/WeightWatcher-0.2.7-py3-none-any.whl`` is PyPI's wheel (sha256 in
``WW027_WHEEL_SHA256``), imported straight from the zip; powerlaw 1.4.6, which WW 0.2.7 ran on in
2020 (ww-trends-2020's ``requirements.txt``), comes from the vendored sdist via ``PYTHONPATH``.
WW 0.2.7 imports TensorFlow and Keras at module level but uses them only for Keras models, so
this worker gives it empty stand-ins for those two packages, and numpy 2's removed ``np.NAN``
alias back. Usage (by ``tests/test_ww2020.py``)::

    python ww027_worker.py STATE_DICT.pt OUT.json

analyses :func:`tiny_cnn` with the weights in ``STATE_DICT.pt`` exactly as the Nat. Commun.
notebooks called it (``analyze(alphas=True, spectralnorms=True, normalize=False,
glorot_fix=False)``) and writes the per-slice details and the summary as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import types
import warnings
from pathlib import Path

WHEEL = Path(__file__).with_name("WeightWatcher-0.2.7-py3-none-any.whl")
WW027_WHEEL_SHA256 = "9c83bc1ea633f1339b6b3a36409ccd7cff6d6cff2c77df7e6767be4fc026ecf3"


def tiny_cnn():  # noqa: ANN201 - torch is imported lazily
    """A CNN with every case WW 0.2.7 treats differently: a 3-channel first conv (slices too
    small to fit, spectral norm still taken), 3×3 and 1×1 convs with out < in and out > in, a
    depthwise conv (skipped: W.shape[1] < 2), a Linear large enough to fit and one too small."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 64, 3),
        nn.Conv2d(64, 96, 3),
        nn.Conv2d(96, 72, 1),
        nn.Conv2d(72, 72, 3, groups=72),
        nn.Conv2d(72, 128, 2),
        nn.Flatten(),
        nn.Linear(128, 300),
        nn.Linear(300, 20),
    )


def _stand_ins() -> None:
    keras = types.ModuleType("keras")
    keras.__version__ = "none (stand-in)"
    keras.layers = types.SimpleNamespace(
        core=types.SimpleNamespace(Dense=type("Dense", (), {})),
        convolutional=types.SimpleNamespace(
            Conv1D=type("Conv1D", (), {}), Conv2D=type("Conv2D", (), {})
        ),
    )
    keras.models = types.ModuleType("keras.models")
    keras.models.load_model = lambda *a, **k: None
    tensorflow = types.ModuleType("tensorflow")
    tensorflow.keras = keras
    tensorflow.__version__ = "none (stand-in)"
    sys.modules.update({"keras": keras, "keras.models": keras.models, "tensorflow": tensorflow})


def main(argv: list[str]) -> int:
    import hashlib

    import numpy as np
    import torch

    digest = hashlib.sha256(WHEEL.read_bytes()).hexdigest()
    if digest != WW027_WHEEL_SHA256:
        raise RuntimeError(f"{WHEEL}: sha256 {digest} != {WW027_WHEEL_SHA256}")
    warnings.simplefilter("ignore")
    setattr(np, "NAN", np.nan)  # noqa: B010 - numpy 2 removed the alias; WW 0.2.7 uses it
    _stand_ins()
    sys.path.insert(0, str(WHEEL))
    import powerlaw
    import weightwatcher

    net = tiny_cnn()
    net.load_state_dict(torch.load(argv[1], weights_only=True))
    names = [name for name, _ in net.named_modules()]
    watcher = weightwatcher.WeightWatcher(model=net, log=False)
    results = watcher.analyze(
        alphas=True, spectralnorms=True, normalize=False, glorot_fix=False
    )  # fmt: skip
    slices = []
    for layer_id, layer in results.items():
        for slice_id, res in layer.items():
            if not isinstance(slice_id, int):
                continue
            slices.append({
                "layer": names[layer_id], "slice": slice_id, "N": int(res["N"]),
                "M": int(res["M"]),
                **{k: float(res[k]) for k in
                   ("alpha", "alpha_weighted", "lognorm", "logspectralnorm", "logpnorm",
                    "lambda_max", "spectralnorm") if k in res},
            })  # fmt: skip
    summary = {k: float(v) for k, v in watcher.get_summary().items()}
    payload = {
        "weightwatcher": weightwatcher.__version__,
        "weightwatcher_file": os.path.abspath(weightwatcher.__file__),
        "powerlaw_file": os.path.abspath(powerlaw.__file__),
        "slices": slices,
        "summary": summary,
    }
    Path(argv[2]).write_text(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
