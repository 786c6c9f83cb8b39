"""Correlations between consecutive layers (WeightWatcher 0.7.7's ``analyze(intra=True)``,
"experimental" there).

For two consecutive analysed layers with matrices W₀, W₁ sharing a dimension, WeightWatcher
(``WWIntraLayerIterator``, weightwatcher.py:1784) forms the cross-layer matrix

    X = W₀ S W₁ / (‖W₀‖_F ‖W₁‖_F + √‖S‖_F)

where S is a random 0/1 matrix of the shared size (``sparsify=True``: it stands in for the
ReLU between the layers; ``sparsify=False``: S = I and the norm is ``‖W₀‖_F ‖W₁‖_F``), and
analyses the *singular values* of X as its "eigenvalues" (``combined_eigenvalues`` with
``intra``: ``evals = sv``, weightwatcher.py:2834). Only the first matrix of a layer is used (the
kernel tap (0, 0) of a conv). WeightWatcher's own comments call the normalisation "probably
wrong"; it is reproduced as is, so the numbers compare.
"""

from __future__ import annotations

import numpy as np

__all__ = ["align_pair", "intra_matrix"]


def align_pair(w0: np.ndarray, w1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transpose W₀ and/or W₁ so that ``W₀.shape[1] == W₁.shape[0]`` on their shared size
    (WW's ``align_mats``: the shared size is the largest value that occurs twice among the
    four dimensions); unchanged when none is shared.

    >>> a, b = align_pair(np.zeros((160, 64)), np.zeros((120, 160)))
    >>> a.shape, b.shape
    ((64, 160), (160, 120))
    """
    shapes = [w0.shape[0], w0.shape[1], w1.shape[0], w1.shape[1]]
    for v in np.unique(shapes):
        shapes.remove(v)
    if shapes:
        shared = max(shapes)
        if w0.shape[1] != shared:
            w0 = w0.T
        if w1.shape[0] != shared:
            w1 = w1.T
    return w0, w1


def intra_matrix(
    w0: np.ndarray, w1: np.ndarray, rng: np.random.RandomState, *, sparsify: bool = True
) -> np.ndarray | None:
    """WW's cross-layer matrix ``X = W₀ S W₁ / (‖W₀‖‖W₁‖ + √‖S‖)`` (see the module docstring);
    None when the two matrices share no dimension. ``rng`` draws S (``randint(2, M·M)``).

    >>> x = intra_matrix(np.eye(3), np.eye(3), np.random.RandomState(0), sparsify=False)
    >>> float(x.sum())
    1.0
    """
    w0, w1 = align_pair(np.asarray(w0, dtype=float), np.asarray(w1, dtype=float))
    if w0.shape[1] != w1.shape[0]:
        return None
    norm = np.linalg.norm(w0) * np.linalg.norm(w1)
    if not sparsify:
        return (w0 @ w1) / norm
    m = w1.shape[0]
    s = rng.randint(2, size=m * m).reshape((m, m))
    norm = norm + np.sqrt(np.linalg.norm(s))
    return (w0 @ s @ w1) / norm
