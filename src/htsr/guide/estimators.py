"""The α estimators of the published α-guided methods, as their code computes them.

All five methods (TempBalance, Model Balancing, AlphaDecay, AlphaPruning, FARMS) share one
per-layer routine, ``net_esd_estimator`` (YefanZhou/TempBalance ``tempbalance.py``
``Tempbalance.net_esd_estimator``; the same code in ZihangHLiu/ModelBalancing
``transformers/src/transformers/utils/esd_utils.py``, hed-ucas/AlphaDecay
``LLaMa-pretraining/WeightDecayUnbalance.py`` ``modulewise_AlphaDecay.net_esd_estimator`` and
haiquanlu/AlphaPruning ``lib/esd_utils.py``). It is *not* the Clauset–Shalizi–Newman fit of
:mod:`htsr.spectral.fit`: it pools all matrices of a layer into one ESD and uses a fixed ``xmin``.

The ESD of a layer (:func:`layer_eigenvalues`): a ``Linear`` weight W gives the squared
singular values of W; a ``Conv2d`` weight ``(out, in, kh, kw)`` gives the kh·kw matrices
``W[:, :, i, j]`` (the cut of :func:`htsr.spectral.matrices.layer_matrices`), each multiplied by
``sqrt(conv_norm)`` (``conv_norm = 0.5``), and the squared singular values of all of them pooled
into one sorted array (``min(out, in)·kh·kw`` values). Arithmetic is in float32 with torch, as
published, so that the estimators give the published numbers to the last bit on CPU. htsr's
:func:`htsr.spectral.matrices.eigenvalues` is not used because it sets eigenvalues below the
numerical-rank tolerance to 0, which the published code does not (log 0 would enter the fit).

Estimators of one pooled ESD ``λ_1 ≤ … ≤ λ_N`` (``filter_zeros=False``, the default of every
method):

* :func:`hill_median` (``pl_fitting='median'`` / ``fix_fingers='xmin_mid'``): ``i =
  int(N / xmin_pos)``, ``xmin = λ_i`` (0-based), ``n = N − i``, the Hill/MLE exponent
  ``α = 1 + n / (Σ_{k≥i} ln λ_k − n ln λ_i)`` and the KS distance
  ``D = max_k |1 − (λ_k/xmin)^{1−α} − k/n|``. ``xmin_pos = 2`` (the median) for TempBalance and
  AlphaDecay; Model Balancing's published runs use 1.5.
* :func:`alpha_peak` (``fix_fingers='xmin_peak'``, AlphaPruning's ``alpha_peak``): a
  100-bin histogram of ``log10 λ`` (``torch.histc``); its fullest bin's left edge is the peak
  ``p = 10^edge``; every ``xmin = λ_i`` with ``lo ≤ λ_i ≤ 1.5 p`` is a candidate; the candidate
  with the smallest D (among those with α > 1; others keep D = 1) gives α. The published lower
  bound is ``lo = log10(0.95 p)`` — a log10 value compared with a linear eigenvalue — so it is
  always below the intended ``0.95 p`` and lets smaller ``xmin`` compete. That is the default
  (``lower="published"``) for fidelity; ``lower="corrected"`` uses ``lo = 0.95 p``.
* :func:`farms_alphas` (HUST-AI-HYZ/FARMS): α from the averaged ESD of fixed-aspect-ratio
  submatrices (see its docstring).

Example
-------
>>> import torch
>>> w = torch.randn(256, 128, generator=torch.Generator().manual_seed(0))
>>> ev = layer_eigenvalues(w, "linear")
>>> round(hill_median(ev).alpha, 3) == round(hill_median(ev.numpy()).alpha, 3)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from htsr.spectral.matrices import LayerWeight, iter_layers, layer_matrices

__all__ = [
    "CONV_NORM",
    "EstimatorFit",
    "alpha_peak",
    "farms_alphas",
    "farms_eigenvalues",
    "guide_layers",
    "hill_median",
    "layer_alphas",
    "layer_eigenvalues",
]

#: Conv2d slices are multiplied by sqrt(CONV_NORM) before the SVD (``conv_norm=0.5``).
CONV_NORM = 0.5

#: Layer types the published methods analyse: ``nn.Conv2d`` and ``nn.Linear``.
GUIDE_LAYER_TYPES = ("conv2d", "linear")


@dataclass(frozen=True)
class EstimatorFit:
    """One estimator's result: exponent ``alpha``, KS distance ``D``, ``xmin`` (squared weight
    units), tail length ``n_tail`` and the number of eigenvalues ``n``."""

    alpha: float
    D: float
    xmin: float
    n_tail: int
    n: int


def _as_sorted32(eigs: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(eigs) if not isinstance(eigs, torch.Tensor) else eigs)
    t = t.detach().to("cpu", torch.float32).flatten()
    if t.numel() < 2:
        raise ValueError(f"an ESD needs at least 2 eigenvalues, got {t.numel()}")
    return torch.sort(t).values


def _hill(nz: torch.Tensor, log_nz: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """α and D with ``xmin = nz[i]``, the published expression term by term (float32)."""
    n_total = len(nz)
    xmin = nz[i]
    n = float(n_total - i)
    seq = torch.arange(n)
    alpha = 1 + n / (torch.sum(log_nz[i:]) - n * log_nz[i])
    d = torch.max(torch.abs(1 - (nz[i:] / xmin) ** (-alpha + 1) - seq / n))
    return alpha, d


def hill_median(eigs: Any, xmin_pos: float = 2) -> EstimatorFit:
    """Hill estimator with ``xmin`` at the ``1/xmin_pos`` quantile of the ESD (the median for 2).

    ``i = int(N / xmin_pos)``, ``α = 1 + n / (Σ_{k≥i} ln λ_k − n ln λ_i)`` with ``n = N − i``,
    ``D = max_k |1 − (λ_k/λ_i)^{1−α} − k/n|``, in float32 as
    ``Tempbalance.net_esd_estimator(pl_fitting='median')`` (YefanZhou/TempBalance
    ``tempbalance.py``). ``eigs``: the eigenvalues (any order; sorted here).
    """
    nz = _as_sorted32(eigs)
    i = int(len(nz) / xmin_pos)
    alpha, d = _hill(nz, torch.log(nz), i)
    return EstimatorFit(alpha.item(), d.item(), nz[i].item(), len(nz) - i, len(nz))


def alpha_peak(eigs: Any, bins: int = 100, lower: str = "published") -> EstimatorFit:
    """AlphaPruning's ``alpha_peak``: the KS-best Hill fit with ``xmin`` near the ESD's peak.

    ``net_esd_estimator(fix_fingers='xmin_peak')`` of haiquanlu/AlphaPruning ``lib/esd_utils.py``:
    ``torch.histc(log10 λ, bins)`` between its min and max; ``p = 10^(left edge of the fullest
    bin)``; candidates ``xmin = λ_i`` (i < N − 1, ascending) are skipped while ``λ_i < lo`` and the
    scan stops at the first ``λ_i > 1.5 p``; each candidate gets α (as :func:`hill_median`) and,
    when α > 1, its D; non-candidates keep α = 0, D = 1; the argmin of D gives α.
    ``lower="published"``: ``lo = log10(0.95 p)`` (the published code's bound, a log10 value
    compared with linear eigenvalues); ``lower="corrected"``: ``lo = 0.95 p``.
    """
    if lower not in ("published", "corrected"):
        raise ValueError(f"lower must be 'published' or 'corrected', got {lower!r}")
    nz = _as_sorted32(eigs)
    n_total = len(nz)
    log_nz = torch.log(nz)
    alphas = torch.zeros(n_total - 1)
    ds = torch.ones(n_total - 1)
    hist = torch.log10(nz)
    min_e, max_e = hist.min(), hist.max()
    counts = torch.histc(hist, bins, min=min_e, max=max_e)
    boundaries = torch.linspace(min_e, max_e, bins + 1)
    peak = 10 ** boundaries[torch.argmax(counts)]
    lo = torch.log10(0.95 * peak) if lower == "published" else 0.95 * peak
    hi = 1.5 * peak
    for i, xmin in enumerate(nz[:-1]):
        if xmin < lo:
            continue
        if xmin > hi:
            break
        alpha, d = _hill(nz, log_nz, i)
        alphas[i] = alpha
        if alpha > 1:
            ds[i] = d
    k = int(torch.argmin(ds))
    return EstimatorFit(alphas[k].item(), ds[k].item(), nz[k].item(), n_total - k, n_total)


ESTIMATORS = {"median": hill_median, "peak": alpha_peak}


def layer_eigenvalues(
    weight: torch.Tensor, layer_type: str, conv_norm: float = CONV_NORM
) -> torch.Tensor:
    """The pooled, ascending float32 ESD of one layer, as ``net_esd_estimator`` computes it.

    ``linear``: ``svdvals(W)²``; ``conv2d``: ``svdvals(sqrt(conv_norm)·W[:, :, i, j])²`` of all
    kh·kw slices (``torch.flatten(W, 2) * sqrt(conv_norm)`` transposed to ``(kh·kw, out, in)``),
    pooled. Units: squared weight units.
    """
    w = weight.detach().to("cpu", torch.float32)
    if layer_type == "conv2d" and w.ndim == 4:
        m = torch.flatten(w, start_dim=2) * math.sqrt(conv_norm)
        m = m.transpose(1, 2).transpose(0, 1)
    elif layer_type == "linear" and w.ndim == 2:
        m = w
    else:
        m = layer_matrices(LayerWeight("", layer_type, w)).matrices
    eigs = torch.square(torch.linalg.svdvals(m).flatten())
    return torch.sort(eigs).values


def _conv2d_wmats(w: torch.Tensor) -> list[torch.Tensor]:
    """FARMS ``sampling.conv2D_Wmats(W, channels=UNKNOWN)``: the slices ``W[:, :, i, j]`` (or
    ``W[i, j]`` when ``out + in < kh + kw``), each transposed to have rows ≥ columns."""
    n, m, imax, jmax = w.shape
    mats = []
    if n + m >= imax + jmax:
        for i in range(imax):
            for j in range(jmax):
                x = w[:, :, i, j]
                mats.append(x.T if x.shape[0] < x.shape[1] else x)
    else:
        for i in range(n):
            for j in range(m):
                x = w[i, j, :, :]
                mats.append(x.T if x.shape[1] < x.shape[0] else x)
    return mats


def _fixed_sampling(w: torch.Tensor, rows_s: int, q: float, ops: int) -> torch.Tensor:
    """FARMS ``sampling.fixed_sampling``: ``ops × ops`` windows of ``rows_s × int(rows_s·q)``."""
    rows, cols = w.shape
    cols_s = int(rows_s * q)
    row_step = max(1, (rows - rows_s) // (ops - 1))
    col_step = max(1, (cols - cols_s) // (ops - 1))
    n_r = min(ops, max(1, (rows - rows_s) // row_step + 1))
    n_c = min(ops, max(1, (cols - cols_s) // col_step + 1))
    out = []
    for i in range(n_r):
        for j in range(n_c):
            r0 = min(i * row_step, rows - rows_s)
            c0 = min(j * col_step, cols - cols_s)
            out.append(torch.square(torch.linalg.svdvals(w[r0 : r0 + rows_s, c0 : c0 + cols_s])))
    return torch.sort(torch.cat(out)).values


def _sliding_sampling(w: torch.Tensor, rows_s: int, q: float, step: int) -> torch.Tensor:
    """FARMS ``sampling.matrix_size_dependent_sampling``: windows every ``step`` rows/columns."""
    rows, cols = w.shape
    cols_s = int(rows_s * q)
    n_r = max(1, (rows - rows_s) // step + 1)
    n_c = max(1, (cols - cols_s) // step + 1)
    out = []
    for i in range(n_r):
        for j in range(n_c):
            sub = w[i * step : i * step + rows_s, j * step : j * step + cols_s]
            out.append(torch.square(torch.linalg.svdvals(sub)))
    return torch.sort(torch.cat(out)).values


def farms_eigenvalues(
    weight: torch.Tensor,
    layer_type: str,
    *,
    conv_norm: float = CONV_NORM,
    num_row_samples: int = 100,
    q_ratio: float = 1.0,
    step_size: int = 9,
    sampling_ops_per_dim: int | None = 9,
) -> list[torch.Tensor]:
    """The ESDs FARMS fits for one layer: one pooled ESD per group of submatrices.

    HUST-AI-HYZ/FARMS ``Image_Classification/tempbalance_farms.py``
    ``Tempbalance_FARMS.net_esd_estimator(use_sliding_window=True)`` and ``sampling.py``:

    * ``linear`` (W as stored, out × in): submatrices of ``num_row_samples ×
      int(num_row_samples·q_ratio)`` (a fixed aspect ratio), ``sampling_ops_per_dim`` windows per
      dimension evenly spaced (``fixed_sampling``), or every ``step_size`` rows/columns when
      ``sampling_ops_per_dim`` is None (``matrix_size_dependent_sampling``); the squared
      singular values of all windows pooled into one ESD (returned as a one-element list). Not
      multiplied by ``sqrt(conv_norm)``.
    * ``conv2d``: the slices of ``conv2D_Wmats`` (rows ≥ cols), ``division = rows // cols``; for
      each division d, the blocks ``W[d·r:(d+1)·r, :c]`` of every slice (``r = cols // q_ratio,
      c = cols`` when ``q_ratio > 1``, else ``r = cols, c = int(cols // (1/q_ratio))``), times
      ``sqrt(conv_norm)``, pooled into the division's ESD. The layer's α is the mean of the
      divisions' α (:func:`farms_alphas`).

    Defaults are the published image-classification runs (``farms_imagecls_main.txt``: 100 rows,
    Q = 1.0, step 9, 9 ops per dimension); the LLM pruning runs use 2000 rows, Q = 1, 15 ops.
    """
    w = weight.detach().to("cpu", torch.float32)
    if layer_type == "linear" and w.ndim == 2:
        if sampling_ops_per_dim is None:
            return [_sliding_sampling(w, num_row_samples, q_ratio, step_size)]
        return [_fixed_sampling(w, num_row_samples, q_ratio, sampling_ops_per_dim)]
    if layer_type != "conv2d" or w.ndim != 4:
        raise ValueError(
            f"FARMS handles linear and conv2d weights, not {layer_type} {tuple(w.shape)}"
        )
    mats = _conv2d_wmats(w)
    rows, cols = mats[0].shape
    if q_ratio > 1:
        r, c = cols // q_ratio, cols
    else:
        r, c = cols, cols // (1 / q_ratio)
    r, c = max(1, int(r)), max(1, int(c))
    scale = math.sqrt(conv_norm)
    out = []
    for d in range(int(rows // cols)):
        ev = [torch.square(torch.linalg.svdvals(x[d * r : (d + 1) * r, :c] * scale)) for x in mats]
        out.append(torch.sort(torch.cat(ev)).values)
    return out


def farms_alphas(esds: Sequence[torch.Tensor], estimator: str = "median", **kw: Any) -> float:
    """FARMS's layer α: the mean of the estimator's α over the layer's ESDs
    (``np.mean(temp_results['alpha'])`` in ``Tempbalance_FARMS.net_esd_estimator``)."""
    fit = ESTIMATORS[estimator]
    return float(np.mean([fit(e, **kw).alpha for e in esds]))


def guide_layers(
    model: nn.Module | Mapping[str, torch.Tensor], *, layer_types: Sequence[str] = GUIDE_LAYER_TYPES
) -> Iterator[LayerWeight]:
    """The layers the published methods analyse, in ``named_modules`` (or state_dict) order:
    the ``Conv2d`` and ``Linear`` weights (:func:`htsr.spectral.matrices.iter_layers` without
    embeddings and without ``MultiheadAttention`` input projections, which the published
    ``isinstance(m, (nn.Conv2d, nn.Linear))`` loop does not see). One difference: a ``Linear``
    of another library with a 2-D weight (PyTorch Geometric's, inside ``GCNConv``) counts, so a
    graph network has layers to guide."""
    for layer in iter_layers(model, include_embeddings=False, include_attention=False):
        if layer.layer_type in layer_types and not layer.status:
            yield layer


def layer_alphas(
    model: nn.Module | Mapping[str, torch.Tensor],
    estimator: str = "median",
    *,
    xmin_pos: float = 2,
    lower: str = "published",
    farms: bool = False,
    farms_options: Mapping[str, Any] | None = None,
    conv_norm: float = CONV_NORM,
) -> pd.DataFrame:
    """One row per Conv2d/Linear layer of ``model`` (an ``nn.Module`` or a state_dict): ``layer``,
    ``layer_type``, ``n_params`` (weight elements), ``eigs_num`` (pooled ESD size), ``alpha``,
    ``D``, ``spectral_norm`` (λmax of the pooled ESD, squared weight units).

    ``estimator``: ``"median"`` (:func:`hill_median`, with ``xmin_pos``) or ``"peak"``
    (:func:`alpha_peak`, with ``lower``); ``farms=True``: α from :func:`farms_eigenvalues` (with
    ``farms_options``) averaged by :func:`farms_alphas`. A layer whose ESD cannot be fitted
    (fewer than 2 eigenvalues, a non-finite weight) gets α = NaN and its reason in ``status``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {estimator!r}")
    kw: dict[str, Any] = {"xmin_pos": xmin_pos} if estimator == "median" else {"lower": lower}
    rows = []
    with torch.no_grad():
        for layer in guide_layers(model):
            row: dict[str, Any] = {"layer": layer.name, "layer_type": layer.layer_type,
                                   "n_params": int(layer.weight.numel()), "eigs_num": 0,
                                   "alpha": np.nan, "D": np.nan, "spectral_norm": np.nan,
                                   "status": "ok"}  # fmt: skip
            try:
                if not torch.isfinite(layer.weight).all():
                    raise ValueError("non-finite weight")
                if farms:
                    esds = farms_eigenvalues(layer.weight, layer.layer_type, conv_norm=conv_norm,
                                             **dict(farms_options or {}))  # fmt: skip
                    row["eigs_num"] = int(sum(len(e) for e in esds))
                    row["spectral_norm"] = float(np.mean([e[-1].item() for e in esds]))
                    row["alpha"] = farms_alphas(esds, estimator, **kw)
                else:
                    ev = layer_eigenvalues(layer.weight, layer.layer_type, conv_norm)
                    fit = ESTIMATORS[estimator](ev, **kw)
                    row.update(eigs_num=len(ev), alpha=fit.alpha, D=fit.D,
                               spectral_norm=ev[-1].item())  # fmt: skip
            except (ValueError, RuntimeError) as exc:
                row["status"] = f"failed: {exc}"
            rows.append(row)
    cols = ["layer", "layer_type", "n_params", "eigs_num", "alpha", "D", "spectral_norm", "status"]
    return pd.DataFrame(rows, columns=cols)
