# Shared by the workflow's .smk files -- the model table, input and resource functions.
import math

import pandas as pd

from htsr import zoo

WEIGHTS_DIR = "resources/weights"
FIGURES = ("families", "alpha_histogram", "metrics_comparison")
FORMATS = ("png", "pdf")
# model_spectra cost measured on random-init models (docs/pipeline.md): the worst seconds per
# million parameters seen (one torch thread, a loaded 2-core machine), and a fixed start-up
# (imports, model build, weight load).
SPECTRA_S_PER_MPARAM = 0.65
SPECTRA_STARTUP_S = 30.0
# evals: tsvd (randomized SVD of M-1 components, 7 power iterations): measured at 2.7 s per
# million parameters on 2 threads (24-30x the exact route's 0.11 s; benchmarks/bench_methods.py,
# docs/paper.md), below SPECTRA_S_PER_MPARAM x TSVD_COST_FACTOR = 6.5 s.
TSVD_COST_FACTOR = 10.0

# Read and validate the model table and the selection at parse time: a bad row, an unknown
# model or family stops the run before any job, with a message naming the row.
MODEL_TABLE = zoo.read_model_table(config["models"])
MODELS = zoo.select_models(MODEL_TABLE, config["model_set"]).set_index(
    "model", drop=False
)
# one row per weight file: rows of several model sets that read the same file (the torchvision
# VGGs of both papers) share one download and one spectrum
WEIGHTS = MODELS.drop_duplicates("weights").set_index("weights", drop=False)
SETS = list(dict.fromkeys(MODELS["set"]))
METHODS = config.get("methods") or {}
for _set, _names in (config.get("set_methods") or {}).items():
    for _name in _names:
        if _name not in METHODS:
            raise ValueError(
                f"config set_methods: model set {_set!r} names method {_name!r}, which is not"
                f" in config methods ({', '.join(METHODS) or 'none'})"
            )


def _read_figure_table(path):
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    need = ["figure", "set", "method", "families", "metrics", "title"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"figure table {path}: missing column(s) {', '.join(missing)}")
    for line, rec in zip(range(2, len(table) + 2), table.itertuples()):
        if rec.method != "main" and rec.method not in METHODS:
            raise ValueError(
                f"figure table {path} line {line} ({rec.figure!r}): unknown method"
                f" {rec.method!r} (main or one of config methods)"
            )
    return table.set_index("figure", drop=False)


FIGURE_TABLE = _read_figure_table(config["figures"])


def set_methods(set_name):
    """The extra methods (config set_methods) whose spectra a model set's models get."""
    return list((config.get("set_methods") or {}).get(set_name, []))


def method_models(method):
    """The selected models run with ``method``: those of the sets that name it."""
    return MODELS[[method in set_methods(s) for s in MODELS["set"]]]


# methods that some selected model set uses
RUN_METHODS = [m for m in METHODS if len(method_models(m))]
# figures of the figure table whose model set is selected (and whose method runs)
RUN_FIGURES = [
    f
    for f, rec in FIGURE_TABLE.iterrows()
    if rec["set"] in SETS and (rec["method"] == "main" or rec["method"] in RUN_METHODS)
]


# the columns htsr.zoo needs to fetch and build a model; as params of a rule, a change to one of
# them (not to an accuracy) makes Snakemake rerun the model's jobs
IDENTITY_COLUMNS = [
    "model",
    "weights",
    "model_id",
    "source",
    "weights_tag",
    "url",
    "sha256",
    "sha1",
    "revision",
]
# the columns of the model table that the per-model tables carry
ROW_COLUMNS = ["model", "set", "family", "label", "source", "top1", "top5", "weights"]


def weights_file(weights):
    """Where a weight file lives: resources/weights/{weights}.pth|.safetensors|.pth.zip."""
    return str(zoo.weights_path(WEIGHTS.loc[weights], WEIGHTS_DIR))


def weights_input(wildcards):
    """Input function of the spectra rules: the weight file {weights}."""
    return weights_file(wildcards.weights)


def weights_params(wildcards):
    """Params function: the identity columns of the first row reading {weights}, a plain dict."""
    return WEIGHTS.loc[wildcards.weights, IDENTITY_COLUMNS].to_dict()


def results_dir(method="main"):
    """Where a method's tables go: results/ for the run's convention ("main"), else
    results/methods/{method}/."""
    return "results" if method == "main" else f"results/methods/{method}"


def spectra_files(models=None, method="main"):
    """The spectra tables of ``models`` (default: every selected model), one per model row, in
    order, under ``results_dir(method)``."""
    models = MODELS if models is None else models
    return [f"{results_dir(method)}/spectra/{w}.parquet" for w in models["weights"]]


def model_rows(models):
    """The model-table columns the per-model tables carry, as plain records (a rule param)."""
    return models[ROW_COLUMNS].to_dict("records")


def method_options(wildcards):
    """Params function: convention and evals of the method {method}."""
    return dict(METHODS[wildcards.method])


def figure_inputs(wildcards):
    """Input function of trend_figure: the models and trends tables of the figure's method."""
    where = results_dir(FIGURE_TABLE.loc[wildcards.figure, "method"])
    return {"models": f"{where}/models.tsv", "trends": f"{where}/trends.tsv"}


def comparison_inputs(wildcards):
    """Input function of paper_comparison: the models/trends tables of main and every method."""
    cfg = config["paper_comparison"]
    tables = {key: cfg[key] for key in ("printed", "spec", "notes")}
    for method in ("main", *RUN_METHODS):
        suffix = "" if method == "main" else f"_{method}"
        tables[f"models{suffix}"] = f"{results_dir(method)}/models.tsv"
        tables[f"trends{suffix}"] = f"{results_dir(method)}/trends.tsv"
    return tables


def all_outputs():
    """Every final target of the workflow (rule all)."""
    out = [
        "results/models.tsv",
        "results/trends.tsv",
        *expand("results/figures/{figure}.{ext}", figure=FIGURES, ext=FORMATS),
        *expand("results/figures/{figure}.{ext}", figure=RUN_FIGURES, ext=FORMATS),
        *expand("results/figures/alpha_histogram/{set}.{ext}", set=SETS, ext=FORMATS),
        *expand("results/figures/esd/{model}.{ext}", model=MODELS.index, ext=FORMATS),
        *expand("results/methods/{method}/models.tsv", method=RUN_METHODS),
        "results/provenance.json",
    ]
    if config.get("paper_comparison"):
        out += [
            "results/paper_comparison.tsv",
            *expand("results/figures/paper_comparison.{ext}", ext=FORMATS),
        ]
    return out


def _weight_mb(wildcards):
    return 4 * int(WEIGHTS.loc[wildcards.weights, "num_params"]) / 1e6  # float32 bytes


def download_mem_mb(wildcards, attempt):
    """Streaming download and hashing: a fixed 1 GB, doubled on each retry."""
    return 1024 * 2 ** (attempt - 1)


def download_runtime(wildcards, attempt):
    """Minutes: the file at a pessimistic 2 MB/s plus 10 min, doubled on each retry."""
    return math.ceil((10 + _weight_mb(wildcards) / 2 / 60) * 2 ** (attempt - 1))


def spectra_mem_mb(wildcards, attempt):
    """MB: 2 GB for the interpreter and torch plus 5 float32 copies' worth of the weights
    (the built model, the loaded state_dict, float64 copies of the largest layer and its
    Gram matrix), times the attempt number."""
    return math.ceil((2048 + 5 * _weight_mb(wildcards)) * attempt)


def spectra_runtime(wildcards, attempt):
    """Minutes: 3x the measured cost (SPECTRA_* above) for safety, times the attempt number;
    TSVD_COST_FACTOR times that for a method with evals: tsvd."""
    mparams = int(WEIGHTS.loc[wildcards.weights, "num_params"]) / 1e6
    seconds = SPECTRA_STARTUP_S + SPECTRA_S_PER_MPARAM * mparams
    method = getattr(wildcards, "method", None)
    if method is not None and METHODS[method]["evals"] == "tsvd":
        seconds *= TSVD_COST_FACTOR
    return math.ceil(3 * seconds / 60) * attempt


def analysis_mem_mb(wildcards, attempt):
    """MB for table and figure jobs: 2 GB, times the attempt number."""
    return 2048 * attempt


def analysis_runtime(wildcards, attempt):
    """Minutes for table and figure jobs: 10, times the attempt number."""
    return 10 * attempt


def provenance_runtime(wildcards, attempt):
    """Minutes: hashing every weight file at a pessimistic 50 MB/s plus 5, times the attempt."""
    total_mb = 4 * WEIGHTS["num_params"].astype(float).sum() / 1e6
    return math.ceil(5 + total_mb / 50 / 60) * attempt
