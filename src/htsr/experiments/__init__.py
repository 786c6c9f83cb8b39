"""Networks trained here: datasets (:mod:`~htsr.experiments.datasets`), networks
(:mod:`~htsr.experiments.nets`), training (:mod:`~htsr.experiments.train`) and an experiment
study's grid of runs (:mod:`~htsr.experiments.grids`).

This package took the name of the old module ``htsr.experiments`` (now
:mod:`htsr.experiments.grids`); its names still resolve here, with a ``DeprecationWarning``,
for one release.
"""

from htsr._deprecated import moved_names

__getattr__ = moved_names(
    __name__,
    "htsr.experiments",
    "htsr.experiments.grids",
    ("GRIDS", "RESULT_SUFFIX", "family_name", "dataset_key", "grid_table", "read_results",
     "quality_from_results"),
)  # fmt: skip
