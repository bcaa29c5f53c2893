"""LEAD (Hu et al., CVPR 2024): transferability from the closed-form evolution of logits during fine-tuning.

    score = mean_i log F̂(x_i)[y_i],   F̂(x) = (1 − e^{−r_k}) y + e^{−r_k} log_init(x),   r_k = c · λ̄_k

with log_init the normalised outputs of a linear classifier on the features (``_lead_log_init``), λ̄_k the mean
eigenvalue of the per-class empirical NTK of F = h∘f, h a random MLP head (``_lead_ntk``), and c = η·t the product
of the learning rate and the time (``_lead_evolution``). The NTK is taken w.r.t. the head's parameters alone
(``ntk="head"``, in closed form from the features) or w.r.t. all parameters of F (``ntk="full"``, from per-sample
gradient norms the extraction pipeline computes with the model). Every open point of the paper is an option here;
the defaults were chosen on the development targets of the offline benchmark.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from lead_hub.metrics._content_keys import content_keys, id_keys
from lead_hub.metrics._lead_evolution import CE_FORMS, evolution_score
from lead_hub.metrics._lead_log_init import initial_logits
from lead_hub.metrics._lead_ntk import HEAD_INPUTS, class_mean_eigenvalues, ntk_head, ntk_rows
from lead_hub.metrics._registry import register
from lead_hub.metrics._scaling import ColumnScaling
from lead_hub.metrics._validation import check_inputs

RATE_SCALES = ("standardize", "per_model", "raw")
NTKS = ("head", "full")
#: The rate constant c = η·t used when ``rate_constant`` is None, per ``rate_scale``. With standardised head inputs
#: a He-initialised head has λ̄ ≈ D + Σ widths + 2 (≈ 4100 for D = 1024 and widths (1024, 2048)), so c = 1/4096
#: would put typical rates near 1. The default 1/16384 (rates near 1/4) was chosen on the development targets of
#: the offline benchmark by the rule in benchmarks/README.md (mean τw 0.313 at full data, 0.265 in low data, against 0.279
#: and 0.206 for 1/4096). ``per_model`` rates are λ̄_k / mean λ̄ ≈ 1 already.
DEFAULT_RATE_CONSTANTS = {"standardize": 1.0 / 16384, "per_model": 1.0, "raw": 1.0 / 4096}


@dataclass(frozen=True)
class LeadOptions:
    """The settings of one LEAD run; every model of a ranking must be scored with the same options.

    ``ntk``: ``"head"`` takes λ̄_k from the random head's parameters alone, in closed form from the features;
    ``"full"`` from all parameters of F = h∘f, which needs the model: ``lead()`` then reads the per-sample gradient
    norms ``ntk_sq_norms`` the extraction pipeline computed (``--metric-option lead.ntk=full``).
    ``head_input``: what the random head reads, ``"standardized"`` (column-standardised features) or ``"raw"`` (the
    features as extracted); None keeps the historical coupling to ``rate_scale``: ``"standardized"`` with
    ``rate_scale="standardize"``, ``"raw"`` with ``"per_model"`` and ``"raw"``, so configurations written before
    this option score identically.
    """

    classifier: str = "ridge"
    fit: str = "out_of_fold"
    margins: str = "softmax"
    regularization: float = 1e-2
    folds: int = 5
    rate_scale: str = "standardize"
    rate_constant: float | None = None
    head_widths: tuple[int, ...] = (1024, 2048)
    ntk_samples_per_class: int = 64
    ce_form: str = "log_prob"
    seed: int = 0
    ntk: str = "head"
    head_input: str | None = None

    def resolved_rate_constant(self) -> float:
        """c = η·t: ``rate_constant``, or the documented default of ``rate_scale``."""
        if self.rate_scale not in RATE_SCALES:
            raise ValueError(f"lead: rate_scale={self.rate_scale!r} is not one of {', '.join(RATE_SCALES)}")
        return DEFAULT_RATE_CONSTANTS[self.rate_scale] if self.rate_constant is None else float(self.rate_constant)

    def resolved_head_input(self) -> str:
        """``head_input``, or the one ``rate_scale`` implied before the option existed (see the class docstring)."""
        if self.head_input is None:
            return "standardized" if self.rate_scale == "standardize" else "raw"
        if self.head_input not in HEAD_INPUTS:
            raise ValueError(f"lead: head_input={self.head_input!r} is not one of {', '.join(HEAD_INPUTS)}")
        return self.head_input


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
    index in its source split). Every per-sample random choice, the rows of class k that enter λ̄_k
    (:func:`~lead_hub.metrics._lead_ntk.ntk_rows`) and the out-of-fold folds, is then a seeded hash of the id
    (``_content_keys.id_keys``): it cannot move with the features' round-off and follows each sample under
    permutation. Without ids these choices are keyed by the features' content (``content_keys``): the folds, and
    for a class with more than ``ntk_samples_per_class`` samples the NTK rows, can then move with round-off
    (another batch size, device or BLAS), and the score with them. ``fit="leave_one_out"`` has no folds.

    ``ntk_sq_norms`` (required with ``ntk="full"``, ignored otherwise): N float64 per-sample squared gradient norms
    ‖∇_θ (1/√K) Σ_j F_j(x_i)‖² over all parameters θ of F = h∘f (backbone and the head of
    :func:`~lead_hub.metrics._lead_ntk.ntk_head` with the same ``head_widths``, ``seed`` and ``head_input``), NaN
    on rows the pipeline did not compute; then λ̄_k is their mean over ``ntk_rows`` of class k.

    Constant feature dimensions are dropped before both the classifier and the head (the score of a model is
    unchanged by padding its features with constant dimensions).
    """
    settings = LeadOptions(**options)
    if settings.ce_form not in CE_FORMS:
        raise ValueError(f"lead: ce_form={settings.ce_form!r} is not one of {', '.join(CE_FORMS)}")
    if settings.ce_form != "softmax_ce" and settings.margins == "raw":
        raise ValueError("lead: margins='raw' are not probabilities; use ce_form='softmax_ce' with them, or "
                         "margins='softmax'/'calibrated'")
    if settings.ntk not in NTKS:
        raise ValueError(f"lead: ntk={settings.ntk!r} is not one of {', '.join(NTKS)}")
    rate_constant = settings.resolved_rate_constant()
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
    keys = (content_keys(scaling.blocks(checked.features), settings.seed) if sample_ids is None
            else id_keys(sample_ids, settings.seed))
    seconds["standardize"] = time.perf_counter() - started

    started = time.perf_counter()
    log_init = initial_logits(checked.features, checked.labels, checked.num_classes, keys=keys, scaling=scaling,
                              classifier=settings.classifier, fit=settings.fit, margins=settings.margins,
                              regularization=settings.regularization, folds=settings.folds, seed=settings.seed)
    seconds["log_init"] = time.perf_counter() - started

    started = time.perf_counter()
    rows_per_class = ntk_rows(checked.labels, checked.num_classes, keys=keys,
                              samples_per_class=settings.ntk_samples_per_class)
    if settings.ntk == "full":
        eigenvalues = _full_network_eigenvalues(ntk_sq_norms, rows_per_class, num_samples)
    else:
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
        options={**asdict(settings), "rate_constant": rate_constant, "head_input": head_input,
                 "sample_keys": "content" if sample_ids is None else "sample_ids"},
    )
    return score, diagnostics


def _full_network_eigenvalues(ntk_sq_norms, rows_per_class: list[np.ndarray], num_samples: int) -> np.ndarray:
    """λ̄_k of the whole network: the mean of the given per-sample squared gradient norms over the rows of class k."""
    fix = ("compute them in the extraction pass (`--metric-option lead.ntk=full` in `lead-hub rank`, "
           "or the extraction pipeline's whole-network NTK), or score with lead.ntk=head")
    if ntk_sq_norms is None:
        raise ValueError(f"lead: ntk='full' needs ntk_sq_norms, the per-sample squared gradient norms of the whole "
                         f"network; {fix}")
    norms = np.asarray(ntk_sq_norms, dtype=np.float64)
    if norms.shape != (num_samples,):
        raise ValueError(f"lead: ntk_sq_norms must hold one value per sample ({num_samples}), got shape "
                         f"{norms.shape}; slice it with the rows like the features")
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
