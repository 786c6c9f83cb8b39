"""The science on tensors and arrays: spectra, fits and WeightWatcher's diagnostics.

New diagnostics modules (issue 22) live here: :mod:`htsr.spectral.mp` (Marchenko-Pastur fit),
:mod:`htsr.spectral.randomize` (correlation traps), :mod:`htsr.spectral.detx` (det X = 1),
:mod:`htsr.spectral.fingers` (finger fixes), :mod:`htsr.spectral.altfits` (truncated power law
and likelihood-ratio tests), :mod:`htsr.spectral.vectors` (eigenvector localization),
:mod:`htsr.spectral.intra` (correlations between consecutive layers) and
:mod:`htsr.spectral.diagnostics` (the columns each adds to :func:`htsr.analyze`).
"""
