"""Does heavy-tailed quality prediction hold beyond ImageNet CNNs? One table across studies.

:func:`answer_table` puts every study's trends side by side: one row per study × family ×
quality × HT-SR metric fitted on at least :data:`MIN_ROWS` models, with n, R², Kendall τ, its
95 % bootstrap interval and p-value, and a **verdict** by a stated rule:

* the paper's claim (Martin & Mahoney 2020; Martin, Peng & Mahoney 2021): better quality goes
  with *smaller* α̂ and smaller log-norms. For a higher-is-better quality that is τ < 0 between
  the metric and the quality; for a lower-is-better one (perplexity, bpp, rFID) τ > 0.
  ``agrees`` says whether τ has the claimed sign; ``claim_tau`` is τ turned so that > 0 agrees.
* ``verdict`` is ``undecided`` when fewer than :data:`MIN_DECIDED` models were fitted or the
  95 % interval of τ contains 0 (the data cannot tell the sign); otherwise ``holds`` when τ has
  the claimed sign and ``fails`` when it has the opposite one.

The ImageNet study's rows are the reference block (``reference`` true). ``non_cnn`` marks the
families a study names as non-convolutional (its ``non_cnn_families``: vision transformers in
the ImageNet study's ``extended`` set, SegFormer, every language model): the rows that answer
"does it hold for non-CNN architectures?".

**Which layers.** A fit on few eigenvalues is noise, and small networks have such layers (a
classes × hidden output layer has as many eigenvalues as classes), so a family may declare the
layers its model-level metrics average (its ``layers`` pattern). Each row says which:
``layers`` is the pattern (``all`` without one) and ``layers_choice`` is ``declared``; where a
family has a pattern, the same trend over every layer follows as a row with ``layers_choice``
``all`` (metrics ``{metric}_all_layers`` of :mod:`htsr.studies.trends`), so the choice cannot hide
the answer. ``lambda_max_below_1`` is the mean over the family's models of the fraction of
their fitted matrices with λmax < 1, where α̂ = mean α·log10 λmax *inverts* (a heavier tail,
smaller α, makes α·log10 λmax larger); ``alpha_hat_inverts`` flags families where that
fraction is above 0, and ᾱ (``alpha``) is reported beside α̂ for every family.

**Pooled versus within family.** :func:`pooled_trends` fits a study's trend once over all its
families' models together (family ``(pooled)``, ``pooled`` true). Pooling can reverse a
within-family trend (Simpson's paradox; Martin & Mahoney's post-mortem of the PGDL contest
warns about it): ``simpson`` is true on a pooled row whose τ has the sign opposite to the
median τ of the study's families for that quality and metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "ANSWER_COLUMNS", "MIN_DECIDED", "MIN_ROWS", "POOLED", "answer_table", "pooled_trends",
    "verdict",
]  # fmt: skip

#: The family name of a study's pooled trend (all its families' models together).
POOLED = "(pooled)"

#: Fits on fewer models are not listed (no fit exists below 3).
MIN_ROWS = 3
#: Below this many models a fit is listed but ``undecided``.
MIN_DECIDED = 4

ANSWER_COLUMNS = (
    "study", "set", "family", "quality", "transform", "higher_is_better", "metric", "n", "r2",
    "kendall_tau", "kendall_tau_low", "kendall_tau_high", "kendall_p", "slope_sign",
    "claim_tau", "agrees", "verdict", "reference", "non_cnn", "layers", "layers_choice",
    "lambda_max_below_1", "alpha_hat_inverts", "pooled", "simpson", "quality_range",
    "seed_sd",
)  # fmt: skip


def verdict(tau: float, low: float, high: float, n: int, higher_is_better: bool) -> str:
    """``holds``, ``fails`` or ``undecided`` by the rule of the module docstring.

    >>> verdict(-0.8, -0.95, -0.4, 8, True), verdict(0.8, 0.4, 0.95, 8, True)
    ('holds', 'fails')
    >>> verdict(-0.8, -0.95, 0.1, 8, True), verdict(-1.0, -1.0, -1.0, 3, True)
    ('undecided', 'undecided')
    """
    if n < MIN_DECIDED or not (np.isfinite(low) and np.isfinite(high)) or low <= 0.0 <= high:
        return "undecided"
    claimed = -1.0 if higher_is_better else 1.0
    return "holds" if np.sign(tau) == claimed else "fails"


def pooled_trends(models: pd.DataFrame, quality: Any, *, metrics: Any = None,
                  n_boot: int = 0) -> pd.DataFrame:  # fmt: skip
    """One study's trends over all its families' ``models`` (a ``models.tsv``) at once, as
    family :data:`POOLED` (:func:`htsr.studies.trends.family_trends`; ``quality``: the study's
    :class:`htsr.studies.table.Quality` list)."""
    from htsr.studies.trends import ALL_LAYER_METRICS, METRICS, family_trends

    chosen = metrics or [m for m in (*METRICS, *ALL_LAYER_METRICS) if m in models.columns]
    return family_trends(models.assign(family=POOLED, set=""), quality=quality,
                         metrics=chosen, group_by=["family"], n_boot=n_boot)  # fmt: skip


def _spread(models: pd.DataFrame | None, family: str, quality: str) -> tuple[float, float]:
    """(range of the setting means, mean of the per-setting seed sds) of a trained family's
    ``quality``; NaN where the models lack settings and seeds."""
    nan = float("nan")
    if models is None or quality not in models or "setting" not in models:
        return nan, nan
    rows = models if family == POOLED else models[models["family"] == family]
    if rows.empty or rows["seed"].isna().all():
        return nan, nan
    keys = ["family", "setting"]
    grouped = rows.groupby(keys)[quality]
    means, sds = grouped.mean(), grouped.std()
    if family == POOLED:
        ranges = means.groupby(level=0).agg(lambda v: v.max() - v.min())
        return float(ranges.mean()), float(sds.mean())
    return float(means.max() - means.min()), float(sds.mean())


def answer_table(
    trends: Mapping[str, pd.DataFrame],
    higher_is_better: Mapping[tuple[str, str], bool],
    *,
    reference: str = "imagenet",
    non_cnn: Mapping[str, Any] | None = None,
    models: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The answer table from each study's ``trends.tsv`` (``trends[study]``, plus any
    :func:`pooled_trends` rows) and each judged quality's direction
    (``higher_is_better[(study, quality)]``; a quality not in it, e.g. a rate, is left out);
    ``non_cnn[study]`` is ``"all"`` or the study's non-CNN families; ``models[study]`` its
    ``models.tsv`` (the families' ``layers`` patterns, λmax < 1 fractions, and for trained
    studies the quality's spread across settings, ``quality_range``, against the seeds'
    ``seed_sd``). See the module docstring."""
    from htsr.studies.trends import ALL_LAYERS

    rows = []
    non_cnn = non_cnn or {}
    models = models or {}
    for study, table in trends.items():
        fitted = table[(table["status"] == "ok") & (table["n"] >= MIN_ROWS)]
        judged = [(study, q) in higher_is_better for q in fitted["quality"]]
        fitted = fitted[judged]
        others = non_cnn.get(study) or ()
        frame = models.get(study)
        patterns, below = {}, {}
        if frame is not None and len(frame):
            if "layers" in frame:
                patterns = frame.groupby("family")["layers"].agg(
                    lambda v: next((str(x) for x in v if isinstance(x, str) and x), "")
                )
            if "lambda_max_below_1" in frame:
                below = frame.groupby("family")["lambda_max_below_1"].mean().to_dict()
                below[POOLED] = float(frame["lambda_max_below_1"].mean())
        for rec in fitted.to_dict("records"):
            better = bool(higher_is_better[(study, rec["quality"])])
            tau = float(rec["kendall_tau"])
            claim = -tau if better else tau
            transform = rec.get("transform")
            metric, family = str(rec["metric"]), rec["family"]
            pattern = str(patterns.get(family, "")) if family != POOLED else ""
            if metric.endswith(ALL_LAYERS):
                if family != POOLED and not pattern:
                    continue  # no declared part: the declared row is already every layer
                metric, choice, layers = metric.removesuffix(ALL_LAYERS), "all", "all"
            else:
                choice = "declared"
                layers = pattern or ("per family" if family == POOLED and len(patterns) else "all")
            share = below.get(family, float("nan"))
            spread, sd = _spread(frame, family, rec["quality"])
            rows.append({
                "study": study, "set": rec.get("set", ""), "family": family,
                "quality": rec["quality"],
                "transform": transform if isinstance(transform, str) else "",
                "higher_is_better": better, "metric": metric, "n": int(rec["n"]),
                "r2": rec["r2"], "kendall_tau": tau, "kendall_tau_low": rec["kendall_tau_low"],
                "kendall_tau_high": rec["kendall_tau_high"], "kendall_p": rec["kendall_p"],
                "slope_sign": int(np.sign(rec["slope"])), "claim_tau": claim,
                "agrees": bool(claim > 0),
                "verdict": verdict(tau, float(rec["kendall_tau_low"]),
                                   float(rec["kendall_tau_high"]), int(rec["n"]), better),
                "reference": study == reference,
                "non_cnn": others == "all" or family in others,
                "layers": layers, "layers_choice": choice, "lambda_max_below_1": share,
                "alpha_hat_inverts": bool(np.isfinite(share) and share > 0),
                "pooled": family == POOLED, "simpson": False,
                "quality_range": spread, "seed_sd": sd,
            })  # fmt: skip
    out = pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))
    pooled = out["pooled"].astype(bool)
    for i in out.index[pooled]:
        r = out.loc[i]
        same = (
            ~pooled
            & (out["study"] == r["study"])
            & (out["quality"] == r["quality"])
            & (out["metric"] == r["metric"])
            & (out["layers_choice"] == r["layers_choice"])
        )
        within = out.loc[same, "kendall_tau"].astype(float)
        if len(within) and np.sign(within.median()) != 0:
            out.loc[i, "simpson"] = bool(np.sign(r["kendall_tau"]) == -np.sign(within.median()))
    return out


class Question(NamedTuple):
    """One question the answer text states: the ``studies`` that answer it (empty: every
    study), whether only their non-CNN families do, whether the pipeline trains their models
    (``trained``: a run needs data, not pretrained weights), the ``--config`` of a run
    that answers it (default ``'studies=[imagenet,<studies>]'``, trained ones without
    imagenet), and the studies trained here that answer the same question (``trained_by``:
    their counts join the question's line, so a run without the pretrained weights still
    answers it in one line)."""

    title: str
    studies: tuple[str, ...]
    non_cnn_only: bool = False
    trained: bool = False
    config: str = ""
    trained_by: tuple[str, ...] = ()

    def run_config(self) -> str:
        if self.config:
            return self.config
        names = ",".join(self.studies)
        return f"'studies=[{names}]'" if self.trained else f"'studies=[imagenet,{names}]'"


#: The questions the paper's readers ask, the controlled experiments (studies the pipeline
#: trains) last.
QUESTIONS = (
    Question("Non-CNN architectures (transformers, graph and capsule networks)", (), True,
             config="'studies=[imagenet,nlp,segmentation,gnn,capsnet]'"
                    " 'model_set=[core,extended]'"),
    Question("Autoencoders (reconstruction quality)", ("autoencoders",),
             trained_by=("autoencoders_trained",)),
    Question("Semantic segmentation", ("segmentation",), trained_by=("segmentation_trained",)),
    Question("NLP (language models)", ("nlp",), trained_by=("nlp_trained",)),
    Question("Control: CNN batch size, trained here", ("cnn_batch_size",), trained=True),
    Question("Graph networks, trained here", ("gnn", "gnn_citeseer"), trained=True),
    Question("Capsule networks, trained here", ("capsnet",), trained=True),
    Question("Autoencoders, trained here (held-out PSNR)", ("autoencoders_trained",),
             trained=True),
    Question("Segmentation, trained here (held-out mIoU)", ("segmentation_trained",),
             trained=True),
    Question("Language models, trained here (held-out log perplexity)", ("nlp_trained",),
             trained=True),
)  # fmt: skip


def _numbers(rec: Any) -> str:
    """``τ = -0.41 [-0.62, -0.18], holds`` for one answer row."""
    return (f"τ = {rec.kendall_tau:+.2f} [{rec.kendall_tau_low:+.2f},"
            f" {rec.kendall_tau_high:+.2f}], {rec.verdict}")  # fmt: skip


def _family_line(rows: pd.DataFrame, family: str, label: str) -> str:
    """One family's numbers: α̂, ᾱ and log-norm (declared layers), α̂ over all layers, the
    quality's spread against the seeds' sd, the λmax < 1 note."""
    fam = rows[rows["family"] == family]
    parts = []
    for metric, name in (("alpha_weighted", "α̂"), ("alpha", "ᾱ"), ("log_norm", "log-norm")):
        hit = fam[(fam["metric"] == metric) & (fam["layers_choice"] == "declared")]
        if len(hit):
            parts.append(f"{name} {_numbers(hit.iloc[0])}")
    every = fam[(fam["metric"] == "alpha_weighted") & (fam["layers_choice"] == "all")]
    if len(every):
        parts.append(f"α̂ over all layers {_numbers(every.iloc[0])}")
    first = fam.iloc[0]
    text = f"  - {label} (n = {int(first.n)}, layers `{first.layers}`): " + "; ".join(parts)
    if np.isfinite(first.quality_range) and np.isfinite(first.seed_sd):
        text += (f"; quality spread across settings {first.quality_range:.3g} against seed sd"
                 f" {first.seed_sd:.3g}")  # fmt: skip
    if first.alpha_hat_inverts:
        text += (f"; λmax < 1 in {100 * first.lambda_max_below_1:.0f} % of the fitted matrices,"
                 " where α̂ inverts: read ᾱ")  # fmt: skip
    if first.pooled and first.simpson:
        text += "; **the pooled sign is opposite to the families' median (Simpson's paradox)**"
    return text


def answer_text(table: pd.DataFrame, *, metric: str = "alpha_weighted") -> str:
    """Markdown that states, from ``table`` alone (:func:`answer_table`, one row per family for
    its headline quality), what the run found for each question of :data:`QUESTIONS` and for
    the ImageNet reference: how many families' trends of ``metric`` (their declared layers)
    hold, fail or are undecided, naming them, or that the run has no such study; for the
    questions answered by training, each family's τ with its 95 % interval and verdict for α̂,
    ᾱ and log-norm, α̂ over all layers, the quality's spread against the seed sd, where
    λmax < 1 inverts α̂, and the pooled trend over the study's families."""
    if "layers_choice" not in table:
        table = table.assign(layers_choice="declared", pooled=False)
    declared = table[(table["layers_choice"] == "declared")]
    rows = declared[(declared["metric"] == metric) & ~declared["pooled"].astype(bool)]
    lines = [f"# Beyond ImageNet: what this run found ({metric})", ""]

    def counts(study_rows: pd.DataFrame) -> str:
        several = study_rows["study"].nunique() > 1  # then families are named with their study
        parts = []
        for v in ("holds", "fails", "undecided"):
            fams = [f"{r.study}/{r.family}" if several else r.family
                    for r in study_rows[study_rows["verdict"] == v].itertuples()]  # fmt: skip
            parts.append(f"{len(fams)} {v}" + (f" ({', '.join(fams)})" if fams else ""))
        return "; ".join(parts)

    ref = rows[rows["reference"].astype(bool)]
    lines.append(f"- **ImageNet (reference)**: {counts(ref) if len(ref) else 'not run'}.")
    for q in QUESTIONS:
        part = rows[rows["study"].isin(q.studies)] if q.studies else rows
        if q.non_cnn_only:
            part = part[part["non_cnn"].astype(bool)]
        trained = rows[rows["study"].isin(q.trained_by)]
        run = f"`snakemake --cores 16 --config {q.run_config()}`"
        if part.empty and trained.empty:
            needs = "a run" if q.trained else "a run with the real weights"
            lines.append(f"- **{q.title}**: no fitted family in this run; it needs {needs}: {run}.")
            continue
        if part.empty:
            line = (f"- **{q.title}**: no pretrained family in this run (it needs the real"
                    f" weights: {run})")  # fmt: skip
        else:
            line = f"- **{q.title}** ({', '.join(dict.fromkeys(part['study']))}): {counts(part)}"
        if not trained.empty:
            line += (f"; on models trained here ({', '.join(dict.fromkeys(trained['study']))}):"
                     f" {counts(trained)}")  # fmt: skip
        lines.append(line + ".")
        if not q.trained:
            continue
        every = table[table["study"].isin(q.studies)]
        for study in dict.fromkeys(part["study"]):
            mine = every[every["study"] == study]
            for family in dict.fromkeys(mine["family"]):
                label = f"{study}/{family}" if len(q.studies) > 1 else family
                lines.append(_family_line(mine, family, label))
    rule = (
        "Verdict rule: `undecided` with fewer than 4 models or when the 95 % bootstrap interval"
        " of Kendall τ contains 0; otherwise `holds` when τ has the sign the paper claims"
        " (better quality with a smaller metric), `fails` when it has the other. `(pooled)`:"
        " all of a study's families fitted together; a pooled sign opposite to the families'"
        " median is flagged as Simpson's paradox."
    )
    lines += ["", rule]
    return "\n".join(lines) + "\n"
