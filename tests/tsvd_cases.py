"""Matrices on which ``evals="tsvd"`` (exact) is checked against scikit-learn's TruncatedSVD.

Used by ``tests/test_tsvd_exact.py`` (the cheap shapes, in CI) and
``benchmarks/check_tsvd_exact.py`` (every shape, VGG's 25088 × 4096 included).

``paper_cases(limit)``
    The distinct matrix shapes of one model of each family of the default model sets (``paper2019``,
    run under method ``tsvd`` = convention ``paper``; ``natcomm2021``, method ``ww2020``), from
    ``config/studies/imagenet_paper.tsv``. Each model is built by
    :func:`htsr.weights.zoo.build_model` on the meta device (no weights allocated); the module
    owning the first matrix of each new (convention, N × M) shape is then materialised with its
    layer's default initialisation (``reset_parameters`` after ``torch.manual_seed(0)``), i.e. at
    random init with the model's real shape. Returns one state_dict per convention, one tensor per
    shape (a conv tap as a 1 × 1 kernel, a Linear weight as stored), and the shapes skipped because
    ``N·M² > limit`` (scikit-learn's cost grows as N·M²).
``heavy_tailed_cases()``
    Heavy-tailed synthetic matrices (Student-t entries, a Pareto-weighted Gaussian, a product of
    random matrices), one state_dict.
``compare_routes(state, convention)``
    Both routes' tables on ``state`` and the worst relative differences of α, xmin, D.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import htsr
from htsr.spectral.matrices import iter_layers, layer_matrices
from htsr.weights import zoo

ROOT = Path(__file__).resolve().parents[1]
#: model set of the default run -> the convention its method runs (config/config.yaml methods)
SET_CONVENTION = {"paper2019": "paper", "natcomm2021": "ww2020"}
COMPARED = ("alpha", "xmin", "D")


def _first_of_each_family() -> pd.DataFrame:
    table = pd.read_csv(ROOT / "config/studies/imagenet_paper.tsv", sep="\t", dtype=str,
                        keep_default_na=False)  # fmt: skip
    table = table[table["set"].isin(list(SET_CONVENTION))]
    return table.groupby(["set", "family"], sort=False).head(1)


def paper_cases(
    limit: float | None = None, above: float | None = None
) -> tuple[dict[str, dict], list[tuple[str, tuple]]]:
    """``({convention: state_dict}, skipped)``; see the module docstring. Shapes with N·M² above
    ``limit``, or not above ``above``, are skipped (listed in ``skipped``)."""
    states: dict[str, dict[str, torch.Tensor]] = {c: {} for c in SET_CONVENTION.values()}
    seen: set[tuple[str, tuple[int, int]]] = set()
    skipped: list[tuple[str, tuple[int, int]]] = []
    for _, row in _first_of_each_family().iterrows():
        convention = SET_CONVENTION[row["set"]]
        with torch.device("meta"):
            model = zoo.build_model(row)
        for layer in iter_layers(model):
            stack = layer_matrices(layer)
            n, m = stack.shape
            if stack.layer_type not in ("conv2d", "linear") or (n, m) in {
                s for c, s in seen if c == convention
            }:
                continue
            if stack.layer_type == "conv2d" and m < 50:  # never fitted by either convention
                continue
            seen.add((convention, (n, m)))
            if (limit is not None and n * m * m > limit) or (
                above is not None and n * m * m <= above
            ):
                skipped.append((convention, (n, m)))
                continue
            module = model.get_submodule(layer.name)
            module.to_empty(device="cpu")
            torch.manual_seed(0)
            module.reset_parameters()
            w = module.weight.detach()
            key = f"{row['model'].replace('.', '_')}__{layer.name.replace('.', '_')}"
            tap = w if w.ndim == 2 else w[:, :, :1, :1]  # the tap (0, 0) as a 1 x 1 kernel
            states[convention][f"{key}.weight"] = tap.clone()
    return states, skipped


def heavy_tailed_cases(seed: int = 0) -> dict[str, torch.Tensor]:
    """Heavy-tailed synthetic matrices, as Linear weights (rows × columns)."""
    rng = np.random.default_rng(seed)
    cases = {
        "student_t2_300x200": rng.standard_t(2.0, size=(300, 200)),
        "student_t3_200x500": rng.standard_t(3.0, size=(200, 500)),
        "cauchy_400x120": rng.standard_cauchy(size=(400, 120)),
        "pareto_cols_256x256": rng.standard_normal((256, 256)) * (rng.pareto(1.5, size=256) + 1.0),
        "product_3_300x150": np.linalg.multi_dot(
            [rng.standard_normal((300, 300)) for _ in range(3)]
        )[:, :150],  # fmt: skip
    }
    return {f"{k}.weight": torch.from_numpy(v) for k, v in cases.items()}


def compare_routes(state: dict[str, torch.Tensor], convention: str) -> dict[str, Any]:
    """Both routes' tables (``exact_tsvd``, ``sklearn``) and, over the rows both fitted, the
    worst relative difference of each of α, xmin, D (``worst``) and the rows compared."""
    kw: dict[str, Any] = {"dtype": "float64", "keep_evals": True}
    ours = htsr.analyze(state, convention, evals="tsvd", **kw)
    ref = htsr.analyze(state, convention, evals="tsvd_sklearn", **kw)
    fitted = (ours["status"] == "ok") & (ref["status"] == "ok")
    worst = {}
    for col in COMPARED:
        a, b = ours.loc[fitted, col].astype(float), ref.loc[fitted, col].astype(float)
        worst[col] = float((np.abs(a - b) / np.abs(b)).max()) if fitted.any() else np.nan
    evals = [
        float(np.max(np.abs(x - y) / y.max()))
        for x, y in zip(ours.loc[fitted, "evals"], ref.loc[fitted, "evals"], strict=True)
    ]
    worst["evals"] = max(evals) if evals else np.nan
    return {"ours": ours, "ref": ref, "fitted": int(fitted.sum()), "worst": worst}
