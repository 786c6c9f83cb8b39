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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = ["ANSWER_COLUMNS", "MIN_DECIDED", "MIN_ROWS", "answer_table", "verdict"]

#: Fits on fewer models are not listed (no fit exists below 3).
MIN_ROWS = 3
#: Below this many models a fit is listed but ``undecided``.
MIN_DECIDED = 4

ANSWER_COLUMNS = (
    "study", "set", "family", "quality", "transform", "higher_is_better", "metric", "n", "r2",
    "kendall_tau", "kendall_tau_low", "kendall_tau_high", "kendall_p", "slope_sign",
    "claim_tau", "agrees", "verdict", "reference", "non_cnn",
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


def answer_table(
    trends: Mapping[str, pd.DataFrame],
    higher_is_better: Mapping[tuple[str, str], bool],
    *,
    reference: str = "imagenet",
    non_cnn: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The answer table from each study's ``trends.tsv`` (``trends[study]``) and each judged
    quality's direction (``higher_is_better[(study, quality)]``; a quality not in it, e.g. a
    rate, is left out); ``non_cnn[study]`` is ``"all"`` or the study's non-CNN families. See
    the module docstring."""
    rows = []
    non_cnn = non_cnn or {}
    for study, table in trends.items():
        fitted = table[(table["status"] == "ok") & (table["n"] >= MIN_ROWS)]
        judged = [(study, q) in higher_is_better for q in fitted["quality"]]
        fitted = fitted[judged]
        others = non_cnn.get(study) or ()
        for rec in fitted.to_dict("records"):
            better = bool(higher_is_better[(study, rec["quality"])])
            tau = float(rec["kendall_tau"])
            claim = -tau if better else tau
            transform = rec.get("transform")
            rows.append({
                "study": study, "set": rec.get("set", ""), "family": rec["family"],
                "quality": rec["quality"],
                "transform": transform if isinstance(transform, str) else "",
                "higher_is_better": better, "metric": rec["metric"], "n": int(rec["n"]),
                "r2": rec["r2"], "kendall_tau": tau, "kendall_tau_low": rec["kendall_tau_low"],
                "kendall_tau_high": rec["kendall_tau_high"], "kendall_p": rec["kendall_p"],
                "slope_sign": int(np.sign(rec["slope"])), "claim_tau": claim,
                "agrees": bool(claim > 0),
                "verdict": verdict(tau, float(rec["kendall_tau_low"]),
                                   float(rec["kendall_tau_high"]), int(rec["n"]), better),
                "reference": study == reference,
                "non_cnn": others == "all" or rec["family"] in others,
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))


class Question(NamedTuple):
    """One question the answer text states: the ``studies`` that answer it (empty: every
    study), whether only their non-CNN families do, whether the pipeline trains their models
    (``trained``: a run needs data, not pretrained weights), and the ``--config`` of a run
    that answers it (default ``'studies=[imagenet,<studies>]'``, trained ones without
    imagenet)."""

    title: str
    studies: tuple[str, ...]
    non_cnn_only: bool = False
    trained: bool = False
    config: str = ""

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
    Question("Autoencoders (reconstruction quality)", ("autoencoders",)),
    Question("Semantic segmentation", ("segmentation",)),
    Question("NLP (language models)", ("nlp",)),
    Question("Control: CNN batch size, trained here", ("cnn_batch_size",), trained=True),
    Question("Graph networks, trained here", ("gnn",), trained=True),
    Question("Capsule networks, trained here", ("capsnet",), trained=True),
)  # fmt: skip


def answer_text(table: pd.DataFrame, *, metric: str = "alpha_weighted") -> str:
    """Markdown that states, from ``table`` alone (:func:`answer_table`, one row per family for
    its headline quality), what the run found for each question of :data:`QUESTIONS` and for
    the ImageNet reference: how many families' trends of ``metric`` hold, fail or are undecided,
    naming them, or that the run has no such study."""
    rows = table[table["metric"] == metric]
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
        if part.empty:
            needs = "a run" if q.trained else "a run with the real weights"
            lines.append(
                f"- **{q.title}**: no fitted family in this run; it needs {needs}:"
                f" `snakemake --cores 16 --config {q.run_config()}`."
            )
        else:
            found = ", ".join(dict.fromkeys(part["study"]))
            lines.append(f"- **{q.title}** ({found}): {counts(part)}.")
    rule = (
        "Verdict rule: `undecided` with fewer than 4 models or when the 95 % bootstrap interval"
        " of Kendall τ contains 0; otherwise `holds` when τ has the sign the paper claims"
        " (better quality with a smaller metric), `fails` when it has the other."
    )
    lines += ["", rule]
    return "\n".join(lines) + "\n"
