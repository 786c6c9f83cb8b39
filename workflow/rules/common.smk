# Shared by the workflow's .smk files -- the model table, input and resource functions.
import math

from htsr import zoo

WEIGHTS_DIR = "resources/weights"
FIGURES = ("vgg", "resnet", "families", "alpha_histogram", "metrics_comparison")
FORMATS = ("png", "pdf")
# model_spectra cost measured on random-init models (docs/pipeline.md): the worst seconds per
# million parameters seen (one torch thread, a loaded 2-core machine), and a fixed start-up
# (imports, model build, weight load).
SPECTRA_S_PER_MPARAM = 0.65
SPECTRA_STARTUP_S = 30.0

# Read and validate the model table and the selection at parse time: a bad row, an unknown
# model or family stops the run before any job, with a message naming the row.
MODEL_TABLE = zoo.read_model_table(config["models"])
MODELS = zoo.select_models(MODEL_TABLE, config["model_set"]).set_index(
    "model", drop=False
)


# the columns htsr.zoo needs to fetch and build a model; as params of a rule, a change to one of
# them (not to an accuracy) makes Snakemake rerun the model's jobs
IDENTITY_COLUMNS = [
    "model",
    "model_id",
    "source",
    "weights_tag",
    "url",
    "sha256",
    "revision",
]


def weights_file(model):
    """Where the weight file of a model lives: resources/weights/{model}.pth|.safetensors."""
    return str(zoo.weights_path(MODELS.loc[model], WEIGHTS_DIR))


def weights_input(wildcards):
    """Input function of model_spectra: the weight file of {model}."""
    return weights_file(wildcards.model)


def model_params(wildcards):
    """Params function: the identity columns of {model}'s table row, as a plain dict."""
    return MODELS.loc[wildcards.model, IDENTITY_COLUMNS].to_dict()


def spectra_files():
    """The spectra tables of every selected model (inputs of the run-wide rules)."""
    return expand("results/spectra/{model}.parquet", model=MODELS.index)


def all_outputs():
    """Every final target of the workflow (rule all)."""
    return [
        "results/models.tsv",
        "results/trends.tsv",
        *expand("results/figures/{figure}.{ext}", figure=FIGURES, ext=FORMATS),
        *expand("results/figures/esd/{model}.{ext}", model=MODELS.index, ext=FORMATS),
        "results/provenance.json",
    ]


def _weight_mb(wildcards):
    return 4 * int(MODELS.loc[wildcards.model, "num_params"]) / 1e6  # float32 bytes


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
    """Minutes: 3x the measured cost (SPECTRA_* above) for safety, times the attempt number."""
    mparams = int(MODELS.loc[wildcards.model, "num_params"]) / 1e6
    seconds = SPECTRA_STARTUP_S + SPECTRA_S_PER_MPARAM * mparams
    return math.ceil(3 * seconds / 60) * attempt


def analysis_mem_mb(wildcards, attempt):
    """MB for table and figure jobs: 2 GB, times the attempt number."""
    return 2048 * attempt


def analysis_runtime(wildcards, attempt):
    """Minutes for table and figure jobs: 10, times the attempt number."""
    return 10 * attempt


def provenance_runtime(wildcards, attempt):
    """Minutes: hashing every weight file at a pessimistic 50 MB/s plus 5, times the attempt."""
    total_mb = 4 * MODELS["num_params"].astype(float).sum() / 1e6
    return math.ceil(5 + total_mb / 50 / 60) * attempt
