"""The ``htsr`` command line: per-matrix spectra of a checkpoint, and model-level summaries.

::

    htsr analyze MODEL.pth -o table.tsv [--convention paper|ww] [--dtype float32|float64]
                 [--device cpu|cuda] [--min-dim N] [--fit truncated|untruncated|ww]
                 [--include-embeddings] [--progress]
    htsr summarize table.tsv [table2.tsv ...]

``analyze`` writes the table of :func:`htsr.metrics.analyze` as TSV (atomically: a temporary
file in the same directory, then ``os.replace``) and prints one summary line. Errors (a bad
checkpoint, a bad option) print one line ``htsr: error: ...`` naming the file, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from htsr.provenance import write_tsv


def summary_line(name: str, summary: pd.Series) -> str:
    """One line: α̂, mean log-norm, ᾱ and how many matrices were used of how many rows."""
    return (
        f"{name}: alpha_weighted={summary['alpha_weighted']:.4f} "
        f"log_norm={summary['log_norm']:.4f} alpha={summary['alpha']:.4f} "
        f"matrices={int(summary['n_matrices'])}/{int(summary['n_rows'])} ok"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="htsr", description="Heavy-tailed spectral metrics.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="per-matrix spectra and metrics of a checkpoint")
    a.add_argument("checkpoint", help=".pth/.pt state_dict or .safetensors file")
    a.add_argument("-o", "--output", required=True, help="TSV file to write")
    a.add_argument("--convention", choices=("paper", "ww"), default="paper")
    a.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default=None,
        help="default: float32 on CPU, float64 on CUDA",
    )
    a.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu with a warning)")
    a.add_argument("--min-dim", type=int, default=None, help="paper: min(N,M); ww: min_evals")
    a.add_argument("--fit", choices=("truncated", "untruncated", "ww"), default=None)
    a.add_argument("--include-embeddings", action="store_true")
    a.add_argument("--progress", action="store_true", help="progress bar on stderr")
    s = sub.add_parser("summarize", help="model-level means of analyze tables")
    s.add_argument("tables", nargs="+", help="TSV files written by 'htsr analyze'")
    return p


def _analyze(args: argparse.Namespace) -> int:
    from htsr.metrics import analyze, summarize

    table = analyze(
        args.checkpoint,
        args.convention,
        min_dim=args.min_dim,
        fit=args.fit,
        dtype=args.dtype,
        device=args.device,
        include_embeddings=args.include_embeddings,
        progress=args.progress,
    )
    write_tsv(args.output, table)
    print(summary_line(args.checkpoint, summarize(table)))
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from htsr.metrics import summarize

    for path in args.tables:
        if not Path(path).is_file():
            raise ValueError(f"{path}: file not found")
        try:
            table = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a readable TSV table ({exc})") from exc
        try:
            summary = summarize(table)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        print(summary_line(path, summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``htsr`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _analyze(args) if args.command == "analyze" else _summarize(args)
    except (ValueError, OSError, TypeError) as exc:  # CheckpointError is a ValueError
        msg = " ".join(str(exc).split())
        print(f"htsr: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
