r"""The model table: one row per pretrained model of a study, read, validated and selected.

A table is tab-separated with a header line, one row per model, keyed by ``model`` (letters,
digits, ``.``, ``_``, ``-``). Columns:

* ``model``, ``family``, ``source``, ``set`` and ``quality_source`` (where the quality numbers
  come from) in every row;
* the columns the row's source needs (:mod:`htsr.weights.sources`: ``model_id``/``weights_tag`` for
  torchvision, timm and pytorchcv rows, ``repo`` for ``hf`` rows, ...);
* one column per quality metric of the study (:class:`Quality`; ImageNet: ``top1``, ``top5``);
* optional: ``weights`` (the weight file's key, default the model key, so rows of several model
  sets can share one file), ``label`` (the name figures print, default the key up to its first
  '.'), ``num_params`` (sizes the pipeline's resource requests; unknown counts are
  estimated), ``step`` (a training step, for trajectory families), ``eval_res``, ``url``,
  ``sha256``, ``sha1``, ``revision``, ``filename``, ``note``, and ``layers``: a regular
  expression matched (:func:`re.match`) against layer names, so a row analyses part of its
  checkpoint (Stable Diffusion's VAE encoder ``encoder\.|quant_conv\b``; empty: every layer;
  several rows can read one file and each keep their own part, :func:`select_layers`).

Reading and selecting need only pandas: no network, no torch.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from htsr.weights import sources

__all__ = [
    "DEFAULT_QUALITY",
    "ModelTableError",
    "Quality",
    "read_model_table",
    "select_layers",
    "select_models",
]

REQUIRED_COLUMNS = ("model", "family", "source", "set", "quality_source")
OPTIONAL_COLUMNS = (
    "model_id", "weights_tag", "eval_res", "url", "sha256", "revision", "sha1", "weights",
    "label", "note", "repo", "filename", "step", "num_params", "layers",
)  # fmt: skip
#: Older tables name ``quality_source`` so.
ALIASES = {"accuracy_source": "quality_source"}
#: The columns that say which weight file a row reads and how: rows sharing a ``weights`` key
#: must agree on all of them.
WEIGHTS_IDENTITY = (
    "source", "model_id", "weights_tag", "url", "sha256", "sha1", "revision", "repo", "filename",
)  # fmt: skip

_MODEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelTableError(ValueError):
    """The model table is malformed; the message names each bad row (line number and model)."""


@dataclass(frozen=True)
class Quality:
    """One published quality metric of a study: a column of its model table.

    ``label`` names it with its unit for axes and tables; ``higher_is_better`` says which way is
    better (perplexity, bits per byte: False); ``transform`` is ``""`` or ``"log10"``: the trends
    regress ``log10(value)`` (perplexities: log perplexity is the loss, linear where perplexity
    is exponential); ``low``/``high``: the allowed range ``low < value <= high`` (None: any
    finite value); ``required``: every row must have a value; ``answer``: False for a column
    that is regressed but not judged as a quality in the cross-study answer (a rate: bpp).
    """

    name: str
    label: str = ""
    higher_is_better: bool = True
    transform: str = ""
    low: float | None = None
    high: float | None = None
    required: bool = False
    answer: bool = True

    def __post_init__(self) -> None:
        if self.transform not in ("", "log10"):
            raise ValueError(f"quality {self.name}: transform must be '' or 'log10'")

    @property
    def axis_label(self) -> str:
        """The label as trends see it: ``log10(label)`` under the log10 transform."""
        text = self.label or self.name
        return f"log10 {text}" if self.transform == "log10" else text


#: The quality columns of a table read without a study: ImageNet accuracies in percent.
DEFAULT_QUALITY: tuple[Quality, ...] = (
    Quality("top1", "top-1 accuracy (%)", low=0.0, high=100.0, required=True),
    Quality("top5", "top-5 accuracy (%)", low=0.0, high=100.0, required=True),
)


def _quality_problems(
    row: Mapping[str, str], quality: Sequence[Quality], unrated: bool = False
) -> list[str]:
    problems, present = [], 0
    for q in quality:
        text = row.get(q.name, "")
        if not text:
            if q.required:
                problems.append(f"{q.name} is missing or not a number ({text!r})")
            continue
        try:
            value = float(text)
        except ValueError:
            problems.append(f"{q.name} is missing or not a number ({text!r})")
            continue
        present += 1
        if not math.isfinite(value):
            problems.append(f"{q.name} = {value} is not finite")
        elif (q.low is not None and value <= q.low) or (q.high is not None and value > q.high):
            low, high = (f"{b:g}" if b is not None else "" for b in (q.low, q.high))
            problems.append(f"{q.name} = {value} is outside ({low}, {high}]")
        elif q.transform == "log10" and value <= 0:
            problems.append(f"{q.name} = {value} must be > 0 (its log10 is regressed)")
    if quality and not present and not problems and not unrated:
        problems.append(f"no quality value (expected one of {', '.join(q.name for q in quality)})")
    return problems


def layers_problem(pattern: str) -> str:
    """'' if ``pattern`` (a row's ``layers``) is a regular expression, else what is wrong."""
    try:
        re.compile(pattern)
    except re.error as err:
        return f"layers {pattern!r} is not a regular expression: {err}"
    return ""


def _row_problems(
    row: Mapping[str, str],
    sets: Iterable[str] | None,
    quality: Sequence[Quality],
    unrated: bool = False,
) -> list[str]:
    """Everything wrong with one table row (all cells as strings)."""
    problems = []
    for column in ("model", "weights"):
        if row[column] and not _MODEL_KEY.match(row[column]):
            problems.append(
                f"{column} key must use only letters, digits, '.', '_', '-' (got {row[column]!r})"
            )
    if not row["model"]:
        problems.append("model key is missing")
    for column in ("family", "quality_source", "set"):
        if not row[column]:
            problems.append(f"{column} is missing")
    try:
        source = sources.get(row["source"])
    except ValueError as err:
        problems.append(str(err))
        source = None
    if source is not None:
        problems += [f"{c} is missing" for c in source.COLUMNS if not row.get(c)]
        if all(row.get(c) for c in source.COLUMNS):
            problems += source.problems(row)
    known_sets = list(sets) if sets is not None else None
    if known_sets is not None and row["set"] and row["set"] not in known_sets:
        problems.append(f"unknown set {row['set']!r} (expected one of {', '.join(known_sets)})")
    problems += _quality_problems(row, quality, unrated)
    for column, required in (("num_params", False), ("eval_res", False), ("step", False)):
        text = row[column]
        if (text or required) and (not text.isdigit() or (int(text) <= 0 and column != "step")):
            problems.append(f"{column} is missing or not a positive integer ({text!r})")
    url = row["url"]
    if url and "://" not in url and "/" in url:
        problems.append(f"url {url!r} must be an absolute URL (scheme://...) or a bare file name")
    if row["sha256"] and not _SHA256.match(row["sha256"]):
        problems.append(f"sha256 must be 64 lowercase hex digits (got {row['sha256']!r})")
    if row["layers"] and layers_problem(row["layers"]):
        problems.append(layers_problem(row["layers"]))
    if row["source"] != "pytorchcv" and row["sha1"]:
        problems.append("sha1 is the OSMR store's checksum: only pytorchcv rows take it")
    return problems


def _read_one_table(
    path: Path, sets: Iterable[str] | None, quality: Sequence[Quality], unrated: bool = False
) -> tuple[pd.DataFrame, list[str]]:
    """One table file and the problems of its rows; rows keep their file and line for messages."""
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ModelTableError(f"model table {path}: cannot be read: {err}") from err
    raw = raw.rename(columns={k: v for k, v in ALIASES.items() if v not in raw.columns})
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    missing += [q.name for q in quality if q.required and q.name not in raw.columns]
    if missing:
        raise ModelTableError(f"model table {path}: missing column(s) {', '.join(missing)}")
    for column in (*OPTIONAL_COLUMNS, *(q.name for q in quality)):
        if column not in raw.columns:
            raw[column] = ""
    raw = raw.apply(lambda col: col.str.strip())
    raw["_line"] = range(2, len(raw) + 2)  # file line numbers
    raw["_file"] = str(path)
    raw = raw[(raw.drop(columns=["_line", "_file"]) != "").any(axis=1)]  # blank lines
    errors = []
    for _, row in raw.iterrows():
        problems = _row_problems(row.to_dict(), sets, quality, unrated)
        errors += [f"line {row['_line']} (model {row['model']!r}): {p}" for p in problems]
    return raw, errors


def _where(row: Mapping[str, Any], several: bool) -> str:
    return f"{row['_file']} line {row['_line']}" if several else f"line {row['_line']}"


def _cross_row_problems(raw: pd.DataFrame, several: bool) -> list[str]:
    """Duplicate model keys, and rows that share a weight file but disagree on its source."""
    errors = []
    first: dict[str, Mapping[str, Any]] = {}
    for _, row in raw.iterrows():
        key = row["model"]
        if key in first:
            errors.append(
                f"{_where(row, several)} (model {key!r}): duplicate model key"
                f" (first on {_where(first[key], several)})"
            )
        else:
            first[key] = row
    by_weights: dict[str, Mapping[str, Any]] = {}
    for _, row in raw.iterrows():
        owner = by_weights.setdefault(row["weights"], row)
        differ = [c for c in WEIGHTS_IDENTITY if row[c] != owner[c]]
        if differ:
            errors.append(
                f"{_where(row, several)} (model {row['model']!r}): shares weights"
                f" {row['weights']!r} with model {owner['model']!r} ({_where(owner, several)})"
                f" but differs in {', '.join(differ)}"
            )
    return errors


def read_model_table(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    sets: Iterable[str] | None = None,
    quality: Sequence[Quality] = DEFAULT_QUALITY,
    unrated: bool = False,
) -> pd.DataFrame:
    """Read and validate a model table (tab-separated, header on line 1), or several of them.

    Returns one row per model with the ``quality`` columns as float (NaN where empty),
    ``num_params``, ``eval_res`` and ``step`` as nullable ints, the other columns as
    strings, and the optional columns ('' where unset; ``weights`` defaults to the model key and
    ``label`` to the key up to its first '.'). Several paths are read into one table, in order.
    ``sets``, if given, are the allowed values of the ``set`` column. A row must give at least
    one quality value unless ``unrated`` (weights without a published quality, analysed for
    their spectra only: a study's ``unrated: true``).

    Raises :class:`ModelTableError` (a ``ValueError``) listing every bad row by file line number
    and model key: a duplicate key (across all files), an unknown source or set, a missing
    source column, a missing or non-numeric quality or parameter count, a quality outside its
    range, rows that share a ``weights`` key but name different files.
    """
    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    if not paths:
        raise ModelTableError("no model table given")
    sets = list(sets) if sets is not None else None
    several = len(paths) > 1
    tables, errors = [], []
    for path in paths:
        one, problems = _read_one_table(path, sets, quality, unrated)
        tables.append(one)
        errors += [f"{path} {p}" if several else p for p in problems]
    raw = pd.concat(tables, ignore_index=True)
    raw["weights"] = raw["weights"].where(raw["weights"] != "", raw["model"])
    raw["label"] = raw["label"].where(raw["label"] != "", raw["model"].str.split(".").str[0])
    errors += _cross_row_problems(raw, several=several)
    if errors:
        where = paths[0] if len(paths) == 1 else ", ".join(map(str, paths))
        raise ModelTableError(f"model table {where}:\n  " + "\n  ".join(errors))
    table = raw.drop(columns=["_line", "_file"]).reset_index(drop=True)
    for q in quality:
        table[q.name] = pd.to_numeric(table[q.name].replace("", float("nan")))
    for column in ("num_params", "eval_res", "step"):
        table[column] = pd.array([int(v) if v else pd.NA for v in table[column]], dtype="Int64")
    return table


def select_models(table: pd.DataFrame, model_set: str | Iterable[str] = "core") -> pd.DataFrame:
    """Rows of ``table`` for ``model_set``, in table order.

    ``model_set`` is ``"all"`` or names (a list, or one string), each of which is a model set
    (a value of the ``set`` column, e.g. ``core`` or ``paper2019``), a model key, a family, or a
    model id (selecting every row with that id). A name that matches nothing raises
    ``ValueError`` naming it.
    """
    keep, unknown = match_models(table, model_set)
    if unknown:
        raise ValueError(
            f"unknown model or family name(s): {', '.join(map(repr, unknown))} (expected model"
            " sets, model keys, families or model ids from the model table, or all)"
        )
    return table[keep].reset_index(drop=True)


def match_models(
    table: pd.DataFrame, model_set: str | Iterable[str]
) -> tuple[pd.Series, list[str]]:
    """``(rows selected, names that matched nothing)``: :func:`select_models` without the error,
    for a selection that spans several studies' tables."""
    if isinstance(model_set, str):
        if model_set == "all":
            return pd.Series(True, index=table.index), []
        model_set = [model_set]
    names = list(model_set)
    if not names:
        raise ValueError("model_set is an empty list; name model sets, models or families, or all")
    keep = pd.Series(False, index=table.index)
    unknown = []
    for name in names:
        if name == "all":
            keep |= True
            continue
        hit = table["set"] == name
        if not hit.any():
            hit = (table["model"] == name) | (table["family"] == name)
        if not hit.any():
            hit = table["model_id"] == name
        if not hit.any():
            unknown.append(name)
        keep |= hit
    return keep, unknown


def select_layers(spectra: pd.DataFrame, pattern: Any = "") -> pd.DataFrame:
    """The rows of a per-matrix table whose ``layer`` a row's ``layers`` pattern matches.

    ``pattern`` is a regular expression tried with :func:`re.match` (anchored at the start of
    the name: ``decoder\\.`` keeps ``decoder.up.0.conv.weight``'s layer, not
    ``post_decoder.x``); empty or missing (None, NaN) keeps every row. A model that reads part
    of a shared checkpoint is summarised from its part alone.

    >>> t = pd.DataFrame({"layer": ["encoder.conv_in", "decoder.conv_out", "loss.disc.0"]})
    >>> select_layers(t, r"(encoder|decoder)\\.")["layer"].tolist()
    ['encoder.conv_in', 'decoder.conv_out']
    """
    if pattern is None or (isinstance(pattern, float) and math.isnan(pattern)) or not pattern:
        return spectra
    regex = re.compile(str(pattern))
    return spectra[[bool(regex.match(str(name))) for name in spectra["layer"]]]
