"""ETran (Gholami et al., ICCV 2023): energy plus LDA score, min-max normalised across the model set.

ETran ranks a *set* of models, so its per-model function returns raw parts, not a score:

* ``lda``: mean true-class posterior (1/N) Σ_i p(y_i | x_i) of the shrinkage linear discriminant of SFDA's first
  stage (Σ_λ = (1−λ)S_w + λ·(tr S_w / D)·I, λ = max(exp(−5·λ_max(S_w)), 1e-10)). No log, as in the reference
  code. (The reference computes ``eigh(inv(Σ_λ) @ S_b)`` on a non-symmetric matrix; ``numpy.linalg.eigh`` reads
  one triangle and returns an orthogonal basis V, so its ``coef_ = μVVᵀ`` collapses to μ, an identity-covariance
  classifier. This implementation fits the discriminant the paper describes.)
* ``energy``: the energy score of each sample is logsumexp_j f_j(x) over its feature dimensions (the features
  read as logits, as in the reference); ``energy`` is the mean over the lowest ``energy_fraction`` = 0.5% of the
  samples (at least one sample; the reference takes ⌊5N/1000⌋, which is none below N = 200).

``combine`` turns ``{model: parts}`` into scores: 0.85·minmax(lda) + 0.15·minmax(energy), minmax(v) =
(v − min)/(max − min) over the models of the set; a part equal across all models (a single model, for instance)
contributes 0. Higher is better. Use ``metrics.score_model_set("etran", {model: {"features": ..., "labels": ...}})``
for scores; ``metrics.get("etran")(features, labels)`` gives the :class:`ETranParts` of one model.
``seed`` drives the randomized λ_max estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, softmax

from lead_hub.metrics._linalg import ROWS_PER_BLOCK, fit_shrinkage_lda, true_class_values
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs

LDA_WEIGHT = 0.85
ENERGY_FRACTION = 0.005


@dataclass(frozen=True)
class ETranParts:
    """The per-model parts of ETran: ``lda`` (mean true-class LDA posterior) and ``energy`` (low-tail energy)."""

    lda: float
    energy: float


def combine_etran(parts: dict[str, ETranParts], *, lda_weight: float = LDA_WEIGHT) -> dict[str, float]:
    """ETran scores of a model set: ``lda_weight``·minmax(lda) + (1 − ``lda_weight``)·minmax(energy)."""
    models = list(parts)
    lda = _min_max(np.array([parts[model].lda for model in models]))
    energy = _min_max(np.array([parts[model].energy for model in models]))
    return {model: float(lda_weight * lda[i] + (1 - lda_weight) * energy[i]) for i, model in enumerate(models)}


def _min_max(values: np.ndarray) -> np.ndarray:
    """(v − min)/(max − min); all zeros when every value is equal."""
    spread = values.max() - values.min()
    return np.zeros_like(values) if spread == 0 else (values - values.min()) / spread


@register(
    "etran",
    summary="How well a linear classifier separates the classes, mixed with how familiar the images look to the model",
    reference="Gholami et al., ETran: Energy-Based Transferability Estimation, ICCV 2023",
    combine=combine_etran,
    orientation="higher is better, relative to the model set (min-max over the models scored together)",
)
def etran(features, labels, *, source_logits=None, seed: int = 0,
          energy_fraction: float = ENERGY_FRACTION) -> ETranParts:
    """ETran's raw parts for one model (see the module docstring); combine a set with :func:`combine_etran`."""
    checked = check_inputs(features, labels, source_logits, metric="etran")
    features, labels = checked.features, checked.labels
    discriminant = fit_shrinkage_lda(features, labels, checked.num_classes, seed=seed)
    lda = float(np.mean(true_class_values(softmax(discriminant.logits(features), axis=1), labels)))
    energies = np.sort(np.concatenate([logsumexp(features[start:start + ROWS_PER_BLOCK], axis=1)
                                       for start in range(0, len(features), ROWS_PER_BLOCK)]))
    lowest = max(1, int(energy_fraction * len(energies) + 1e-9))
    return ETranParts(lda=lda, energy=float(np.mean(energies[:lowest])))
