"""htsr: heavy-tailed self-regularization metrics of trained neural networks.

One folder per stage, each importing only from the stages before it (docs/architecture.md):
``htsr.io`` → ``htsr.spectral`` (the science on tensors) → ``htsr.weights`` (checkpoints,
downloads, sources) → ``htsr.experiments`` → ``htsr.studies`` → ``htsr.figures`` →
``htsr.cli``. Public names are imported lazily so that ``import htsr.weights.zoo`` or the
command line does not pay for what it does not use.
"""

from __future__ import annotations

import importlib
from typing import Any

from htsr import _deprecated

__version__ = "0.1.0"

_EXPORTS = {
    "PowerLawFit": "htsr.spectral.fit",
    "fit_power_law": "htsr.spectral.fit",
    "fit_power_law_ww": "htsr.spectral.fit",
    "analyze": "htsr.weights.analysis",
    "summarize": "htsr.studies.trends",
}

__all__ = sorted(_EXPORTS)

_deprecated.install()  # the old flat module paths (htsr.metrics, ...) for one release


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'htsr' has no attribute {name!r}")
