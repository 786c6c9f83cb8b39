"""Weights in: reading checkpoint files of every format, adapters, writing edited checkpoints."""
