"""The eigenvalue spectra (ESDs) of the matrices :mod:`htsr.spectral.matrices` cuts a layer into.

The empirical spectral density of a matrix W (N × M, N ≥ M) is the set of M eigenvalues of the
correlation matrix ``X = WᵀW``, i.e. the squared singular values of W (units: squared weight
units, no 1/N normalisation). They are computed for a whole stack in one batched call, either
as the eigenvalues of the smaller Gram matrix (``method="gram"``, the default: about 3× faster
than an SVD on CPU) or as squared singular values (``method="svd"``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from scipy.linalg import blas

#: Above this many bytes (in the working dtype) a Gram matrix is accumulated block by block,
#: so a large matrix is never copied whole into float64.
GRAM_BLOCK_BYTES = 64 * 2**20

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` (or the torch dtype itself) → torch dtype; else ValueError."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def _syrk_lower(x: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """Lower triangle of ``xᵀx`` for one CPU matrix ``x`` (n_long, m), by BLAS SYRK.

    SYRK computes only one triangle (half the flops of a matmul) and reads a row- or
    column-major operand without a copy. Returns an ``(m, m)`` Fortran-ordered numpy array whose
    strict upper triangle is 0. When ``x`` must be converted to ``dtype``, it is converted and
    accumulated in blocks of :data:`GRAM_BLOCK_BYTES` along its long side.
    """
    syrk = blas.dsyrk if dtype == torch.float64 else blas.ssyrk
    n_long, m = int(x.shape[0]), int(x.shape[1])
    itemsize = torch.empty((), dtype=dtype).element_size()
    rows = n_long if x.dtype == dtype else max(1, GRAM_BLOCK_BYTES // max(1, m * itemsize))
    c = np.zeros((m, m), dtype=np.float64 if itemsize == 8 else np.float32, order="F")
    for start in range(0, n_long, rows):
        a = x[start : start + rows].detach().to(dtype=dtype).numpy()
        if not a.flags.f_contiguous and a.flags.c_contiguous:
            kw = {"a": a.T, "trans": 0}  # (m, rows) column-major: a.T @ a.T.T = xᵀx, no copy
        else:
            kw = {"a": a, "trans": 1}
        c = syrk(1.0, beta=1.0, c=c, lower=1, overwrite_c=1, **kw)
    return c


def _long_side(matrices: torch.Tensor) -> torch.Tensor:
    """The stack as ``(B, n_long, m)`` with n_long ≥ m (a transposed view where needed)."""
    return matrices if matrices.shape[-2] >= matrices.shape[-1] else matrices.mT


def gram(matrices: torch.Tensor, *, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """The smaller Gram matrix of each matrix of a ``(B, a, b)`` stack, in ``dtype`` on ``device``.

    ``G = WᵀW`` (B, b, b) when a ≥ b, else ``G = WWᵀ`` (B, a, a); both have the nonzero
    eigenvalues σᵢ² of W. On CPU each matrix goes through BLAS SYRK (:func:`_syrk_lower`, one
    triangle, then mirrored); elsewhere a batched matmul. A stack that must be converted to
    ``dtype`` and is larger than :data:`GRAM_BLOCK_BYTES` in it is converted and accumulated in
    blocks along its long side, ``G = Σₖ WₖᵀWₖ``, so it is never copied whole (a float32
    25088 × 4096 matrix would take 822 MB in float64).
    """
    x = _long_side(matrices)
    if torch.device(device).type == "cpu" and x.device.type == "cpu" and x.shape[0] > 0:
        out = torch.from_numpy(np.stack([_syrk_lower(xb, dtype) for xb in x]))
        return out + out.tril(-1).mT
    n_batch, n_long, m = int(x.shape[0]), int(x.shape[-2]), int(x.shape[-1])
    itemsize = torch.empty((), dtype=dtype).element_size()
    rows = max(1, GRAM_BLOCK_BYTES // max(1, n_batch * m * itemsize))
    if rows >= n_long:
        xd = x.to(device=device, dtype=dtype)
        return xd.mT @ xd
    out = torch.zeros((n_batch, m, m), dtype=dtype, device=device)
    for start in range(0, n_long, rows):
        block = x[:, start : start + rows, :].to(device=device, dtype=dtype)
        out.baddbmm_(block.mT, block)
    return out


#: From this size on, a float64 CPU Gram matrix goes to torch's ``eigvalsh`` (MKL ``syevd``),
#: which took 2.0 s against LAPACK-in-OpenBLAS's 3.0 s for a 4096² matrix on 2 cores; below it,
#: and in float32 at every size, scipy's ``syevd`` was as fast or faster.
TORCH_EIGVALSH_MIN_DIM = 3000


def _eigvalsh_cpu(g: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of a symmetric matrix given by its lower triangle (overwritten).

    LAPACK's divide-and-conquer ``syevd`` (scipy ``driver="evd"``) is ~2× faster than numpy's
    ``syevd``-less ``eigvalsh`` on a 4096² float32 Gram matrix here; float64 matrices of
    :data:`TORCH_EIGVALSH_MIN_DIM` or more go to torch (MKL). A Gram matrix with a non-finite
    diagonal (a NaN/Inf weight, or overflow) gives a row of NaN without calling the solver: by
    Cauchy–Schwarz ``|G_ij| <= sqrt(G_ii G_jj)``, so a finite diagonal means a finite matrix.
    """
    if not np.isfinite(np.diagonal(g)).all():
        return np.full(g.shape[0], np.nan, dtype=g.dtype)
    if g.dtype == np.float64 and g.shape[0] >= TORCH_EIGVALSH_MIN_DIM:
        return torch.linalg.eigvalsh(torch.from_numpy(g), UPLO="L").numpy()
    return scipy.linalg.eigvalsh(g, lower=True, driver="evd", check_finite=False, overwrite_a=True)


def _eigvalsh_masked(g: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.eigvalsh`` of a ``(B, m, m)`` stack; matrices with a non-finite diagonal
    are not passed to the solver and give rows of NaN (see :func:`_eigvalsh_cpu`)."""
    finite = torch.isfinite(g.diagonal(dim1=-2, dim2=-1)).all(dim=-1)
    if bool(finite.all()):
        return torch.linalg.eigvalsh(g)
    ev = torch.linalg.eigvalsh(g.masked_fill(~finite[:, None, None], 0.0))
    return ev.masked_fill_(~finite[:, None], float("nan"))


def eigenvalues(
    matrices: torch.Tensor,
    *,
    dtype: str | torch.dtype = "float64",
    device: torch.device | str = "cpu",
    method: str = "gram",
) -> torch.Tensor:
    """Eigenvalues λ = σ² of ``WᵀW`` for each matrix of a ``(B, a, b)`` stack.

    Returns a ``(B, min(a, b))`` tensor in ``dtype`` on ``device``, each row ascending.
    ``method="gram"``: ``eigvalsh`` of :func:`gram`; ``method="svd"``: squared
    ``torch.linalg.svdvals``. Eigenvalues below the numerical-rank tolerance
    ``M · ε(dtype) · λmax`` (``numpy.linalg.matrix_rank``'s rule applied to the M × M Gram
    matrix) are round-off, not spectrum: they (and negative round-off) are set to exactly 0, so
    a rank-deficient matrix shows its true zeros. A matrix with a NaN/Inf entry gives a row of
    NaN (its Gram matrix is not decomposed). Units: squared weight units.
    """
    dt = torch_dtype(dtype)
    with torch.no_grad():
        if method == "gram":
            x = _long_side(matrices)
            if torch.device(device).type == "cpu" and x.device.type == "cpu" and x.shape[0] > 0:
                # SYRK + LAPACK syevd: ~2× faster than torch matmul + numpy eigvalsh on CPU
                ev = torch.from_numpy(np.stack([_eigvalsh_cpu(_syrk_lower(xb, dt)) for xb in x]))
            else:
                ev = _eigvalsh_masked(gram(matrices, dtype=dt, device=device))
        elif method == "svd":
            x = matrices.to(device=device, dtype=dt)
            finite = torch.isfinite(x).flatten(1).all(dim=1)
            x = x.masked_fill(~finite[:, None, None], 0.0)
            ev = torch.linalg.svdvals(x).square_().flip(-1)
            ev.masked_fill_(~finite[:, None], float("nan"))
        else:
            raise ValueError(f"method must be 'gram' or 'svd', got {method!r}")
        tol = ev.shape[-1] * torch.finfo(dt).eps * ev[..., -1:].clamp_min(0.0)
        return ev.masked_fill_(ev < tol, 0.0)


#: The 2019 paper's eigenvalue method: scikit-learn ``TruncatedSVD(n_components=M - 1,
#: n_iter=7, random_state=...)``. Its notebooks used ``random_state=42``; WeightWatcher 0.2.7
#: (behind the Nat. Commun. 2021 tables) used 10.
TSVD_N_ITER = 7


def tsvd_eigenvalues(matrix: torch.Tensor, *, orient: str, random_state: int) -> np.ndarray:
    """Squared singular values of one matrix as the 2019 notebooks computed them, ascending.

    ``TruncatedSVD(n_components=M - 1, n_iter=7, random_state=random_state).fit(W)`` of
    scikit-learn, ``λ = singular_values_**2``, with M = min(N, M) of W: the smallest singular
    value is dropped and the other M - 1 come from randomized SVD (Halko et al. 2011) with 7
    power iterations. ``orient`` is how the notebooks handed W over: ``"long"`` (a conv tap
    ``W[:, :, i, j]``, transposed when it has fewer rows than columns, as their
    ``get_conv2D_Wmats`` did) or ``"stored"`` (a Linear weight as stored, out × in). W is passed
    as float64 (scikit-learn computes in the dtype of W). Returns M - 1 float64 values (units:
    squared weight units); raises ``ValueError`` for M < 2.

    ``n_components + n_oversamples = M + 9`` random vectors (``n_oversamples`` defaults to 10)
    span W's column space, so these are W's exact M - 1 largest eigenvalues to round-off
    (docs/paper.md, "TruncatedSVD with M − 1 components is exact here"): ``analyze(...,
    evals="tsvd")`` computes them exactly, 10-30x faster; this function is the reference it is
    tested against (``evals="tsvd_sklearn"``).

    Example: ``tsvd_eigenvalues(torch.randn(300, 100), orient="stored", random_state=42)``
    has 99 values, the 99 largest eigenvalues of WᵀW to round-off.
    """
    from sklearn.decomposition import TruncatedSVD

    w = matrix.detach().to(device="cpu", dtype=torch.float64).numpy()
    if orient == "long" and w.shape[0] < w.shape[1]:
        w = w.T
    elif orient not in ("long", "stored"):
        raise ValueError(f"orient must be 'long' or 'stored', got {orient!r}")
    m = min(w.shape)
    if m < 2:
        raise ValueError(f"TruncatedSVD needs min(N, M) >= 2, got a {w.shape} matrix")
    svd = TruncatedSVD(n_components=m - 1, n_iter=TSVD_N_ITER, random_state=random_state)
    svd.fit(w)
    return np.sort(svd.singular_values_.astype(np.float64) ** 2)
