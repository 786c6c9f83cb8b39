"""htsr: heavy-tailed self-regularization metrics of trained neural networks.

The science lives in small pure functions (``htsr.fit``, ``htsr.spectra``, ``htsr.metrics``);
IO (checkpoints, downloads, figures) stays at the edges.
"""

from htsr.fit import PowerLawFit, fit_power_law
from htsr.metrics import analyze, summarize

__all__ = ["PowerLawFit", "analyze", "fit_power_law", "summarize"]
__version__ = "0.1.0"
