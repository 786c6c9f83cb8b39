"""Deprecated: ``htsr.plots`` was split into :mod:`htsr.figures.common`,
:mod:`htsr.figures.trends`, :mod:`htsr.figures.spectra`, :mod:`htsr.figures.studies`,
:mod:`htsr.figures.experiments`, :mod:`htsr.figures.commands`; this shim warns and re-exports it
for one release (the README's changelog).
"""

from htsr._deprecated import moved

__getattr__, __dir__ = moved(
    __name__,
    "htsr.figures.common",
    "htsr.figures.trends",
    "htsr.figures.spectra",
    "htsr.figures.studies",
    "htsr.figures.experiments",
    "htsr.figures.commands",
)
