"""The science on tensors and arrays: which matrices a model yields, spectra, fits, metrics."""
