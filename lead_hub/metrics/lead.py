"""LEAD (Hu et al., CVPR 2024): transferability from the closed-form evolution of logits during fine-tuning.

    score = mean_i F̂(x_i)[y_i],   F̂(x) = (1 − e^{−r_k}) y + e^{−r_k} log_init(x),   r_k = c · λ̄_k

with log_init the normalised outputs of a linear classifier on the features (``_lead_log_init``), λ̄_k the mean
eigenvalue of the per-class empirical NTK of F = h∘f, h a random MLP head (``_lead_ntk``), and c = η·t the product
of the learning rate and the time (``_lead_evolution``). The NTK is taken w.r.t. the head's parameters alone
(``ntk="head"``, in closed form from the features) or w.r.t. all parameters of F (``ntk="full"``, from per-sample
gradient norms the extraction pipeline computes with the model, the paper's equations and the default whenever
the norms are given). The score is the mean evolved probability of the true class (``ce_form="prob"``, in [0, 1];
``"log_prob"`` gives the paper's negative cross-entropy instead). Every open point of the paper is an option here;
the defaults were chosen on the development targets of the offline benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lead_hub.metrics._content_keys import content_keys, id_keys
from lead_hub.metrics._lead_evolution import CE_FORMS, evolution_score
from lead_hub.metrics._lead_log_init import initial_logits
from lead_hub.metrics._lead_ntk import HEAD_INPUTS, class_mean_eigenvalues, ntk_head, ntk_rows
from lead_hub.metrics._registry import register
from lead_hub.metrics._scaling import ColumnScaling
from lead_hub.metrics._validation import check_inputs

RATE_SCALES = ("standardize", "per_model", "raw")
NTKS = ("auto", "full", "head")
#: The rate constant c = η·t used when ``rate_constant`` is None, per NTK and head input (``per_model`` rates are
#: λ̄_k / mean λ̄ ≈ 1 already and take c = 1). Each is the best cell of its NTK on the development targets of the
#: offline benchmark (highest mean full-data τw over the rate constants, log_init fits and CE forms scored, ties
#: by low-data τw), with fit="in_sample" and ce_form="prob" (the defaults below):
#: whole network, standardised head input: c = 1e-8, mean τw 0.480 [0.155, 0.656] at full data, 0.325 in low data;
#: head only, standardised: c = 2⁻¹⁸ ≈ 3.8e-6, 0.380 [0.101, 0.589] and 0.257 (λ̄ ≈ D + Σ widths + 2 ≈ 4100, so
#: rates near 0.016). The whole network's λ̄ runs 10⁴–10⁷, so the head-only constant would saturate it: each NTK
#: has its own. Raw head inputs: the whole network's best cell (c = 1e-10), the head's historical 1/4096.
DEFAULT_RATE_CONSTANTS = {
    ("full", "standardized"): 1e-8,
    ("full", "raw"): 1e-10,
    ("head", "standardized"): 2.0 ** -18,
    ("head", "raw"): 1.0 / 4096,
}
#: Median rates c·λ̄ outside these bounds make LEAD's score say little about the NTK: above the upper one every
#: model's evolved logits sit on the labels (e^−20 ≈ 2e-9 of log_init is left), below the lower one the evolution
#: moves the true-class probability by less than 1e-6 and the score is log_init's alone.
RATE_BOUNDS = (1e-6, 20.0)


@dataclass(frozen=True)
class LeadOptions:
    """The settings of one LEAD run; every model of a ranking must be scored with the same options.

    ``ntk``: ``"full"`` takes λ̄_k from all parameters of F = h∘f (the paper's equations), which needs the model:
    ``lead()`` then reads the per-sample gradient norms ``ntk_sq_norms`` the extraction pipeline computed;
    ``"head"`` from the random head's parameters alone, in closed form from the features (a second-hand reading of
    the paper's supplement); ``"auto"`` (default) is ``"full"`` when ``ntk_sq_norms`` is given and ``"head"``
    otherwise (the metric called on a feature matrix alone). ``lead_hub.rank`` resolves ``"auto"`` to ``"full"``.
    ``head_input``: what the random head reads, ``"standardized"`` (column-standardised features) or ``"raw"`` (the
    features as extracted); None keeps the historical coupling to ``rate_scale``: ``"standardized"`` with
    ``rate_scale="standardize"``, ``"raw"`` with ``"per_model"`` and ``"raw"``.
    ``rate_constant``: c = η·t; None takes :data:`DEFAULT_RATE_CONSTANTS` of the resolved NTK and head input.
    """

    classifier: str = "ridge"
    fit: str = "in_sample"
    margins: str = "softmax"
    regularization: float = 1e-2
    folds: int = 5
    rate_scale: str = "standardize"
    rate_constant: float | None = None
    head_widths: tuple[int, ...] = (1024, 2048)
    ntk_samples_per_class: int = 64
    ce_form: str = "prob"
    seed: int = 0
    ntk: str = "auto"
    head_input: str | None = None

    def resolved_ntk(self, has_norms: bool) -> str:
        """``ntk`` with ``"auto"`` resolved: ``"full"`` when the whole network's norms are given, else ``"head"``."""
        if self.ntk not in NTKS:
            raise ValueError(f"lead: ntk={self.ntk!r} is not one of {', '.join(NTKS)}")
        if self.ntk == "auto":
            return "full" if has_norms else "head"
        return self.ntk

    def resolved_rate_constant(self, ntk: str = "head") -> float:
        """c = η·t: ``rate_constant``, or the documented default of the NTK ``ntk`` ("full"/"head") and head input."""
        if self.rate_scale not in RATE_SCALES:
            raise ValueError(f"lead: rate_scale={self.rate_scale!r} is not one of {', '.join(RATE_SCALES)}")
        if self.rate_constant is not None:
            return float(self.rate_constant)
        if self.rate_scale == "per_model":
            return 1.0
        return DEFAULT_RATE_CONSTANTS[(ntk, self.resolved_head_input())]

    def resolved_head_input(self) -> str:
        """``head_input``, or the one ``rate_scale`` implied before the option existed (see the class docstring)."""
        if self.head_input is None:
            return "standardized" if self.rate_scale == "standardize" else "raw"
        if self.head_input not in HEAD_INPUTS:
            raise ValueError(f"lead: head_input={self.head_input!r} is not one of {', '.join(HEAD_INPUTS)}")
        return self.head_input


def ranking_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The LEAD options a ranking scores every model with: ``options`` with ``ntk="auto"`` resolved to ``"full"``
    (a ranking has the models, so it takes the paper's whole-network NTK) and every default that shapes the score
    written out (``ntk``, ``fit``, ``ce_form``, ``rate_constant``, ``head_input``), so a leaderboard records what it
    was scored with, whatever later versions take as defaults."""
    settings = LeadOptions(**options)
    ntk = "full" if settings.ntk == "auto" else settings.resolved_ntk(has_norms=False)
    return {**options, "ntk": ntk, "fit": settings.fit, "ce_form": settings.ce_form,
            "rate_constant": settings.resolved_rate_constant(ntk), "head_input": settings.resolved_head_input()}


def rate_warning(rates: np.ndarray, ntk: str) -> str | None:
    """A one-line warning when the median of the rates c·λ̄_k (over classes, and over models when given a
    ranking's rates together) lies outside :data:`RATE_BOUNDS`, naming the option to change; None otherwise."""
    median = float(np.median(rates))
    low, high = RATE_BOUNDS
    if low <= median <= high:
        return None
    state = "saturate: every model's logits converge to the labels" if median > high else \
        "vanish: the score is the log_init classifier's alone"
    direction = "lower" if median > high else "raise"
    return (f"lead: the NTK rates c·λ̄ {state} (median {median:.3g}, outside [{low:g}, {high:g}] with the "
            f"{ntk} NTK); {direction} --metric-option lead.rate_constant=C, or leave it unset for the documented "
            f"default of lead.ntk={ntk}")


@dataclass
class LeadDiagnostics:
    """What LEAD computed on the way to its score, for inspection and for the ranking's per-class report."""

    score: float
    classifier_only_score: float
    class_eigenvalues: np.ndarray
    rates: np.ndarray
    log_init_accuracy: float
    log_init_true_class_mean: float
    feature_dims_used: int
    seconds: dict[str, float] = field(default_factory=dict)
    options: dict = field(default_factory=dict)


@register(
    "lead",
    summary="How well the model's outputs would fit your labels after fine-tuning, predicted without training it",
    reference="Hu et al., LEAD: Exploring Logit Space Evolution for Model Selection, CVPR 2024",
    sample_arrays=("sample_ids", "ntk_sq_norms"),
)
def lead(features, labels, *, source_logits=None, sample_ids=None, ntk_sq_norms=None,
         return_diagnostics: bool = False, **options):
    """LEAD score of one model (higher = predicted to fine-tune better).

    ``features``: N×D pooled penultimate features (any float dtype); ``labels``: N integers (remapped to 0..K−1);
    ``source_logits`` is accepted for the common signature and unused. ``options`` are the fields of
    :class:`LeadOptions`. With ``return_diagnostics=True`` returns ``(score, LeadDiagnostics)``.

    ``sample_ids``: optional N distinct integers, the samples' stable identities (the pipeline passes each row's
    index in its source split). With ids, the rows of class k that enter λ̄_k are ``ntk_samples_per_class`` of them
    chosen by a seeded hash of the id (:func:`~lead_hub.metrics._lead_ntk.ntk_rows`), and so are the folds of
    ``fit="out_of_fold"``: choices that cannot move with the features' round-off and follow each sample under
    permutation. Without ids no per-sample choice is made by default: every row of class k enters λ̄_k (with
    ``ntk_sq_norms``: every row of class k where they are finite), and the in-sample log_init has no folds, so the
    score is a function of the feature matrix, unmoved by its round-off. Only ``fit="out_of_fold"`` without ids
    deals its folds by a hash of the features' content (``content_keys``), which round-off can move.

    ``ntk_sq_norms`` (used with ``ntk="full"``, or ``"auto"`` when given): N float64 per-sample squared gradient
    norms ‖∇_θ (1/√K) Σ_j F_j(x_i)‖² over all parameters θ of F = h∘f (backbone and the head of
    :func:`~lead_hub.metrics._lead_ntk.ntk_head` with the same ``head_widths``, ``seed`` and ``head_input``), NaN
    on rows the pipeline did not compute; λ̄_k is their mean over the NTK rows of class k.

    Constant feature dimensions are dropped before both the classifier and the head (the score of a model is
    unchanged by padding its features with constant dimensions). A median rate outside :data:`RATE_BOUNDS` is
    reported by :func:`rate_warning` (``lead_hub.rank`` checks a whole ranking's rates with it).
    """
    settings = LeadOptions(**options)
    if settings.ce_form not in CE_FORMS:
        raise ValueError(f"lead: ce_form={settings.ce_form!r} is not one of {', '.join(CE_FORMS)}")
    if settings.ce_form != "softmax_ce" and settings.margins == "raw":
        raise ValueError("lead: margins='raw' are not probabilities; use ce_form='softmax_ce' with them, or "
                         "margins='softmax'/'calibrated'")
    ntk = settings.resolved_ntk(has_norms=ntk_sq_norms is not None)
    rate_constant = settings.resolved_rate_constant(ntk)
    head_input = settings.resolved_head_input()
    # float32 features stay float32: they are standardised block by block in float64 (``_scaling``).
    checked = check_inputs(features, labels, source_logits, metric="lead", keep_float32=True)
    num_samples = len(checked.labels)
    if sample_ids is not None and len(sample_ids) != num_samples:
        raise ValueError(f"lead: sample_ids has {len(sample_ids)} entries for {num_samples} samples; pass one id per "
                         "feature row, sliced with the rows")
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    scaling = ColumnScaling.fit(checked.features)
    if sample_ids is not None:
        keys = id_keys(sample_ids, settings.seed)
    elif settings.fit == "out_of_fold":
        keys = content_keys(scaling.blocks(checked.features), settings.seed)
    else:
        keys = None  # no per-sample choice is made: nothing to key
    seconds["standardize"] = time.perf_counter() - started

    started = time.perf_counter()
    log_init = initial_logits(checked.features, checked.labels, checked.num_classes, keys=keys, scaling=scaling,
                              classifier=settings.classifier, fit=settings.fit, margins=settings.margins,
                              regularization=settings.regularization, folds=settings.folds, seed=settings.seed)
    seconds["log_init"] = time.perf_counter() - started

    started = time.perf_counter()
    if ntk == "full":
        eigenvalues = _full_network_eigenvalues(ntk_sq_norms, checked.labels, checked.num_classes, keys,
                                                settings.ntk_samples_per_class)
    else:
        rows_per_class = _ntk_rows(checked.labels, checked.num_classes, keys, settings.ntk_samples_per_class)
        head = ntk_head(checked.features, checked.num_classes, widths=tuple(settings.head_widths),
                        seed=settings.seed, head_input=head_input, scaling=scaling)
        eigenvalues = class_mean_eigenvalues(head.head, head.inputs(checked.features, np.concatenate(rows_per_class)),
                                             [len(rows) for rows in rows_per_class])
    seconds["ntk"] = time.perf_counter() - started

    started = time.perf_counter()
    rates = rate_constant * (eigenvalues / eigenvalues.mean() if settings.rate_scale == "per_model" else eigenvalues)
    score = evolution_score(log_init, checked.labels, rates, settings.ce_form)
    seconds["evolution"] = time.perf_counter() - started
    if not return_diagnostics:
        return score

    rows = np.arange(num_samples)
    diagnostics = LeadDiagnostics(
        score=score,
        classifier_only_score=evolution_score(log_init, checked.labels, np.zeros_like(rates), settings.ce_form),
        class_eigenvalues=eigenvalues,
        rates=rates,
        log_init_accuracy=float((log_init.argmax(axis=1) == checked.labels).mean()),
        log_init_true_class_mean=float(log_init[rows, checked.labels].mean()),
        feature_dims_used=len(scaling.columns),
        seconds=seconds,
        options={**asdict(settings), "ntk": ntk, "rate_constant": rate_constant, "head_input": head_input,
                 "sample_keys": "sample_ids" if sample_ids is not None else
                 ("content" if keys is not None else "none")},
    )
    return score, diagnostics


def _ntk_rows(labels: np.ndarray, num_classes: int, keys: np.ndarray | None, samples_per_class: int
              ) -> list[np.ndarray]:
    """The rows of each class that enter λ̄_k: chosen by ``keys`` (:func:`ntk_rows`), or every row of the class when
    there are no keys (no per-sample choice, so nothing round-off could move)."""
    if keys is None:
        return [np.flatnonzero(labels == cls) for cls in range(num_classes)]
    return ntk_rows(labels, num_classes, keys=keys, samples_per_class=samples_per_class)


def _full_network_eigenvalues(ntk_sq_norms, labels: np.ndarray, num_classes: int, keys: np.ndarray | None,
                              samples_per_class: int) -> np.ndarray:
    """λ̄_k of the whole network: the mean of the given per-sample squared gradient norms over the NTK rows of class
    k, chosen by ``keys`` (:func:`ntk_rows`), or, without keys, every row of class k where the norms are finite."""
    fix = ("compute them in the extraction pass (`--metric-option lead.ntk=full` in `lead-hub rank`, "
           "or the extraction pipeline's whole-network NTK), or score with lead.ntk=head")
    num_samples = len(labels)
    if ntk_sq_norms is None:
        raise ValueError(f"lead: ntk='full' needs ntk_sq_norms, the per-sample squared gradient norms of the whole "
                         f"network; {fix}")
    norms = np.asarray(ntk_sq_norms, dtype=np.float64)
    if norms.shape != (num_samples,):
        raise ValueError(f"lead: ntk_sq_norms must hold one value per sample ({num_samples}), got shape "
                         f"{norms.shape}; slice it with the rows like the features")
    if keys is None:
        rows_per_class = [np.flatnonzero((labels == cls) & np.isfinite(norms)) for cls in range(num_classes)]
        empty = [cls for cls, rows in enumerate(rows_per_class) if len(rows) == 0]
        if empty:
            raise ValueError(f"lead: ntk_sq_norms has no finite value for the class(es) {empty[:10]}; every class "
                             f"needs norms on at least one of its rows; {fix}")
    else:
        rows_per_class = ntk_rows(labels, num_classes, keys=keys, samples_per_class=samples_per_class)
    selected = np.concatenate(rows_per_class)
    missing = selected[np.isnan(norms[selected])]
    if len(missing):
        raise ValueError(f"lead: ntk='full' needs ntk_sq_norms on the {len(selected)} rows LEAD samples for the NTK, "
                         f"but {len(missing)} of them are NaN (first rows: {missing[:5].tolist()}); the norms were "
                         f"computed for other rows (pass the same sample_ids as the extraction did), or {fix}")
    if not (np.isfinite(norms[selected]).all() and (norms[selected] >= 0).all()):
        raise ValueError("lead: ntk_sq_norms must be finite and non-negative on the NTK rows (they are squared "
                         "gradient norms); check the whole-network NTK computation for overflow")
    return np.array([norms[rows].mean() for rows in rows_per_class])
