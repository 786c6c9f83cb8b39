"""Deprecated: ``htsr.metrics`` moved to :mod:`htsr.spectral.metrics`; this shim warns and re-
exports it for one release (the README's changelog).
"""

from htsr._deprecated import moved

__getattr__, __dir__ = moved(
    __name__,
    "htsr.spectral.metrics",
    renamed={"analyze": "htsr.weights.analysis"},
)
