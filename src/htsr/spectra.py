"""Deprecated: ``htsr.spectra`` moved to :mod:`htsr.spectral.matrices`, :mod:`htsr.spectral.eigen`;
this shim warns and re-exports it for one release (the README's changelog).
"""

from htsr._deprecated import moved

__getattr__, __dir__ = moved(__name__, "htsr.spectral.matrices", "htsr.spectral.eigen")
