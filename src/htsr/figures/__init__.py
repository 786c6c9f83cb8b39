"""The figures, one module per family over a small shared helper (:mod:`htsr.figures.common`):
``trends`` (metric against quality), ``spectra`` (α across models and depth), ``studies``
(the cross-study answer, the papers' comparison), ``experiments`` (trained networks) and
``commands`` (the figures of ``htsr compare``, ``htsr track`` and ``htsr esd``)."""
