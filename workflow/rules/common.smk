# Shared by the workflow's .smk files -- the studies, their model tables, input and resource
# functions.
import dataclasses
import json
import math
import re

import pandas as pd
import yaml

from htsr.experiments.grids import RESULT_SUFFIX, dataset_key
from htsr.guide.compare import comparison_from_dict
from htsr.studies.study import study_from_dict
from htsr.weights import sources, zoo

WEIGHTS_DIR = "resources/weights"
FIGURES = ("families", "alpha_histogram", "metrics_comparison", "correlation_flow")
FORMATS = ("png", "pdf")
# model_spectra cost measured on random-init models (docs/pipeline.md): the worst seconds per
# million parameters seen (one torch thread, a loaded 2-core machine), and a fixed start-up
# (imports, model build, weight load).
SPECTRA_S_PER_MPARAM = 0.65
SPECTRA_STARTUP_S = 30.0
# evals: tsvd (the exact float64 spectrum less its smallest eigenvalue: what TruncatedSVD of M-1
# components returned, docs/paper.md): 0.92-1.19x the exact route in CPU seconds on resnet18 and
# densenet121 (benchmarks/bench_methods.py --threads 1 --clock cpu --repeat 2, a shared machine);
# 1.5 leaves room for the noise. evals: tsvd_sklearn (scikit-learn's own TruncatedSVD, the
# reference): 24-30x measured before the exact route replaced it (resnet18, densenet121).
EVALS_COST_FACTOR = {"exact": 1.0, "tsvd": 1.5, "tsvd_sklearn": 30.0}
# The config's true/false keys. `--config offline=true` gives the string "true" (Snakemake
# parses only True/False as booleans); the schema accepts true/false in any case and they
# become booleans here, before any rule or script reads them.
FLAGS = ("offline", "include_embeddings")
for _flag in FLAGS:
    if isinstance(config.get(_flag), str):
        config[_flag] = config[_flag].lower() == "true"


# Read and validate every study, its model table and the selection at parse time: a bad row,
# an unknown model or family stops the run before any job, with a message naming the row.
def _read_spec(name):
    path = f"{config.get('study_dir', 'config/studies')}/{name}.yaml"
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as err:
        raise ValueError(
            f"config studies: study {name!r} has no definition {path}: {err}"
        )


def _read_study(name, spec):
    validate(spec, "../schemas/study.schema.yaml")
    return study_from_dict(name, spec)


# A study whose YAML declares a `comparison` is a controlled comparison of the alpha-guided
# methods (htsr.guide.compare; rules in comparisons.smk); the others are studies of spectra.
_SPECS = {name: _read_spec(name) for name in config["studies"]}
STUDIES = {
    name: _read_study(name, spec)
    for name, spec in _SPECS.items()
    if "comparison" not in spec
}


def _read_comparison(name, spec):
    validate(spec, "../schemas/comparison.schema.yaml")
    return comparison_from_dict(name, spec, config.get("experiment_grid", "default"))


COMPARISONS = {
    name: _read_comparison(name, spec)
    for name, spec in _SPECS.items()
    if "comparison" in spec
}


def _select_all():
    if not STUDIES:  # comparisons only: no model table
        columns = [
            "model",
            "weights",
            "source",
            "study",
            "set",
            "family",
            "dataset",
            "layers",
        ]
        return pd.DataFrame(columns=columns).set_index("model", drop=False)
    frames, unmatched = [], None
    for name, study in STUDIES.items():
        table = study.read_table(config.get("experiment_grid", "default"))
        models, unknown = study.select(table, config.get("model_set"))
        frames.append(models.assign(study=name))
        unmatched = set(unknown) if unmatched is None else unmatched & set(unknown)
    if unmatched:
        raise ValueError(
            f"config model_set: {', '.join(sorted(unmatched))} matched no model of any study"
            f" ({', '.join(STUDIES)}): name model sets, model keys, families or all"
        )
    models = pd.concat(frames, ignore_index=True)
    twice = models[models["model"].duplicated()]["model"].tolist()
    if twice:
        raise ValueError(f"model key(s) {twice} appear in more than one study")
    return models.set_index("model", drop=False)


MODELS = _select_all()
# one row per weight file: rows that read the same file (the torchvision VGGs of both papers,
# pythia-410m in the size and trajectory families) share one download and one spectrum
WEIGHTS = MODELS.drop_duplicates("weights").set_index("weights", drop=False)
SETS = list(dict.fromkeys(MODELS["set"]))
METHODS = config.get("methods") or {}
for _study in STUDIES.values():
    for _set, _names in _study.set_methods.items():
        for _name in _names:
            if _name not in METHODS:
                raise ValueError(
                    f"study {_study.name}: set_methods: model set {_set!r} names method"
                    f" {_name!r}, which is not in config methods ({', '.join(METHODS) or 'none'})"
                )


def study_models(study):
    """The selected models of ``study``."""
    return MODELS[MODELS["study"] == study]


def study_sets(study):
    """The model sets of ``study``'s selected models."""
    return list(dict.fromkeys(study_models(study)["set"]))


def _read_figure_table(study):
    path = STUDIES[study].figures if study is not None else None
    if not path:
        return pd.DataFrame(columns=["study", "figure", "set", "method", "families", "metrics",
                                     "title", "quality"])  # fmt: skip
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    need = ["figure", "set", "method", "families", "metrics", "title"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"figure table {path}: missing column(s) {', '.join(missing)}")
    if "quality" not in table.columns:
        table["quality"] = STUDIES[study].headline
    for line, rec in zip(range(2, len(table) + 2), table.itertuples()):
        if rec.method != "main" and rec.method not in METHODS:
            raise ValueError(
                f"figure table {path} line {line} ({rec.figure!r}): unknown method"
                f" {rec.method!r} (main or one of config methods)"
            )
    return table.assign(study=study)


FIGURE_TABLE = pd.concat(
    [_read_figure_table(s) for s in STUDIES] or [_read_figure_table(None)],
    ignore_index=True,
).set_index(["study", "figure"], drop=False)


def set_methods(study, set_name):
    """The extra methods (the study's set_methods) whose spectra a model set's models get."""
    return list(STUDIES[study].set_methods.get(set_name, []))


def method_models(study, method):
    """The selected models of ``study`` run with ``method``: those of the sets that name it."""
    models = study_models(study)
    return models[[method in set_methods(study, s) for s in models["set"]]]


def run_methods(study):
    """The methods that some selected model set of ``study`` uses."""
    return [m for m in METHODS if len(method_models(study, m))]


def run_figures(study):
    """Figures of the study's figure table whose model set is selected (and whose method runs)."""
    sets, methods = study_sets(study), run_methods(study)
    table = FIGURE_TABLE[FIGURE_TABLE["study"] == study]
    return [
        rec["figure"]
        for _, rec in table.iterrows()
        if rec["set"] in sets and (rec["method"] == "main" or rec["method"] in methods)
    ]


def trajectory_families(study):
    """The study's trajectory families that have selected models."""
    present = set(study_models(study)["family"])
    return [f for f in STUDIES[study].trajectories if f in present]


# the columns htsr.weights.zoo needs to fetch and build a model; as params of a rule, a change to one of
# them (not to an accuracy) makes Snakemake rerun the model's jobs
IDENTITY_COLUMNS = [
    "model", "weights", "model_id", "source", "weights_tag", "url", "sha256", "sha1",
    "revision", "repo", "filename",
]  # fmt: skip


def weights_file(weights):
    """Where a weight file lives: resources/weights/{weights} plus its source's suffix."""
    return str(zoo.weights_path(WEIGHTS.loc[weights], WEIGHTS_DIR))


def weights_input(wildcards):
    """Input function of the spectra rules: the weight file {weights}."""
    return weights_file(wildcards.weights)


def weights_params(wildcards):
    """Params function: the identity columns of the first row reading {weights}, a plain dict."""
    return WEIGHTS.loc[wildcards.weights, IDENTITY_COLUMNS].to_dict()


def experiment_families(study):
    """The families of a controlled experiment (none for other studies)."""
    if not STUDIES[study].experiment:
        return []
    return list(dict.fromkeys(study_models(study)["family"]))


def results_dir(study, method="main"):
    """Where a study's tables go: results/{study}/ for the run's convention ("main"), else
    results/{study}/methods/{method}/."""
    return (
        f"results/{study}" if method == "main" else f"results/{study}/methods/{method}"
    )


def spectra_files(study, models=None, method="main"):
    """The spectra tables of ``models`` (default: every selected model of ``study``), one per
    model row, in order: results/{study}/spectra/ for the main convention; for a method, the
    file of its weights' methods (rule model_spectra_with_methods; column ``method``).
    """
    models = study_models(study) if models is None else models
    where = "spectra" if method == "main" else "method_spectra"
    return [f"results/{study}/{where}/{w}.parquet" for w in models["weights"]]


def esd_models(study):
    """Params of esd_figures: for every selected model of ``study``, in order, its name, its
    spectra table and its ``layers`` pattern (the model's part of a shared checkpoint).
    """
    models = study_models(study)
    return [
        {"model": model, "spectra": path, "layers": layers}
        for model, path, layers in zip(
            models.index, spectra_files(study, models), models["layers"]
        )
    ]


def weights_methods(study, weights):
    """The methods a weight file is analysed with besides the main convention: those of every
    model set of ``study`` that has a row reading it, in config order."""
    models = study_models(study)
    sets = models.loc[models["weights"] == weights, "set"]
    return [m for m in METHODS if any(m in set_methods(study, s) for s in sets)]


def methods_params(wildcards):
    """Params function of the spectra rules: {method: its convention and evals} for every method
    of the file's sets ({} where they name none)."""
    return {
        m: dict(METHODS[m]) for m in weights_methods(wildcards.study, wildcards.weights)
    }


def studies_pattern(with_methods):
    """A regex of the studies that run some method (``with_methods``) or none; never matches
    when there is none (the spectra rules' study constraints)."""
    names = [s for s in STUDIES if bool(run_methods(s)) == with_methods]
    return "|".join(re.escape(s) for s in names) or "(?!)"


def model_rows(models):
    """The model-table columns the per-model tables carry, as plain records (a rule param)."""
    study = STUDIES[models["study"].iloc[0]] if len(models) else None
    quality = study.quality_names if study else []
    columns = ["model", "set", "family", "label", "source", "weights", "step", *quality]
    # a part of a checkpoint (layers) and further families, where the study's table has them
    columns += [c for c in extra_columns(study) if c in models.columns]
    return (
        models[columns]
        .astype(object)
        .where(models[columns].notna(), None)
        .to_dict("records")
    )


def extra_columns(study):
    """The optional per-model columns a study's tables carry on: ``layers`` (where any row
    analyses part of its checkpoint) and its ``more_families`` columns."""
    if study is None:
        return []
    used = MODELS[MODELS["study"] == study.name]
    layers = ["layers"] if (used["layers"].astype(str) != "").any() else []
    trained = ["vary", "setting", "seed"] if study.experiment else []
    return [*layers, *study.more_families, *trained]


# The controlled experiments: the prepared datasets, and each trained model's result file.
DATASETS = {
    dataset_key(s.experiment["dataset"]): dict(s.experiment["dataset"])
    for s in STUDIES.values()
    if s.experiment
}
DATASETS |= {
    dataset_key(c.dataset): dict(c.dataset) for c in COMPARISONS.values() if c.dataset
}
TRAINED = MODELS[MODELS["source"] == "trained"].drop_duplicates("weights")
TRAINED = TRAINED.set_index("weights", drop=False)


def training_result(weights):
    return f"{WEIGHTS_DIR}/{weights}{RESULT_SUFFIX}"


def training_files(study):
    """The training results of a study's trained models (none for other studies)."""
    models = study_models(study)
    return [
        training_result(w) for w in models.loc[models["source"] == "trained", "weights"]
    ]


def train_params(wildcards):
    """Params function of train_model: what to train, as plain data."""
    row = TRAINED.loc[wildcards.weights]
    return {
        "model": row["model"],
        "weights": row["weights"],
        "architecture": row["architecture"],
        "hyperparameters": json.loads(row["hyperparameters"]),
        "seed": int(row["seed"]),
    }


def train_mem_mb(wildcards, attempt):
    return 8000 * attempt


def train_runtime(wildcards, attempt):
    return 60 * attempt


def quality_specs(study):
    """The study's quality definitions as plain dicts (a rule param)."""
    return [dataclasses.asdict(q) for q in STUDIES[study].quality]


def study_params(wildcards):
    """Params function of the figure rules: the study's headline, labels and families."""
    return study_params_of(wildcards.study)


def study_params_of(name):
    """A study's headline, quality definitions, families and grouping, as plain data."""
    study = STUDIES[name]
    return {
        "headline": study.headline,
        "family_headline": dict(study.family_headline),
        "quality": quality_specs(name),
        "families": list(study.figure_families),
        "group_by": list(study.group_by),
        "more_families": list(study.more_families),
        "non_cnn_families": (
            study.non_cnn_families
            if isinstance(study.non_cnn_families, str)
            else list(study.non_cnn_families)
        ),
        "name": study.name,
        "trained": study.experiment is not None,
    }


def study_convention(study):
    """The spectra convention of a study: its own (``convention`` in its YAML) or the config's."""
    return STUDIES[study].convention or config["convention"]


def method_options(wildcards):
    """Params function: convention and evals of the method {method}."""
    return dict(METHODS[wildcards.method])


def figure_inputs(wildcards):
    """Input function of trend_figure: the models and trends tables of the figure's method."""
    method = FIGURE_TABLE.loc[(wildcards.study, wildcards.figure), "method"]
    where = results_dir(wildcards.study, method)
    return {"models": f"{where}/models.tsv", "trends": f"{where}/trends.tsv"}


def comparison_inputs(wildcards):
    """Input function of paper_comparison: the models/trends tables of main and every method."""
    cfg = STUDIES[wildcards.study].paper_comparison
    tables = {key: cfg[key] for key in ("printed", "spec", "notes")}
    for method in ("main", *run_methods(wildcards.study)):
        suffix = "" if method == "main" else f"_{method}"
        tables[f"models{suffix}"] = f"{results_dir(wildcards.study, method)}/models.tsv"
        tables[f"trends{suffix}"] = f"{results_dir(wildcards.study, method)}/trends.tsv"
    return tables


def study_outputs(study):
    """Every final target of one study."""
    where = results_dir(study)
    models = study_models(study)
    out = [
        f"{where}/models.tsv",
        f"{where}/trends.tsv",
        *expand("{where}/figures/{figure}.{ext}", where=where, figure=FIGURES, ext=FORMATS),
        *expand("{where}/figures/{figure}.{ext}", where=where, figure=run_figures(study),
                ext=FORMATS),
        *expand("{where}/figures/alpha_histogram/{set}.{ext}", where=where,
                set=study_sets(study), ext=FORMATS),
        f"{where}/figures/esd",
        *expand("{where}/figures/trajectory/{family}.{ext}", where=where,
                family=trajectory_families(study), ext=FORMATS),
        *expand("{where}/methods/{method}/models.tsv", where=where, method=run_methods(study)),
        *expand("{where}/figures/experiment/{family}.{ext}", where=where,
                family=experiment_families(study), ext=FORMATS),
    ]  # fmt: skip
    if STUDIES[study].paper_comparison:
        out += [
            f"{where}/paper_comparison.tsv",
            *expand("{where}/figures/paper_comparison.{ext}", where=where, ext=FORMATS),
        ]
    return out


def all_outputs():
    """Every final target of the workflow (rule all)."""
    summary = expand(
        "results/summary/beyond_imagenet.{ext}", ext=("tsv", "md", *FORMATS)
    )
    compared = [o for name in COMPARISONS for o in comparison_outputs(name)]
    if not STUDIES:
        return compared
    return (
        [o for study in STUDIES for o in study_outputs(study)]
        + [*summary, "results/provenance.json"]
        + compared
    )


# a model whose table gives no parameter count (mmsegmentation, CompressAI rows) is sized as
# this many parameters for its resource requests
UNKNOWN_NUM_PARAMS = 300_000_000


def _num_params(weights):
    n = WEIGHTS.loc[weights, "num_params"]
    return UNKNOWN_NUM_PARAMS if pd.isna(n) else int(n)


def _weight_mb(wildcards):
    return 4 * _num_params(wildcards.weights) / 1e6  # float32 bytes


def download_mem_mb(wildcards, attempt):
    """Streaming download and hashing: a fixed 1 GB, doubled on each retry."""
    return 1024 * 2 ** (attempt - 1)


def download_runtime(wildcards, attempt):
    """Minutes: the file at a pessimistic 2 MB/s plus 10 min, doubled on each retry."""
    return math.ceil((10 + _weight_mb(wildcards) / 2 / 60) * 2 ** (attempt - 1))


def spectra_mem_mb(wildcards, attempt):
    """MB: 2 GB for the interpreter and torch plus 5 float32 copies' worth of the weights
    (the built model, the loaded state_dict, float64 copies of the largest layer and its
    Gram matrix), times the attempt number. A source read tensor by tensor (no architecture
    built: pytorchcv, hf) needs a quarter of the weights' float32 size beside 3 GB (the largest
    tensor and its copies; benchmarks/bench_streaming.py)."""
    row = WEIGHTS.loc[wildcards.weights]
    if getattr(sources.get(row["source"]), "ARCHITECTURE", False):
        return math.ceil((2048 + 5 * _weight_mb(wildcards)) * attempt)
    return math.ceil((3072 + _weight_mb(wildcards) / 4) * attempt)


def spectra_runtime(wildcards, attempt):
    """Minutes: 3x the measured cost (SPECTRA_* above) for safety, times the attempt number;
    each method of the weight file adds EVALS_COST_FACTOR of its evals times that."""
    mparams = _num_params(wildcards.weights) / 1e6
    seconds = SPECTRA_STARTUP_S + SPECTRA_S_PER_MPARAM * mparams
    # each method as if alone (an upper bound: the methods reuse the main eigendecomposition)
    methods = weights_methods(wildcards.study, wildcards.weights)
    factor = 1 + sum(EVALS_COST_FACTOR[METHODS[m]["evals"]] for m in methods)
    return math.ceil(3 * seconds * factor / 60) * attempt


def analysis_mem_mb(wildcards, attempt):
    """MB for table and figure jobs: 2 GB, times the attempt number."""
    return 2048 * attempt


def analysis_runtime(wildcards, attempt):
    """Minutes for table and figure jobs: 10, times the attempt number."""
    return 10 * attempt


def provenance_runtime(wildcards, attempt):
    """Minutes: hashing every weight file at a pessimistic 50 MB/s plus 5, times the attempt."""
    total_mb = 4 * sum(_num_params(w) for w in WEIGHTS.index) / 1e6
    return math.ceil(5 + total_mb / 50 / 60) * attempt


# The alpha-guided comparisons (comparisons.smk)
def comparison_run(comparison, run):
    """The plan's run ``run`` of ``comparison`` (htsr.guide.compare.Run)."""
    for r in COMPARISONS[comparison].runs:
        if r.name == run:
            return r
    raise ValueError(f"comparison {comparison}: no run {run!r}")


def comparison_dataset(wildcards):
    return f"resources/datasets/{dataset_key(COMPARISONS[wildcards.comparison].dataset)}.pt"


def comparison_run_inputs(wildcards):
    """The prepared dataset, and a fine-tuning run's pre-trained checkpoint."""
    run = comparison_run(wildcards.comparison, wildcards.run)
    out = {"dataset": comparison_dataset(wildcards)}
    if run.init:
        out["init"] = f"resources/comparisons/{wildcards.comparison}/{run.init}.pt"
    return out


def comparison_records(wildcards):
    """Every scored record file of a comparison: each run's (pruning: each pruned network's)."""
    c = COMPARISONS[wildcards.comparison]
    if c.kind == "pruning":
        return [f"results/{c.name}/pruned/{r.name}.json" for r in c.pruned]
    return [f"results/{c.name}/runs/{r.name}.json" for r in c.runs]


def comparison_spec(name):
    """What the table and figure rules need of a comparison, as plain data."""
    c = COMPARISONS[name]
    return {
        "title": c.title,
        "kind": c.kind,
        "baseline": c.baseline,
        "quality": c.quality,
        "quality_label": c.quality_label,
        "higher_is_better": c.higher_is_better,
        "rule": c.rule,
        "weights": list(c.weights),
        "sparsities": list(c.sparsities),
        "epsilon": c.epsilon,
    }


def comparison_outputs(name):
    """A comparison's final targets: its tables and figure (PNG and PDF)."""
    if COMPARISONS[name].kind == "allocation":
        return [
            f"results/{name}/allocation.tsv",
            f"results/{name}/allocation_summary.tsv",
            *expand(f"results/{name}/figures/allocation.{{ext}}", ext=FORMATS),
        ]
    return [
        f"results/{name}/runs.tsv",
        f"results/{name}/differences.tsv",
        *expand(f"results/{name}/figures/differences.{{ext}}", ext=FORMATS),
    ]
