"""LEAD (Hu et al., CVPR 2024): transferability from the closed-form evolution of logits during fine-tuning.

    score = mean_i log F̂(x_i)[y_i],   F̂(x) = (1 − e^{−r_k}) y + e^{−r_k} log_init(x),   r_k = c · λ̄_k

with log_init the normalised outputs of a linear classifier on the features (``_lead_log_init``), λ̄_k the mean
eigenvalue of the per-class empirical NTK of a random MLP head (``_lead_ntk``) and c = η·t the product of the
learning rate and the time (``_lead_evolution``). Every open point of the paper (METHOD.md §3) is an option here;
the defaults were chosen on the development targets (README, "Benchmark").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from lead_hub.metrics._content_keys import content_keys
from lead_hub.metrics._lead_evolution import CE_FORMS, evolution_score
from lead_hub.metrics._lead_log_init import initial_logits
from lead_hub.metrics._lead_ntk import class_mean_eigenvalues, ntk_samples, random_head
from lead_hub.metrics._registry import register
from lead_hub.metrics._scaling import ColumnScaling
from lead_hub.metrics._validation import check_inputs

RATE_SCALES = ("standardize", "per_model", "raw")
#: The rate constant c = η·t used when ``rate_constant`` is None, per ``rate_scale``. With standardised head inputs
#: a He-initialised head has λ̄ ≈ D + Σ widths + 2 (≈ 4100 for D = 1024 and widths (1024, 2048)), so c = 1/4096
#: would put typical rates near 1. The default 1/16384 (rates near 1/4) was chosen on the development targets of
#: the offline benchmark by the rule in the README (mean τw 0.313 at full data, 0.265 in low data, against 0.279
#: and 0.206 for 1/4096). ``per_model`` rates are λ̄_k / mean λ̄ ≈ 1 already.
DEFAULT_RATE_CONSTANTS = {"standardize": 1.0 / 16384, "per_model": 1.0, "raw": 1.0 / 4096}


@dataclass(frozen=True)
class LeadOptions:
    """The settings of one LEAD run; every model of a ranking must be scored with the same options."""

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

    def resolved_rate_constant(self) -> float:
        """c = η·t: ``rate_constant``, or the documented default of ``rate_scale``."""
        if self.rate_scale not in RATE_SCALES:
            raise ValueError(f"lead: rate_scale={self.rate_scale!r} is not one of {', '.join(RATE_SCALES)}")
        return DEFAULT_RATE_CONSTANTS[self.rate_scale] if self.rate_constant is None else float(self.rate_constant)


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
    summary="LEAD: cross-entropy of logits evolved in closed form by per-class NTK rates from a linear log_init",
    reference="Hu et al., LEAD: Exploring Logit Space Evolution for Model Selection, CVPR 2024",
)
def lead(features, labels, *, source_logits=None, return_diagnostics: bool = False, **options):
    """LEAD score of one model (higher = predicted to fine-tune better).

    ``features``: N×D pooled penultimate features (any float dtype); ``labels``: N integers (remapped to 0..K−1);
    ``source_logits`` is accepted for the common signature and unused. ``options`` are the fields of
    :class:`LeadOptions`. With ``return_diagnostics=True`` returns ``(score, LeadDiagnostics)``.

    Constant feature dimensions are dropped before both the classifier and the head (the score of a model is
    unchanged by padding its features with constant dimensions). The head sees the standardised features with
    ``rate_scale="standardize"`` and the raw (varying) features otherwise.
    """
    settings = LeadOptions(**options)
    if settings.ce_form not in CE_FORMS:
        raise ValueError(f"lead: ce_form={settings.ce_form!r} is not one of {', '.join(CE_FORMS)}")
    if settings.ce_form != "softmax_ce" and settings.margins == "raw":
        raise ValueError("lead: margins='raw' are not probabilities; use ce_form='softmax_ce' with them, or "
                         "margins='softmax'/'calibrated'")
    rate_constant = settings.resolved_rate_constant()
    # float32 features stay float32: they are standardised block by block in float64 (``_scaling``).
    checked = check_inputs(features, labels, source_logits, metric="lead", keep_float32=True)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    scaling = ColumnScaling.fit(checked.features)
    keys = content_keys(scaling.blocks(checked.features), settings.seed)
    seconds["standardize"] = time.perf_counter() - started

    started = time.perf_counter()
    log_init = initial_logits(checked.features, checked.labels, checked.num_classes, keys=keys, scaling=scaling,
                              classifier=settings.classifier, fit=settings.fit, margins=settings.margins,
                              regularization=settings.regularization, folds=settings.folds, seed=settings.seed)
    seconds["log_init"] = time.perf_counter() - started

    started = time.perf_counter()
    samples = ntk_samples(checked.labels, checked.num_classes, keys=keys,
                          samples_per_class=settings.ntk_samples_per_class)
    sampled = np.concatenate(samples)
    if settings.rate_scale == "standardize":
        head_input = scaling.transform(checked.features, rows=sampled)
    else:
        head_input = checked.features[sampled][:, scaling.columns]
    head = random_head(head_input.shape[1], tuple(settings.head_widths), checked.num_classes, settings.seed)
    eigenvalues = class_mean_eigenvalues(head, head_input, [len(members) for members in samples])
    seconds["ntk"] = time.perf_counter() - started

    started = time.perf_counter()
    rates = rate_constant * (eigenvalues / eigenvalues.mean() if settings.rate_scale == "per_model" else eigenvalues)
    score = evolution_score(log_init, checked.labels, rates, settings.ce_form)
    seconds["evolution"] = time.perf_counter() - started
    if not return_diagnostics:
        return score

    rows = np.arange(len(checked.labels))
    diagnostics = LeadDiagnostics(
        score=score,
        classifier_only_score=evolution_score(log_init, checked.labels, np.zeros_like(rates), settings.ce_form),
        class_eigenvalues=eigenvalues,
        rates=rates,
        log_init_accuracy=float((log_init.argmax(axis=1) == checked.labels).mean()),
        log_init_true_class_mean=float(log_init[rows, checked.labels].mean()),
        feature_dims_used=head_input.shape[1],
        seconds=seconds,
        options={**asdict(settings), "rate_constant": rate_constant},
    )
    return score, diagnostics
