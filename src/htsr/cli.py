"""The ``htsr`` command line: per-matrix spectra of a checkpoint, and model-level summaries.

::

    htsr analyze MODEL.pth|FOLDER|hf://OWNER/REPO[@REV] [-o table.tsv|.csv|.parquet] [--json]
                 [--convention paper|ww] [--dtype float32|float64]
                 [--device cpu|cuda] [--min-dim N] [--min-evals N] [--fit truncated|untruncated|ww]
                 [--include-embeddings] [--progress]
                 [--randomize] [--mp-fit] [--detX] [--vectors] [--fix-fingers xmin_peak|clip_xmax]
                 [--fit PL|TPL|E_TPL] [--distribution-compare] [--intra] [--seed S]
    htsr describe MODEL.pth|FOLDER|hf://... [-o table.tsv] [--convention ...] [--min-dim N]
    htsr summarize table.tsv [table2.tsv ...] [--min-evals N]
    htsr smooth MODEL -o SMOOTHED [--method detX|percent] [--percent 0.8] [--svd exact|randomized]
                [--report r.tsv]
    htsr sharpen MODEL -o SHARPENED [--seed 0] [--report r.tsv]
    htsr predict MODEL.pth --models results/models.tsv --family FAMILY [--set SET]
                 [--metric alpha_weighted] [--quality top1] [--json]
    htsr esd MODEL.pth --layer NAME [--slice i,j] -o esd.png [--convention paper|ww|ww2020]
    htsr esd MODEL.pth --all -o esd.pdf
    htsr compare A.pth B.pth -o table.tsv [--figure compare.png] [--delta] [--distances]
    htsr track CHECKPOINT... | DIRECTORY -o track.tsv [--figure track.png]
    htsr guide CHECKPOINT --method tempbalance|modelbalancing|alphadecay|alphapruning
               [--sparsity S] [--epsilon E] [--farms] [--lower published|corrected]
               [--json] [-o table.tsv]

``analyze`` prints one summary line and, without ``-o``, the table of
:func:`htsr.spectral.metrics.analyze` in columns; with ``-o`` it writes the table as TSV, CSV or
parquet by the suffix (atomically: a temporary file in the same directory, then ``os.replace``);
with ``--json`` the summary is one JSON object. Every layer that got no fit is listed after it,
with why (its status in words), and so is every tensor no layer was made from (an embedding left
out, a parameter that is not a layer weight). ``describe`` lists the matrices analyze would
analyse, from the checkpoint's headers only (:func:`htsr.weights.describe.describe`). Errors (a
bad checkpoint, a bad option) print one line ``htsr: error: ...`` naming the file, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from htsr.io import atomic_output, write_tsv


def summary_line(name: str, summary: pd.Series) -> str:
    """One line: α̂, mean log-norm, ᾱ and how many matrices were analysed of how many rows."""
    return (
        f"{name}: alpha_weighted={summary['alpha_weighted']:.4f} "
        f"log_norm={summary['log_norm']:.4f} alpha={summary['alpha']:.4f}, "
        f"{int(summary['n_matrices'])} of {int(summary['n_rows'])} matrices analysed"
    )


class NothingAnalysed(ValueError):
    """A checkpoint none of whose matrices could be analysed (the message says why)."""


def _require_some(name: str, table: pd.DataFrame) -> None:
    if table.empty:
        raise NothingAnalysed(f"{name}: no weight matrices found (no Linear/Conv weights)")
    if not (table["status"] == "ok").any():
        from htsr.spectral.metrics import status_counts

        raise NothingAnalysed(
            f"{name}: none of its {len(table)} matrices could be analysed"
            f" ({status_counts(table)}); see the status column (docs/library.md)"
        )


CHECKPOINT_HELP = (
    "a checkpoint file (a torch.save zip or legacy pickle, safetensors, or a zip holding one;"
    " recognised by its content, whatever its suffix), a folder in the Hugging Face hub's layout"
    " (one weights file or a shard index and its shards, beside config.json), or"
    " hf://OWNER/REPO[@REVISION] (downloaded and verified; $HF_ENDPOINT, cache $HTSR_CACHE)"
)


def _lora_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base",
        default=None,
        metavar="CHECKPOINT",
        help="with a LoRA adapter: its base model, to analyse W + s·B·A as well",
    )
    p.add_argument(
        "--no-lora-scale",
        action="store_true",
        help="LoRA: B·A unscaled, as WeightWatcher (default: s = alpha/r)",
    )


def _source(args: argparse.Namespace) -> object:
    """The checkpoint path, or for a LoRA adapter (or with ``--base``) its lazy state_dict."""
    from htsr.weights.lora import is_adapter, open_adapter

    if args.base is not None or is_adapter(args.checkpoint):
        from htsr.weights.analysis import open_weights

        base = open_weights(args.base) if args.base is not None else None
        return open_adapter(args.checkpoint, base=base, scale=not args.no_lora_scale)
    return args.checkpoint


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="htsr", description="Heavy-tailed spectral metrics.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="per-matrix spectra and metrics of a checkpoint")
    a.add_argument("checkpoint", help=CHECKPOINT_HELP)
    a.add_argument("-o", "--output", default=None,
                   help="table to write: .tsv, .csv or .parquet (default: print it)")  # fmt: skip
    a.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    a.add_argument("--convention", choices=("paper", "ww", "ww2020"), default="paper")
    a.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default=None,
        help="default: float32 on CPU, float64 on CUDA",
    )
    a.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu with a warning)")
    a.add_argument("--min-dim", type=int, default=None, help="paper: min(N,M); ww: min_evals")
    a.add_argument(
        "--fit",
        choices=("truncated", "untruncated", "ww", "PL", "TPL", "E_TPL"),
        default=None,
        help="power-law fit; TPL/E_TPL: WeightWatcher's truncated power law (adds Lambda)",
    )
    a.add_argument(
        "--min-evals",
        type=int,
        default=8,
        metavar="N",
        help="warn on a fitted row with fewer than N eigenvalues (default 8, WW's)",
    )
    a.add_argument("--include-embeddings", action="store_true")
    _lora_options(a)
    a.add_argument("--progress", action="store_true", help="progress bar on stderr")
    a.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="95%% interval of each alpha (N)"
    )
    d = a.add_argument_group("WeightWatcher's diagnostics (docs/weightwatcher.md)")
    d.add_argument("--randomize", action="store_true", help="correlation traps (shuffled ESD)")
    d.add_argument("--mp-fit", action="store_true", help="Marchenko-Pastur fit and its spikes")
    d.add_argument("--detX", "--detx", action="store_true", dest="detX", help="det X = 1 tail")
    d.add_argument("--vectors", action="store_true", help="eigenvector localization")
    d.add_argument("--fix-fingers", choices=("xmin_peak", "clip_xmax"), default=None)
    d.add_argument(
        "--distribution-compare",
        action="store_true",
        help="likelihood ratio of the power law vs lognormal and exponential",
    )
    d.add_argument("--intra", action="store_true", help="between consecutive layers")
    d.add_argument("--seed", type=int, default=0, help="seed of --randomize/--intra draws")
    d = sub.add_parser("describe", help="the matrices analyze would analyse; nothing computed")
    d.add_argument("checkpoint", help=CHECKPOINT_HELP)
    d.add_argument("-o", "--output", default=None, help=".tsv/.csv/.parquet (default: print)")
    d.add_argument("--convention", choices=("paper", "ww", "ww2020"), default="paper")
    d.add_argument("--min-dim", type=int, default=None, help="paper: min(N,M); ww: min_evals")
    d.add_argument("--include-embeddings", action="store_true")
    _lora_options(d)
    sm = sub.add_parser("smooth", help="WeightWatcher's SVD smoothing: keep each layer's tail")
    sm.add_argument("checkpoint", help="a checkpoint file (.safetensors/.pth/.bin) or folder")
    sm.add_argument("-o", "--output", required=True, help="the edited checkpoint, same format")
    sm.add_argument("--method", choices=("detX", "percent"), default="detX")
    sm.add_argument("--percent", type=float, default=0.8, help="percent: fraction of M kept")
    sm.add_argument(
        "--svd",
        choices=("exact", "randomized"),
        default="exact",
        help="randomized: WW's TruncatedSVD, to reproduce its weights",
    )
    sm.add_argument("--report", default=None, help="write the per-layer report (.tsv/.csv)")
    sh = sub.add_parser("sharpen", help="WeightWatcher's SVD sharpening: remove the top spikes")
    sh.add_argument("checkpoint", help="a checkpoint file (.safetensors/.pth/.bin) or folder")
    sh.add_argument("-o", "--output", required=True, help="the edited checkpoint, same format")
    sh.add_argument("--seed", type=int, default=0, help="seed of the entry permutations")
    sh.add_argument("--report", default=None, help="write the per-layer report (.tsv/.csv)")
    s = sub.add_parser("summarize", help="model-level means of analyze tables")
    s.add_argument("tables", nargs="+", help="TSV files written by 'htsr analyze'")
    s.add_argument(
        "--min-evals",
        type=int,
        default=None,
        metavar="N",
        help="leave out rows with fewer than N eigenvalues (default: keep all)",
    )
    r = sub.add_parser(
        "predict", help="predict a checkpoint's quality from its family's trend, with a 95%% PI"
    )
    r.add_argument("checkpoint", help=CHECKPOINT_HELP)
    r.add_argument("--models", required=True, help="a models table (results/models.tsv)")
    r.add_argument("--family", required=True, help="the family whose trend predicts")
    r.add_argument("--set", default=None, help="the model set, if the family is in several")
    r.add_argument("--metric", default="alpha_weighted")
    r.add_argument("--quality", default="top1")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    e = sub.add_parser("esd", help="the log-log ESD of a layer's matrix with its power-law fit")
    e.add_argument("checkpoint", help=CHECKPOINT_HELP)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--layer", help="the layer's name, as in the analyze table")
    which.add_argument("--all", action="store_true", help="every matrix, one page each (PDF)")
    e.add_argument(
        "--slice", default=None, help="conv tap i,j (paper convention); default: largest λmax"
    )
    e.add_argument("-o", "--output", required=True, help=".png/.pdf (--all: .pdf)")
    e.add_argument("--convention", choices=("paper", "ww", "ww2020"), default="paper")
    c = sub.add_parser("compare", help="two checkpoints of one architecture, matrix by matrix")
    c.add_argument("a", help="checkpoint A (e.g. the base model)")
    c.add_argument("b", help="checkpoint B (e.g. its fine-tuned version)")
    c.add_argument("-o", "--output", required=True, help="TSV file to write")
    c.add_argument("--figure", default=None, help="α by depth for both (.png/.pdf)")
    c.add_argument("--delta", action="store_true", help="also analyse the spectra of W_B - W_A")
    c.add_argument(
        "--distances",
        action="store_true",
        help="add WeightWatcher's distances per layer: raw, euclidean, cka",
    )
    c.add_argument("--convention", choices=("paper", "ww", "ww2020"), default="paper")
    g = sub.add_parser(
        "guide",
        help="per-layer learning-rate/weight-decay factors or pruning"
        " sparsities of the published alpha-guided methods (docs/guide.md)",
    )
    g.add_argument("checkpoint", help=CHECKPOINT_HELP)
    g.add_argument(
        "--method",
        required=True,
        choices=("tempbalance", "modelbalancing", "alphadecay", "alphapruning"),
    )
    g.add_argument("--sparsity", type=float, help="alphapruning: target mean sparsity in [0, 1)")
    g.add_argument("--epsilon", type=float, default=0.3, help="alphapruning: map onto [1-e, 1+e]")
    g.add_argument(
        "--lower",
        choices=("published", "corrected"),
        default="published",
        help="alpha_peak's lower xmin bound (docs/guide.md: the published quirk)",
    )
    g.add_argument("--farms", action="store_true", help="alpha from FARMS submatrices")
    g.add_argument("--json", action="store_true", help="print the summary as JSON")
    g.add_argument("-o", "--output", help="TSV file to write, one row per layer")
    t = sub.add_parser("track", help="model-level metrics of a training run's checkpoints")
    t.add_argument("checkpoints", nargs="+", help="checkpoint files or a directory of them")
    t.add_argument("-o", "--output", required=True, help="TSV file to write")
    t.add_argument("--figure", default=None, help="metrics and α heatmap against step")
    t.add_argument("--convention", choices=("paper", "ww", "ww2020"), default="paper")
    return p


#: Columns of the table ``analyze`` prints, and their number formats.
SHOWN = {"layer": None, "slice": None, "layer_type": None, "N": None, "M": None,
         "num_evals": None, "alpha": "{:.3f}", "alpha_weighted": "{:.3f}", "log_norm": "{:.3f}",
         "lambda_max": "{:.4g}", "D": "{:.3f}", "status": None, "warning": None}  # fmt: skip


def readable_table(table: pd.DataFrame) -> str:
    """The analyze table as aligned text: the :data:`SHOWN` columns, NaN as blank."""
    out = table[[c for c in SHOWN if c in table.columns]].copy()
    for col, fmt in SHOWN.items():
        if fmt and col in out:
            out[col] = [fmt.format(v) if np.isfinite(v) else "" for v in out[col].astype(float)]
    return text_table(out.fillna("").astype(str))


def text_table(table: pd.DataFrame) -> str:
    """A table as aligned text, text columns left-aligned and numbers right-aligned."""
    fmt = {}
    for col in table.columns:
        if not pd.api.types.is_numeric_dtype(table[col]):
            width = max([len(str(col)), *map(len, table[col].astype(str))])
            fmt[col] = f"{{:<{width}}}".format
    return table.to_string(index=False, justify="left", formatters=fmt)


def skipped_lines(table: pd.DataFrame, unused: pd.DataFrame, convention: str,
                  min_dim: int | None) -> list[str]:  # fmt: skip
    """One line per layer with rows that got no fit (status and why, with the slice count),
    then one per tensor that no layer was made from (``unused``: :func:`describe`'s rows)."""
    from htsr.weights.describe import status_reason

    lines = []
    bad = table[table["status"] != "ok"]
    for (layer, status), rows in bad.groupby(["layer", "status"], sort=False):
        n = f" ({len(rows)} slices)" if len(rows) > 1 else ""
        why = status_reason(str(status), convention=convention, min_dim=min_dim)
        lines.append(f"  {layer}{n}: {status}" + (f": {why}" if why else ""))
    for _, row in unused.iterrows():
        lines.append(f"  {row['layer']} ({row['shape']}): {row['status']}: {row['reason']}")
    return lines


def _unused_tensors(args: argparse.Namespace) -> pd.DataFrame:
    """The tensors of the checkpoint that no layer was made from (``describe``'s rows)."""
    from htsr.weights.describe import describe

    table = describe(_source(args), args.convention, min_dim=args.min_dim,
                     include_embeddings=args.include_embeddings)  # fmt: skip
    return table[table["layer_type"] == ""]


def _json_value(v: object) -> object:
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    return v.item() if isinstance(v, np.generic) else v


def _analyze(args: argparse.Namespace) -> int:
    import json

    from htsr.io import TABLE_SUFFIXES, write_table
    from htsr.studies.trends import summarize
    from htsr.weights.analysis import analyze

    if args.output and Path(args.output).suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"{args.output}: -o takes a {', '.join(TABLE_SUFFIXES)} file")
    table = analyze(
        _source(args),
        args.convention,
        min_dim=args.min_dim,
        fit=args.fit,
        dtype=args.dtype,
        device=args.device,
        include_embeddings=args.include_embeddings,
        progress=args.progress,
        bootstrap=args.bootstrap,
        randomize=args.randomize,
        mp_fit=args.mp_fit,
        detX=args.detX,
        vectors=args.vectors,
        fix_fingers=args.fix_fingers,
        distribution_compare=args.distribution_compare,
        intra=args.intra,
        seed=args.seed,
        min_evals=args.min_evals,
    )
    if args.output:
        write_table(args.output, table)
    _require_some(args.checkpoint, table)  # the table is written either way, for its statuses
    summary = summarize(table, convention=args.convention)
    unused = _unused_tensors(args)
    skipped = skipped_lines(table, unused, args.convention, args.min_dim)
    if args.json:
        bad = table[table["status"] != "ok"]
        out = {"checkpoint": args.checkpoint, "convention": args.convention}
        out |= {k: _json_value(v) for k, v in summary.items()}
        out |= {"n_matrices": int(summary["n_matrices"]), "n_rows": int(summary["n_rows"]),
                "not_analysed": {str(k): int(v) for k, v in bad["status"].value_counts().items()},
                "not_layers": [{"tensor": r["layer"], "status": r["status"],
                                "reason": r["reason"]} for _, r in unused.iterrows()]}  # fmt: skip
        print(json.dumps(out))
        return 0
    print(summary_line(args.checkpoint, summary))
    if not args.output:
        print(readable_table(table))
    if skipped:
        print(f"not analysed ({len(table) - int(summary['n_matrices'])} rows,"
              f" {len(unused)} other tensors):")  # fmt: skip
        print("\n".join(skipped))
    return 0


def _describe(args: argparse.Namespace) -> int:
    from htsr.io import write_table
    from htsr.weights.describe import describe

    table = describe(_source(args), args.convention, min_dim=args.min_dim,
                     include_embeddings=args.include_embeddings)  # fmt: skip
    if args.output:
        write_table(args.output, table)
    else:
        print(text_table(table.drop(columns="reason")))
    layers = table[table["layer_type"] != ""]
    ok = layers[layers["status"] == "ok"]
    print(f"{args.checkpoint}: {len(layers)} layers, {int(layers['rows'].sum())} rows"
          f" ({args.convention}), {len(ok)} layers to fit; {len(table) - len(layers)}"
          " other tensors of 2+ dimensions")  # fmt: skip
    for _, row in table[table["status"] != "ok"].iterrows():
        print(f"  {row['layer']}: {row['status']}: {row['reason']}")
    return 0


def _edit(args: argparse.Namespace) -> int:
    from htsr.io import write_table
    from htsr.weights.edit import svd_sharpen, svd_smooth
    from htsr.weights.lora import is_adapter
    from htsr.weights.write import write_edited

    if is_adapter(args.checkpoint):
        raise ValueError(f"{args.checkpoint}: a LoRA adapter; {args.command} edits a model's"
                         " checkpoint (merge the adapter into its base first)")  # fmt: skip
    if args.command == "smooth":
        edits, report = svd_smooth(args.checkpoint, method=args.method, percent=args.percent,
                                   svd=args.svd)  # fmt: skip
    else:
        edits, report = svd_sharpen(args.checkpoint, seed=args.seed)
    files = write_edited(args.checkpoint, args.output, edits)
    if args.report:
        write_table(args.report, report)
    shown = report.assign(energy_removed=report["energy_removed"].map("{:.4f}".format))
    print(text_table(shown))
    changed = report[report["removed"] > 0]
    print(f"{args.output}: {len(changed)} of {len(report)} layers changed,"
          f" {int(changed['removed'].sum())} singular components removed (per matrix;"
          f" each conv tap loses as many), written as {len(files)} weights file(s)")  # fmt: skip
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from htsr.studies.trends import summarize

    for path in args.tables:
        if not Path(path).is_file():
            raise ValueError(f"{path}: file not found")
        try:
            table = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a readable TSV table ({exc})") from exc
        try:
            summary = summarize(table, min_evals=args.min_evals)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        print(summary_line(path, summary))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from htsr.studies.predict import predict_quality
    from htsr.studies.trends import summarize
    from htsr.weights.analysis import analyze

    path = Path(args.models)
    if not path.is_file():
        raise ValueError(f"{path}: models table not found")
    models = pd.read_csv(path, sep="\t")
    # analyse the checkpoint the way the table was made (its convention and eigenvalue method)
    convention = str(models["convention"].iloc[0]) if "convention" in models else "paper"
    evals = str(models["evals"].iloc[0]) if "evals" in models else "exact"
    summary = summarize(analyze(args.checkpoint, convention, evals=evals), convention=convention)
    if args.metric not in summary.index:
        raise ValueError(f"unknown metric {args.metric!r} (one of {', '.join(summary.index)})")
    p = predict_quality(models, args.family, float(summary[args.metric]), metric=args.metric,
                        quality=args.quality, set_name=args.set)  # fmt: skip
    if args.json:
        keys = ("predicted", "low", "high", "n", "r2", "metric", "quality", "family")
        print(json.dumps({k: getattr(p, k) for k in keys} | {"value": p.value,
                          "extrapolation": p.extrapolation, "convention": convention}))  # fmt: skip
        return 0
    print(
        f"{args.checkpoint}: {args.metric} = {p.value:.4f} ({convention}, {evals} eigenvalues)\n"
        f"predicted {args.quality} = {p.predicted:.2f}, 95% prediction interval"
        f" [{p.low:.2f}, {p.high:.2f}]\n"
        f"from family {args.family}: n = {p.n}, R² = {p.r2:.3f},"
        f" {args.metric} range [{p.x_min:.4f}, {p.x_max:.4f}]"
    )
    if p.extrapolation:
        print(
            f"warning: {args.metric} = {p.value:.4f} lies outside the family's range"
            f" [{p.x_min:.4f}, {p.x_max:.4f}]: this is an extrapolation, trust it less"
        )
    return 0


def _esd(args: argparse.Namespace) -> int:
    from htsr.figures.commands import esd_row_figure
    from htsr.figures.common import save_figure
    from htsr.weights.analysis import analyze

    table = analyze(args.checkpoint, args.convention, keep_evals=True)
    name = Path(args.checkpoint).name
    if args.all:
        if not args.output.endswith(".pdf"):
            raise ValueError(
                f"--all writes one page per matrix: -o must be a .pdf, got {args.output}"
            )
        from matplotlib.backends.backend_pdf import PdfPages

        with atomic_output(args.output) as tmp, PdfPages(tmp) as pdf:
            for _, row in table.iterrows():
                pdf.savefig(esd_row_figure(row, name))
        print(f"{args.output}: {len(table)} pages, one per matrix of {args.checkpoint}")
        return 0
    rows = table[table["layer"] == args.layer]
    if rows.empty:
        known = ", ".join(dict.fromkeys(table["layer"]))
        raise ValueError(f"{args.checkpoint}: no layer {args.layer!r} (layers: {known})")
    if args.slice is not None:
        rows = rows[rows["slice"].astype(str) == args.slice]
        if rows.empty:
            slices = ", ".join(map(str, table.loc[table["layer"] == args.layer, "slice"]))
            raise ValueError(f"{args.layer}: no slice {args.slice!r} (slices: {slices})")
    elif len(rows) > 1:
        rows = rows.iloc[[int(np.argmax(rows["lambda_max"].fillna(-1).to_numpy(float)))]]
    row = rows.iloc[0]
    save_figure(esd_row_figure(row, name), [args.output])
    where = f" [{row['slice']}]" if str(row["slice"]) not in ("", "nan") else ""
    print(f"{args.output}: {args.layer}{where} alpha={row['alpha']:.3f} D={row['D']:.3f}"
          f" status={row['status']}")  # fmt: skip
    return 0


def _delta_state_dict(a: str, b: str) -> dict:
    """W_B - W_A for every tensor the two checkpoints share with the same shape."""
    from htsr.weights.checkpoints import load_state_dict

    sa, sb = load_state_dict(a), load_state_dict(b)
    common = [
        k for k in sa if k in sb and getattr(sa[k], "shape", None) == getattr(sb[k], "shape", 0)
    ]
    if not common:
        raise ValueError(f"{a} and {b} share no tensor of the same name and shape")
    return {k: sb[k].float() - sa[k].float() for k in common if sa[k].is_floating_point()}


def _compare(args: argparse.Namespace) -> int:
    from htsr.figures.commands import compare_figure
    from htsr.figures.common import save_figure
    from htsr.studies.compare import compare_summary, compare_tables
    from htsr.studies.trends import summarize
    from htsr.weights.analysis import analyze

    ta, tb = analyze(args.a, args.convention), analyze(args.b, args.convention)
    table = compare_tables(ta, tb)
    if args.delta:
        delta = analyze(_delta_state_dict(args.a, args.b), args.convention)
        delta["slice"] = delta["slice"].fillna("").astype(str)
        cols = {"alpha": "delta_alpha", "lambda_max": "delta_lambda_max",
                "log_norm": "delta_log_norm", "status": "delta_status"}  # fmt: skip
        table = table.merge(delta[["layer", "slice", *cols]].rename(columns=cols),
                            on=["layer", "slice"], how="left")  # fmt: skip
    if args.distances:
        from htsr.weights.distances import METHODS, distances

        for method in METHODS:
            d = distances(args.a, args.b, method)
            d = d.loc[d["status"] == "ok", ["layer", "delta_W"]]
            table = table.merge(d.rename(columns={"delta_W": f"distance_{method}"}),
                                on="layer", how="left")  # fmt: skip
    write_tsv(args.output, table)
    conv = args.convention
    s = compare_summary(table, summarize(ta, convention=conv), summarize(tb, convention=conv))
    print(f"A {args.a}: alpha_weighted={s['alpha_weighted_a']:.4f}; "
          f"B {args.b}: alpha_weighted={s['alpha_weighted_b']:.4f}")  # fmt: skip
    print(f"{s['more_heavy_tailed']} matrices more heavy-tailed in B (alpha fell),"
          f" {s['less_heavy_tailed']} less, {s['unchanged']} unchanged")  # fmt: skip
    if args.distances:
        per_layer = table.drop_duplicates("layer")
        print(
            "distances (mean over layers): "
            + ", ".join(
                f"{m} {per_layer[f'distance_{m}'].mean():.4g}" for m in ("raw", "euclidean", "cka")
            )
        )
    for side in ("a", "b"):
        if s[f"only_{side}"]:
            print(f"only in {side.upper()}: {', '.join(s[f'only_{side}'])}")
    if args.figure:
        fig = compare_figure(table, Path(args.a).name, Path(args.b).name)
        save_figure(fig, [args.figure])
    return 0


def _track(args: argparse.Namespace) -> int:
    from htsr.figures.commands import track_figure
    from htsr.figures.common import save_figure
    from htsr.studies.compare import alpha_by_layer, order_checkpoints, track_table
    from htsr.studies.trends import summarize
    from htsr.weights.analysis import analyze

    rows, tables = [], []
    for path, step in order_checkpoints(args.checkpoints):
        table = analyze(path, args.convention)
        summary = summarize(table, convention=args.convention)
        rows.append((str(path), step, summary))
        tables.append((step, table))
        print(f"step {step}: {path} alpha_weighted={summary['alpha_weighted']:.4f}",
              file=sys.stderr)  # fmt: skip
    track = track_table(rows)
    write_tsv(args.output, track)
    print(f"{args.output}: {len(track)} checkpoints, steps {track['step'].tolist()}")
    if args.figure:
        save_figure(track_figure(track, alpha_by_layer(tables)), [args.figure])
    return 0


def _guide(args: argparse.Namespace) -> int:
    import json

    from htsr.guide import METHODS, guide_summary, guide_table, layer_alphas
    from htsr.weights.analysis import open_weights

    if args.method == "alphapruning" and args.sparsity is None:
        raise ValueError("--method alphapruning needs --sparsity S (the target, e.g. 0.7)")
    spec = METHODS[args.method]
    state = open_weights(args.checkpoint)  # a file, a hub folder or an hf:// address
    alphas = layer_alphas(state, spec.estimator, xmin_pos=spec.xmin_pos, lower=args.lower,
                          farms=args.farms)  # fmt: skip
    if alphas.empty:
        raise NothingAnalysed(f"{args.checkpoint}: no Conv2d/Linear weights found")
    kw = {"sparsity": args.sparsity, "epsilon": args.epsilon} if spec.key == "sparsity" else {}
    guided = guide_table(alphas, args.method, **kw)
    summary = guide_summary(guided, args.method) | {"checkpoint": str(args.checkpoint),
                                                     "farms": bool(args.farms)}  # fmt: skip
    if args.output:
        write_tsv(args.output, guided)
    if args.json:
        print(json.dumps(summary))
        return 0
    col = "sparsity" if spec.key == "sparsity" else "factor"
    with pd.option_context("display.max_rows", None, "display.width", 120):
        print(guided[["layer", "layer_type", "n_params", "eigs_num", "alpha", "tuned", col]]
              .to_string(index=False))  # fmt: skip
    line = f"{args.method}: {summary['n_tuned']} of {summary['n_layers']} layers tuned"
    if spec.key == "sparsity":
        line += (
            f", parameter-weighted mean sparsity {summary['weighted_sparsity_tuned']:.6f}"
            f" (target {args.sparsity}) over the pruned layers,"
            f" {summary['weighted_sparsity_all']:.6f} over all"
        )
    elif summary["n_tuned"]:
        line += f", {spec.key} factor {summary['factor_min']:.4f} to {summary['factor_max']:.4f}"
    print(line)
    return 0


COMMANDS = {"analyze": _analyze, "describe": _describe, "summarize": _summarize, "smooth": _edit,
            "sharpen": _edit, "predict": _predict, "esd": _esd, "compare": _compare,
            "track": _track, "guide": _guide}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``htsr`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, TypeError, RuntimeError) as exc:  # CheckpointError: ValueError;
        # DownloadError (an hf:// address that cannot be fetched or verified): RuntimeError
        msg = " ".join(str(exc).split())
        print(f"htsr: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
