"""Reference spectra and the two ``powerlaw`` versions that ``htsr.fit`` reproduces.

* ``CASES`` names every test spectrum and how to regenerate it from a fixed seed
  (:func:`make_spectrum`); ``spectrum_digest`` fingerprints it so stored reference values are
  only ever compared on the very same numbers.
* :func:`run_powerlaw` fits spectra with powerlaw 2.0.0 (installed) or powerlaw 1.4.6 (the
  vendored, checksummed sdist ``powerlaw-1.4.6.tar.gz``, extracted and put first on
  ``PYTHONPATH`` of a subprocess; no network needed) via ``powerlaw_worker.py``.
* ``powerlaw_refs.json`` holds the results for all cases and ``powerlaw_refs_spectra.npz`` the
  very spectra they were computed from (:func:`load_spectra`); ``make_powerlaw_refs.py``
  rewrites both. The tests fit the stored spectra, not regenerated ones: a spectrum regenerated
  on another processor can differ in its last bits (numpy's SIMD ``power``, LAPACK's SVD), and
  an exact fit's xmin is one of the eigenvalues, compared to the bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SDIST_146 = HERE / "powerlaw-1.4.6.tar.gz"
SDIST_146_SHA256 = "7f9d9cb39ad23af8f6cae165d47020ee8b7fa58f380c356de91ae2625577699e"
REFS_JSON = HERE / "powerlaw_refs.json"
SPECTRA_NPZ = HERE / "powerlaw_refs_spectra.npz"
WORKER = HERE / "powerlaw_worker.py"


@dataclass(frozen=True)
class Case:
    """One test spectrum. ``live``: cheap enough to rerun the reference packages in CI."""

    name: str
    kind: str  # pareto | bulk_tail | rounded | student_t | layer
    params: dict[str, Any] = field(default_factory=dict)
    live: bool = False


def _pareto(alpha: float, n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """``n`` draws of ``p(x) = (alpha-1)/scale (x/scale)**-alpha`` on ``[scale, inf)``."""
    u = np.random.default_rng(seed).random(n)
    return scale * (1.0 - u) ** (-1.0 / (alpha - 1.0))


CASES: tuple[Case, ...] = (
    Case("pareto_a1.5_n50", "pareto", {"alpha": 1.5, "n": 50, "seed": 11}, live=True),
    Case("pareto_a1.5_n1000", "pareto", {"alpha": 1.5, "n": 1000, "seed": 12}),
    Case("pareto_a2_n200", "pareto", {"alpha": 2.0, "n": 200, "seed": 13}, live=True),
    Case("pareto_a2_n5000", "pareto", {"alpha": 2.0, "n": 5000, "seed": 14}),
    Case("pareto_a2.5_n50", "pareto", {"alpha": 2.5, "n": 50, "seed": 15}),
    Case("pareto_a2.5_n1000", "pareto", {"alpha": 2.5, "n": 1000, "seed": 16}),
    Case("pareto_a3_n12", "pareto", {"alpha": 3.0, "n": 12, "seed": 17}, live=True),
    Case("pareto_a3_n200", "pareto", {"alpha": 3.0, "n": 200, "seed": 18}),
    Case("pareto_a3_n1000", "pareto", {"alpha": 3.0, "n": 1000, "seed": 19}),
    Case("pareto_a4_n50", "pareto", {"alpha": 4.0, "n": 50, "seed": 20}),
    Case("pareto_a4_n5000", "pareto", {"alpha": 4.0, "n": 5000, "seed": 21}),
    Case("pareto_a6_n200", "pareto", {"alpha": 6.0, "n": 200, "seed": 22}, live=True),
    Case("pareto_a6_n1000", "pareto", {"alpha": 6.0, "n": 1000, "seed": 23}),
    Case("pareto_a8_n50", "pareto", {"alpha": 8.0, "n": 50, "seed": 24}),
    Case("pareto_a8_n200", "pareto", {"alpha": 8.0, "n": 200, "seed": 25}),
    Case("bulk_tail_a2.5_n1000", "bulk_tail", {"alpha": 2.5, "n": 1000, "seed": 31}),
    Case("bulk_tail_a4_n1000", "bulk_tail", {"alpha": 4.0, "n": 1000, "seed": 32}),
    Case("rounded_a2.5_n500", "rounded", {"alpha": 2.5, "n": 500, "seed": 33}, live=True),
    Case("student_t_df1.5_300x600", "student_t", {"df": 1.5, "shape": (600, 300), "seed": 41}),
    Case("student_t_df3_400x1000", "student_t", {"df": 3.0, "shape": (1000, 400), "seed": 42}),
    Case("student_t_df5_500x500", "student_t", {"df": 5.0, "shape": (500, 500), "seed": 43}),
    Case("resnet18_conv1", "layer", {"arch": "resnet18", "param": "conv1.weight"}, live=True),
    Case(
        "resnet18_layer4.1.conv2_11",
        "layer",
        {"arch": "resnet18", "param": "layer4.1.conv2.weight", "slice": (1, 1)},
    ),
    Case("resnet18_fc", "layer", {"arch": "resnet18", "param": "fc.weight"}),
    Case("vgg11_classifier.6", "layer", {"arch": "vgg11", "param": "classifier.6.weight"}),
)

CASES_BY_NAME = {case.name: case for case in CASES}

_MODELS: dict[str, Any] = {}


def _layer_weight(arch: str, param: str) -> np.ndarray:
    """A weight of ``torchvision.models.<arch>(weights=None)`` built after ``manual_seed(0)``."""
    import torch
    import torchvision

    if arch not in _MODELS:
        torch.manual_seed(0)
        _MODELS[arch] = getattr(torchvision.models, arch)(weights=None).state_dict()
    return _MODELS[arch][param].detach().to(torch.float64).numpy()


def _squared_singular_values(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``W^T W`` (the ESD), ascending."""
    return np.sort(np.linalg.svd(w, compute_uv=False) ** 2)


def make_spectrum(case: Case) -> np.ndarray:
    """Regenerate the eigenvalues of ``case`` (float64, ascending) from its fixed seed."""
    p = case.params
    if case.kind == "pareto":
        x = _pareto(p["alpha"], p["n"], p["seed"], scale=0.01)
    elif case.kind == "rounded":  # many ties
        x = np.round(_pareto(p["alpha"], p["n"], p["seed"]), 2)
    elif case.kind == "bulk_tail":  # Marchenko-Pastur bulk (ratio 1/2) + a Pareto tail above it
        rng = np.random.default_rng(p["seed"])
        m = int(0.9 * p["n"])
        g = rng.standard_normal((2 * m, m))
        bulk = _squared_singular_values(g) / (2 * m)
        x = np.concatenate([bulk, _pareto(p["alpha"], p["n"] - m, p["seed"] + 1000, scale=3.0)])
    elif case.kind == "student_t":
        rng = np.random.default_rng(p["seed"])
        rows, cols = p["shape"]
        x = _squared_singular_values(rng.standard_t(p["df"], size=(rows, cols))) / rows
    elif case.kind == "layer":
        w = _layer_weight(p["arch"], p["param"])
        if "slice" in p:
            w = w[:, :, p["slice"][0], p["slice"][1]]
        x = _squared_singular_values(w.reshape(w.shape[0], -1))
    else:
        raise ValueError(f"case {case.name}: unknown kind {case.kind!r}")
    return np.sort(np.asarray(x, dtype=np.float64))


def spectrum_digest(x: np.ndarray) -> str:
    """sha256 of the float64 bytes of ``x`` (C order)."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).tobytes()).hexdigest()


def extract_powerlaw_146(dest: Path) -> Path:
    """Unpack ``powerlaw.py`` of the vendored 1.4.6 sdist into ``dest``; return ``dest``."""
    digest = hashlib.sha256(SDIST_146.read_bytes()).hexdigest()
    if digest != SDIST_146_SHA256:
        raise RuntimeError(f"{SDIST_146}: sha256 {digest} != expected {SDIST_146_SHA256}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(SDIST_146) as tar:
        member = tar.getmember("powerlaw-1.4.6/powerlaw.py")
        data = tar.extractfile(member)
        if data is None:
            raise RuntimeError(f"{SDIST_146}: powerlaw.py is not a regular file")
        target = dest / "powerlaw.py"
        tmp = dest / "powerlaw.py.tmp"
        tmp.write_bytes(data.read())
        os.replace(tmp, target)
    return dest


def run_powerlaw(
    spectra: dict[str, np.ndarray], mode: str, *, powerlaw_146_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Fit ``spectra`` with ``powerlaw.Fit`` in a subprocess (see ``powerlaw_worker.py``).

    ``powerlaw_146_dir``: a directory holding powerlaw 1.4.6's ``powerlaw.py``
    (:func:`extract_powerlaw_146`), put first on the subprocess's ``PYTHONPATH``; None runs the
    installed powerlaw, which must be 2.0.0. Raises if the subprocess imported another module.
    """
    env = dict(os.environ)
    if powerlaw_146_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(powerlaw_146_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
    elif version("powerlaw") != "2.0.0":
        raise RuntimeError(f"installed powerlaw is {version('powerlaw')}, the tests need 2.0.0")
    with tempfile.TemporaryDirectory(prefix="htsr-powerlaw-") as tmp:
        npz = Path(tmp) / "spectra.npz"
        out = Path(tmp) / "out.json"
        np.savez(npz, **spectra)
        proc = subprocess.run(
            [sys.executable, str(WORKER), str(npz), str(out), mode],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"powerlaw worker ({mode}) failed:\n{proc.stderr[-4000:]}")
        payload = json.loads(out.read_text())
    module_file = Path(payload["module_file"])
    if powerlaw_146_dir is not None and module_file != (powerlaw_146_dir / "powerlaw.py").resolve():
        raise RuntimeError(f"worker imported {module_file}, not powerlaw 1.4.6")
    if powerlaw_146_dir is None and module_file.parent.name != "powerlaw":
        raise RuntimeError(f"worker imported {module_file}, not the installed powerlaw 2.0.0")
    return payload["results"]


def load_refs() -> dict[str, Any]:
    """The stored reference values (``powerlaw_refs.json``)."""
    return json.loads(REFS_JSON.read_text())


def load_spectra() -> dict[str, np.ndarray]:
    """The stored spectra the reference values were computed from (``powerlaw_refs_spectra.npz``,
    float64, ascending), by case name."""
    with np.load(SPECTRA_NPZ, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}
