"""A study: model families with a published quality, read from ``config/studies/{study}.yaml``.

A study's definition (YAML, validated by the pipeline against
``workflow/schemas/study.schema.yaml``) names its model table(s) and says what its quality
columns mean::

    tables: [config/studies/nlp.tsv]        # default: config/studies/{study}.tsv
    model_set: [core]                       # default selection (config model_set overrides)
    group_by: [family]                      # trends per family (ImageNet: [set, family])
    more_families: [level_family]           # columns naming further families of a model
    non_cnn_families: all                   # transformers: the answer's non-CNN rows
    quality:                                # one entry per quality column of the table
      - {name: lambada_openai_acc, label: "LAMBADA accuracy (fraction)", headline: true}
      - {name: lambada_openai_ppl, label: "LAMBADA perplexity", higher_is_better: false,
         transform: log10}
    family_headline: {gpt2: lambada_acc}     # a family's headline when it lacks the study's
    figure_families: [pythia, gpt2]          # families drawn in the figures (default: all)
    trajectories: [pythia-410m-trajectory]   # families whose models are training steps
    caveats: "..."                           # what a reader must know, printed in the README
    unrated: true                            # rows may lack every quality value (weights
                                             # without a published quality: spectra only)
    convention: ww                           # the study's spectra convention (default: config's)

Adding a study is one table and one such file. Nothing here names a family or a model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from htsr.experiments.grids import grid_table
from htsr.studies.table import (
    OPTIONAL_COLUMNS,
    Quality,
    layers_problem,
    match_models,
    read_model_table,
)

__all__ = ["Study", "read_study", "study_from_dict"]


@dataclass(frozen=True)
class Study:
    """One study's definition (see the module docstring)."""

    name: str
    tables: tuple[str, ...]
    quality: tuple[Quality, ...]
    headline: str
    model_set: tuple[str, ...] = ("core",)
    group_by: tuple[str, ...] = ("family",)
    more_families: tuple[str, ...] = ()
    non_cnn_families: tuple[str, ...] | str = ()
    experiment: Mapping[str, Any] | None = None
    family_headline: Mapping[str, str] = field(default_factory=dict)
    figure_families: tuple[str, ...] = ()
    trajectories: tuple[str, ...] = ()
    figures: str = ""
    set_methods: Mapping[str, Sequence[str]] = field(default_factory=dict)
    paper_comparison: Mapping[str, str] = field(default_factory=dict)
    caveats: str = ""
    unrated: bool = False
    convention: str = ""

    def quality_of(self, name: str) -> Quality:
        """The :class:`Quality` called ``name``; ``KeyError`` naming the study's ones."""
        for q in self.quality:
            if q.name == name:
                return q
        raise KeyError(f"study {self.name}: no quality {name!r} ({self.quality_names})")

    @property
    def quality_names(self) -> list[str]:
        return [q.name for q in self.quality]

    def headline_of(self, family: str) -> Quality:
        """The quality a family's headline figures show: ``family_headline`` or the study's."""
        return self.quality_of(self.family_headline.get(family, self.headline))

    def read_table(self, grid: str = "default") -> pd.DataFrame:
        """The study's model table(s), validated (:func:`htsr.studies.table.read_model_table`); a
        ``more_families`` column the tables lack is a ``ValueError`` naming it. An experiment
        study's table is its ``grid`` (:func:`htsr.experiments.grids.grid_table`), quality to
        come."""
        if self.experiment is not None:
            table = grid_table(self.name, self.experiment, grid)
            for column in OPTIONAL_COLUMNS:
                if column not in table:
                    table[column] = ""
            bad = [layers_problem(p) for p in dict.fromkeys(table["layers"]) if p]
            if any(bad):
                raise ValueError(f"study {self.name}: {'; '.join(b for b in bad if b)}")
            for column in ("num_params", "eval_res", "step"):
                table[column] = pd.array([pd.NA] * len(table), dtype="Int64")
            for q in self.quality:
                table[q.name] = float("nan")
            return table
        table = read_model_table(list(self.tables), quality=self.quality, unrated=self.unrated)
        missing = [c for c in self.more_families if c not in table.columns]
        if missing:
            raise ValueError(
                f"study {self.name}: more_families names column(s) {missing} that its table(s)"
                f" {', '.join(self.tables)} lack"
            )
        return table

    def select(self, table: pd.DataFrame, model_set: Any = None) -> tuple[pd.DataFrame, list[str]]:
        """``(rows of model_set, names that matched nothing)``; default the study's model_set."""
        chosen = model_set or self.model_set
        keep, unknown = match_models(table, [chosen] if isinstance(chosen, str) else list(chosen))
        return table[keep].reset_index(drop=True), unknown


def study_from_dict(name: str, spec: Mapping[str, Any]) -> Study:
    """A :class:`Study` from its parsed YAML ``spec`` (table paths relative to the working
    directory)."""
    quality = tuple(
        Quality(
            name=q["name"],
            label=q.get("label", ""),
            higher_is_better=bool(q.get("higher_is_better", True)),
            transform=q.get("transform", "") or "",
            low=q.get("low"),
            high=q.get("high"),
            required=bool(q.get("required", False)),
            answer=bool(q.get("answer", True)),
        )  # fmt: skip
        for q in spec["quality"]
    )
    heads = [q["name"] for q in spec["quality"] if q.get("headline")]
    if len(heads) != 1:
        raise ValueError(f"study {name}: exactly one quality must be the headline, got {heads}")
    names = {q.name for q in quality}
    for family, q in (spec.get("family_headline") or {}).items():
        if q not in names:
            raise ValueError(f"study {name}: family_headline {family}: unknown quality {q!r}")
    tables = spec.get("tables") or ([] if spec.get("experiment") else
                                     [f"config/studies/{name}.tsv"])  # fmt: skip
    tables = [tables] if isinstance(tables, str) else list(tables)
    return Study(
        name=name,
        tables=tuple(str(t) for t in tables),
        quality=quality,
        headline=heads[0],
        model_set=tuple(
            [spec["model_set"]]
            if isinstance(spec.get("model_set"), str)
            else spec.get("model_set") or ["core"]
        ),  # fmt: skip
        group_by=tuple(spec.get("group_by") or ["family"]),
        more_families=tuple(spec.get("more_families") or []),
        non_cnn_families=(
            "all"
            if spec.get("non_cnn_families") == "all"
            else tuple(spec.get("non_cnn_families") or [])
        ),  # fmt: skip
        family_headline=dict(spec.get("family_headline") or {}),
        figure_families=tuple(spec.get("figure_families") or []),
        trajectories=tuple(spec.get("trajectories") or []),
        figures=spec.get("figures") or "",
        set_methods={k: list(v) for k, v in (spec.get("set_methods") or {}).items()},
        paper_comparison=dict(spec.get("paper_comparison") or {}),
        caveats=str(spec.get("caveats") or "").strip(),
        unrated=bool(spec.get("unrated", False)),
        convention=str(spec.get("convention") or ""),
        experiment=dict(spec["experiment"]) if spec.get("experiment") else None,
    )


def read_study(path: str | os.PathLike[str], name: str | None = None) -> Study:
    """The study defined in the YAML file ``path`` (name: the file's stem)."""
    import yaml

    p = Path(path)
    try:
        spec = yaml.safe_load(p.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"study definition {p}: cannot be read: {err}") from err
    if not isinstance(spec, dict):
        raise ValueError(f"study definition {p}: expected a mapping")
    return study_from_dict(name or p.name.removesuffix(".yaml"), spec)


def headline_functions(
    params: Mapping[str, Any],
) -> tuple[Callable[[str], tuple[str, str, str]], Callable[[str], bool]]:
    """From a figure rule's study params (``headline``, ``family_headline``, ``quality`` as
    dicts): ``headline(family) -> (quality, axis label, transform)`` and
    ``higher_is_better(quality) -> bool``, what :mod:`htsr.figures` takes."""
    qualities = {q["name"]: Quality(**q) for q in params["quality"]}
    family_headline = dict(params.get("family_headline") or {})

    def headline(family: str) -> tuple[str, str, str]:
        q = qualities[family_headline.get(family, params["headline"])]
        return q.name, q.axis_label, q.transform

    def higher_is_better(name: str) -> bool:
        return qualities[name].higher_is_better if name in qualities else True

    return headline, higher_is_better
