"""The error every reader of weight files raises: :class:`CheckpointError`, below the readers
(:mod:`htsr.weights.checkpoints` and the other frameworks' formats in
:mod:`htsr.weights.formats`) so that both raise the same class."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file could not be read as a state_dict; the message names the file."""
