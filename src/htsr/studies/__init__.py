"""Studies: what to run (the study definition, :mod:`~htsr.studies.study`, and its model
table, :mod:`~htsr.studies.table`) and what comes out (:mod:`~htsr.studies.trends`,
:mod:`~htsr.studies.predict` over :mod:`~htsr.studies.regression`, the cross-study
:mod:`~htsr.studies.summary`, the papers' comparison :mod:`~htsr.studies.paper`, the
practitioner's :mod:`~htsr.studies.compare`, and :mod:`~htsr.studies.provenance`).

This package took the name of the old module ``htsr.studies`` (now
:mod:`htsr.studies.study`); its names still resolve here, with a ``DeprecationWarning``, for
one release.
"""

from htsr._deprecated import moved_names

__getattr__ = moved_names(
    __name__,
    "htsr.studies",
    "htsr.studies.study",
    ("Study", "study_from_dict", "read_study", "headline_functions"),
)
