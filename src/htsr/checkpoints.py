"""Deprecated: ``htsr.checkpoints`` moved to :mod:`htsr.weights.checkpoints`; this shim warns and
re-exports it for one release (the README's changelog).
"""

from htsr._deprecated import moved

__getattr__, __dir__ = moved(
    __name__,
    "htsr.weights.checkpoints",
    renamed={
        "open_checkpoint": "htsr.weights.analysis:open_weights",  # it read hf:// addresses too
        "OUTPUT_HEADS": "htsr.spectral.matrices",
    },
)
