"""Deprecated: ``htsr.ww`` moved to :mod:`htsr.spectral.ww`; this shim warns and re-exports it for
one release (the README's changelog).
"""

from htsr._deprecated import moved

__getattr__, __dir__ = moved(
    __name__,
    "htsr.spectral.ww",
    renamed={"ww_row": "htsr.spectral.metrics"},
)
