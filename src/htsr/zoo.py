"""Deprecated: ``htsr.zoo`` moved to :mod:`htsr.weights.zoo`, :mod:`htsr.studies.table`; this shim
warns and re-exports it for one release (the README's changelog).
"""

from htsr._deprecated import moved

__getattr__, __dir__ = moved(__name__, "htsr.weights.zoo", "htsr.studies.table")
