"""Rule correlation_flow_figure: α by layer depth for the best and the worst model of each
family by its headline quality (Nat. Commun. 2021's "correlation flow"; htsr.figures.spectra)."""

import pandas as pd

from htsr.figures.common import save_figure
from htsr.figures.spectra import correlation_flow_figure
from htsr.io import job_log
from htsr.studies.study import headline_functions
from htsr.studies.table import select_layers
from htsr.studies.trends import with_more_families

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_log(smk.log[0], "correlation_flow_figure")
study = smk.params.study
headline, higher_is_better = headline_functions(study)
models = pd.read_csv(smk.input.models, sep="\t", keep_default_na=False, na_values=[""])
layers = models.set_index("model")["layers"] if "layers" in models else {}
columns = ["layer", "alpha", "status"]
spectra = {
    model: select_layers(pd.read_parquet(path, columns=columns), layers.get(model))
    for model, path in zip(smk.params.models, smk.input.spectra, strict=True)
}
models = with_more_families(models, study["more_families"])
figure = correlation_flow_figure(
    models, spectra, headline=headline, higher_is_better=higher_is_better,
    families=study["families"],
    title=f"{study['name']}: correlation flow, α by layer depth for the best and worst model",
)  # fmt: skip
save_figure(figure, [smk.output.png, smk.output.pdf])
log.info("%d models' spectra read", len(spectra))
