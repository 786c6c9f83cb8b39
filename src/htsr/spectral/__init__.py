"""The spectral science, pure functions on tensors and arrays: which matrices a model yields
(:mod:`~htsr.spectral.matrices`), their eigenvalues (:mod:`~htsr.spectral.eigen`), the power-law
fit (:mod:`~htsr.spectral.fit`), WeightWatcher's conventions (:mod:`~htsr.spectral.ww`) and the
per-matrix metrics with :func:`~htsr.spectral.metrics.analyze` (:mod:`~htsr.spectral.metrics`).
Nothing here reads a file."""
