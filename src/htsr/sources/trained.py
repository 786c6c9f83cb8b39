"""Deprecated: ``htsr.sources.trained`` moved to :mod:`htsr.weights.sources.trained`; this shim
warns and re-exports it for one release (the README's changelog).
"""

from htsr._deprecated import moved

__getattr__, __dir__ = moved(__name__, "htsr.weights.sources.trained")
