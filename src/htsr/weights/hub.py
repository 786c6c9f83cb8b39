"""The Hugging Face hub's file layout, shared by the checkpoint reader and the ``hf`` source.

:func:`htsr.weights.checkpoints.open_checkpoint` reads a folder in the hub's layout the way a
download of it by :mod:`htsr.weights.sources.hf` chooses its file: the first of
:data:`WEIGHT_FILES` present. This module imports nothing, so that both can import it.
"""

from __future__ import annotations

#: Weights files looked for, in order, when a row or an ``hf://`` address names none.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
