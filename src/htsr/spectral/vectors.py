"""Eigenvector localization of a layer (WeightWatcher 0.7.7's ``analyze(vectors=True)``).

For each matrix W of a layer, the eigenvectors v of the smaller Gram matrix (``W Wᵀ`` or
``Wᵀ W``) are scored by three measures (Martin & Mahoney, JMLR 22 (2021) 165, section 5;
WeightWatcher ``RMT_Util.py:603-640``); a delocalized (random) vector has a large
participation ratio and entropy, a localized one small:

* :func:`localization_ratio` ``‖v‖₁ / ‖v‖_∞``;
* :func:`participation_ratio` ``‖v‖₂ / ‖v‖₄``;
* :func:`discrete_entropy` the Shannon entropy (nats) of a 100-bin histogram of ``|v| − mean|v|``.

:func:`vector_columns` pools the layer's vectors, splits them at the power-law fit's xmin into
*bulk* (λ < xmin) and *tail* (λ ≥ xmin), and gives the mean and variance of each measure over
each part, under WW's column names ``bulk_mean_vec_entropy``, ``tail_var_part_ratio``, ...
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["VECTOR_COLUMNS", "discrete_entropy", "localization_ratio", "participation_ratio",
           "vector_columns", "vector_metrics"]  # fmt: skip

#: WeightWatcher's ``EPSILON`` added to the histogram before the entropy.
EPSILON = 1e-10
_NAMES = ("vec_entropy", "loc_ratio", "part_ratio")
#: The columns :func:`vector_columns` adds, in WW's order.
VECTOR_COLUMNS = tuple(
    f"{part}_{stat}_{name}" for name in _NAMES for part, stat in
    (("bulk", "mean"), ("bulk", "var"), ("tail", "mean"), ("tail", "var"))
)  # fmt: skip


def localization_ratio(v: np.ndarray) -> float:
    """``‖v‖₁ / ‖v‖_∞`` (dimensionless, 1 for a basis vector, ~0.8·n for a random one).

    >>> localization_ratio(np.array([1.0, 1.0, 0.0]))
    2.0
    """
    return float(np.linalg.norm(v, ord=1) / np.linalg.norm(v, ord=np.inf))


def participation_ratio(v: np.ndarray) -> float:
    """``‖v‖₂ / ‖v‖₄`` (dimensionless; ``n^{1/4}`` for a flat vector, 1 for a basis vector).

    >>> participation_ratio(np.ones(16))
    2.0
    """
    return float(np.linalg.norm(v, ord=2) / np.linalg.norm(v, ord=4))


def discrete_entropy(v: np.ndarray, num_bins: int = 100) -> float:
    """Entropy ``−Σ pᵢ ln pᵢ`` (nats) of a ``num_bins`` histogram of ``|v| − mean|v|``.

    As WeightWatcher's ``discrete_entropy``: density histogram, plus 1e-10, normalised to sum 1.
    At most ``ln num_bins``.

    >>> bool(discrete_entropy(np.linspace(0, 1, 1000)) > 4.5)
    True
    """
    a = np.absolute(v)
    a = a - np.mean(a)
    p = np.histogram(a, density=True, bins=num_bins)[0] + EPSILON
    p = p / np.sqrt(2 * np.pi)
    p = p / np.sum(p)
    return float(-np.sum(p * np.log(p)))


def vector_metrics(matrices: Sequence[np.ndarray], *, scale: float = 1.0):
    """Eigenvalues and the three measures of every eigenvector of the layer's matrices.

    Returns ``(evals, entropy, loc_ratio, part_ratio)``, each a float64 array over all
    eigenvectors of all matrices, sorted by eigenvalue (``scale`` multiplies the eigenvalues:
    ½ for WW's conv2d). The eigenvectors come from ``numpy.linalg.eigh`` of the smaller Gram
    matrix (WW: ``scipy.linalg.eig``, the same vectors up to sign, which no measure sees).
    """
    evals, ent, loc, part = [], [], [], []
    for w in matrices:
        w = np.asarray(w, dtype=float)
        x = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        lam, vecs = np.linalg.eigh(x)
        evals.append(lam * scale)
        ent += [discrete_entropy(v) for v in vecs.T]
        loc += [localization_ratio(v) for v in vecs.T]
        part += [participation_ratio(v) for v in vecs.T]
    lam = np.concatenate(evals)
    order = np.argsort(lam, kind="stable")
    return lam[order], np.array(ent)[order], np.array(loc)[order], np.array(part)[order]


def vector_columns(
    matrices: Sequence[np.ndarray], xmin: float, *, scale: float = 1.0, rtol: float = 1e-9
) -> dict[str, float]:
    """Mean and variance of each measure over the bulk (λ < xmin) and tail (λ ≥ xmin)
    eigenvectors: WeightWatcher's ``apply_analyze_eigenvectors`` (weightwatcher.py:5212).

    ``xmin`` is the layer's power-law xmin (eigenvalue units); NaN for an empty part. The
    tail is ``λ ≥ xmin·(1 − rtol)``: the eigenvector of the xmin eigenvalue itself belongs to
    the tail (as in the fit). WeightWatcher compares the eigenvalues of ``eig(WWᵀ)`` with the
    xmin of its SVD (weightwatcher.py:5322-5323), so that one vector falls in the bulk or the
    tail by round-off (in the bulk for 4 of the 5 layers of the random test model);
    ``rtol=-1e-9`` puts it in the bulk.

    >>> rng = np.random.default_rng(0)
    >>> cols = vector_columns([rng.normal(size=(200, 50))], xmin=250.0)
    >>> sorted(cols)[:2]
    ['bulk_mean_loc_ratio', 'bulk_mean_part_ratio']
    """
    lam, *measures = vector_metrics(matrices, scale=scale)
    tail = lam >= xmin * (1 - rtol)
    bulk = ~tail
    out: dict[str, float] = {}
    for name, values in zip(_NAMES, measures, strict=True):
        for part, mask in (("bulk", bulk), ("tail", tail)):
            sel = values[mask]
            out[f"{part}_mean_{name}"] = float(np.mean(sel)) if sel.size else float("nan")
            out[f"{part}_var_{name}"] = float(np.var(sel)) if sel.size else float("nan")
    return out
