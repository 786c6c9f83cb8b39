"""Weights in: reading model files of every format (see :mod:`htsr.weights.formats`)."""
