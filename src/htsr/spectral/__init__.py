"""The spectral science, pure functions on tensors and arrays: which matrices a model yields
(:mod:`~htsr.spectral.matrices`), their eigenvalues (:mod:`~htsr.spectral.eigen`), the power-law
fit (:mod:`~htsr.spectral.fit`), WeightWatcher's conventions (:mod:`~htsr.spectral.ww`) and the
per-matrix metrics with :func:`~htsr.spectral.metrics.analyze` (:mod:`~htsr.spectral.metrics`).
WeightWatcher's diagnostics (issue 22): :mod:`~htsr.spectral.mp` (Marchenko-Pastur fit),
:mod:`~htsr.spectral.randomize` (correlation traps), :mod:`~htsr.spectral.detx` (det X = 1),
:mod:`~htsr.spectral.fingers` (finger fixes), :mod:`~htsr.spectral.altfits` (truncated power law
and likelihood-ratio tests), :mod:`~htsr.spectral.vectors` (eigenvector localization),
:mod:`~htsr.spectral.intra` (between consecutive layers) and :mod:`~htsr.spectral.diagnostics`
(the columns each adds to :func:`~htsr.spectral.metrics.analyze`).
Nothing here reads a file."""
