"""htsr: heavy-tailed self-regularization metrics of trained neural networks.

The science lives in small pure functions (``htsr.fit``, ``htsr.spectra``, ``htsr.metrics``);
IO (checkpoints, downloads, figures) stays at the edges. Public names are imported lazily so
that ``import htsr.zoo`` or the command line does not pay for what it does not use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "PowerLawFit": "htsr.fit",
    "fit_power_law": "htsr.fit",
    "fit_power_law_ww": "htsr.fit",
    "analyze": "htsr.metrics",
    "summarize": "htsr.trends",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'htsr' has no attribute {name!r}")
