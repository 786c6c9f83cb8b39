"""Correlation traps: the ESD of a weight matrix whose entries were shuffled, as WeightWatcher
0.7.7's ``analyze(randomize=True)`` computes it.

Shuffling the entries of W keeps their distribution and destroys their correlations, so the
shuffled ESD should follow the Marchenko-Pastur (MP) law. A *correlation trap* is an eigenvalue
of the shuffled matrix beyond its MP bulk edge: a few unusually large entries, which the
shuffle cannot spread out (Martin & Mahoney, "Post-mortem on a deep learning contest",
KDD 2021; WeightWatcher's ``num_traps``). :func:`randomize_columns` gives WW's columns:

``max_rand_eval``
    largest eigenvalue of the shuffled matrices (``num_replicas`` shuffles of each matrix of
    the layer, 5 when the layer has fewer than 100 eigenvalues, else 1).
``rand_distance``
    :func:`jensen_shannon_distance` between the layer's sorted eigenvalues and those of one
    more shuffle.
``ww_softrank``, ``ww_maxdist``
    ``λmax(shuffled) / λmax`` and ``λmax − λmax(shuffled)`` of that one shuffle.
``rand_num_spikes`` (= ``num_traps``), ``rand_sigma_mp``, ``rand_mp_softrank``, ``rand_W_scale``,
``rand_bulk_max``, ``rand_bulk_min``
    :func:`htsr.spectral.mp.mp_fit` of the replicated shuffled ESD.

The shuffles are drawn from a ``numpy.random.RandomState`` (the legacy generator, whose
``shuffle`` WeightWatcher calls through ``np.random.shuffle``): seeded once per analysis and
consumed layer by layer in WW's order, it reproduces WW's shuffles exactly when WW runs after
``np.random.seed(seed)`` on the same layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from htsr.spectral.mp import mp_fit

__all__ = ["RANDOMIZE_COLUMNS", "jensen_shannon_distance", "randomize_columns",
           "shuffled_eigenvalues"]  # fmt: skip

#: The columns :func:`randomize_columns` adds, WeightWatcher's names, in its order.
RANDOMIZE_COLUMNS = (
    "max_rand_eval", "rand_distance", "ww_softrank", "ww_maxdist", "rand_num_spikes",
    "num_traps", "rand_sigma_mp", "rand_mp_softrank", "rand_W_scale", "rand_bulk_max",
    "rand_bulk_min",
)  # fmt: skip


def shuffled_eigenvalues(
    matrices: Sequence[np.ndarray],
    rng: np.random.RandomState,
    *,
    replicas: int = 1,
    scale: float = 1.0,
) -> np.ndarray:
    """Eigenvalues of ``WᵀW`` for each matrix with its entries shuffled, pooled and sorted.

    For each replica and each matrix (in that order) the row-major flattened entries are
    permuted by ``rng.shuffle`` and reshaped; ``scale`` multiplies the eigenvalues (WW's ½ for
    a conv2d tap). Units: squared weight units.

    >>> W = np.arange(12.0).reshape(4, 3)
    >>> ev = shuffled_eigenvalues([W], np.random.RandomState(0))
    >>> bool(np.isclose(ev.sum(), (W ** 2).sum()))   # a shuffle keeps the Frobenius norm
    True
    """
    out = []
    for _ in range(replicas):
        for w in matrices:
            flat = np.array(w, copy=True).reshape(-1)
            rng.shuffle(flat)
            sv = np.linalg.svd(flat.reshape(np.shape(w)).astype(float), compute_uv=False)
            out.append(sv * sv * scale)
    return np.sort(np.concatenate(out))


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """WeightWatcher's ``rand_distance``: √JSD of ``p`` and ``q`` read as discrete distributions.

    ``JSD = ½ KL(p ‖ m) + ½ KL(q ‖ m)``, ``m = (p + q)/2``, natural log, each vector normalised
    to sum 1 (``scipy.stats.entropy``); in [0, √ln 2]. WeightWatcher (``RMT_Util.py:1078``,
    called at ``weightwatcher.py:3008``) passes the two *sorted eigenvalue vectors* themselves,
    so this compares how the mass Σλ is spread over the ranks, not two histograms of the ESDs;
    reproduced as is.

    >>> round(jensen_shannon_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) ** 2, 6)
    0.693147
    """
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    m = (p + q) / 2
    return float(np.sqrt((stats.entropy(p, m) + stats.entropy(q, m)) / 2))


def randomize_columns(
    matrices: Sequence[np.ndarray],
    evals: np.ndarray,
    N: int,
    M: int,
    n_comp: int,
    rng: np.random.RandomState,
    *,
    scale: float = 1.0,
) -> dict[str, Any]:
    """WeightWatcher's ``randomize`` columns of one layer (``apply_random_esd`` and
    ``apply_mp_fit(random=True)``, weightwatcher.py:2971 and 4669).

    Parameters
    ----------
    matrices : sequence of arrays
        The layer's matrices in WW's orientation (a conv2d tap ``W[:, :, i, j]``, transposed
        when it has fewer rows than columns; a Linear weight as stored).
    evals : array
        The layer's (pooled, scaled) eigenvalues, ascending.
    N, M, n_comp : int
        WW's ``N``, ``M`` and ``num_components`` (``M·rf`` for conv2d); fewer than 100
        components take 5 replicas.
    rng : numpy.random.RandomState
        Consumed by ``(replicas + 1) · len(matrices)`` shuffles.
    scale : float
        Eigenvalue scale (½ for WW's conv2d).
    """
    replicas = 5 if n_comp < 100 else 1
    rand = shuffled_eigenvalues(matrices, rng, replicas=replicas, scale=scale)
    once = shuffled_eigenvalues(matrices, rng, replicas=1, scale=scale)
    lam_max = float(np.max(evals))
    fit = mp_fit(rand, N, M)
    return {
        "max_rand_eval": float(np.max(rand)),
        "rand_distance": jensen_shannon_distance(evals, once),
        "ww_softrank": float(np.max(once) / lam_max),
        "ww_maxdist": float(lam_max - np.max(once)),
        "rand_num_spikes": fit.num_spikes,
        "num_traps": fit.num_spikes,
        "rand_sigma_mp": fit.sigma_mp,
        "rand_mp_softrank": fit.mp_softrank,
        "rand_W_scale": fit.W_scale,
        "rand_bulk_max": fit.bulk_max,
        "rand_bulk_min": fit.bulk_min,
    }
