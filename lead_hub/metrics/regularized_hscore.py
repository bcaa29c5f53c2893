"""Regularised H-score (Ibrahim et al., 2022): H-score with a Ledoit–Wolf shrunk feature covariance.

With S = Cov(f) (1/N normalised), the Ledoit–Wolf intensity α and Σ_α = (1−α)·S + α·(tr S / D)·I:

    H_α = tr(Σ_α⁻¹ · (1−α) · Cov(E[f | y])) = (1−α) Σ_k π_k (μ_k − μ)ᵀ Σ_α⁻¹ (μ_k − μ).

Higher is better, no sign change. Σ_α is positive definite whenever some dimension varies, so constant and
all-zero dimensions need no special case (they only enter tr S / D). α is the estimator of
``sklearn.covariance.ledoit_wolf_shrinkage``, computed from S and the row norms (no second D×D product); the
reference normalises Cov(E[f|y]) by N−1 instead of N, a factor N/(N−1). Deterministic; ``seed`` unused.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from lead_hub.metrics._linalg import class_statistics, column_centre, ledoit_wolf_shrinkage, scatter
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs


@register(
    "regularized_hscore",
    summary="H-score made stable for features with more dimensions than images",
    reference="Ibrahim et al., Newer is not always better: Rethinking transferability metrics, their peculiarities, "
              "stability and performance, ECML-PKDD 2022",
    aliases=("hscore_reg", "h-score-reg"),
)
def regularized_hscore(features, labels, *, source_logits=None, seed: int = 0) -> float:
    """Regularised H-score (see the module docstring)."""
    checked = check_inputs(features, labels, source_logits, metric="regularized_hscore")
    features = checked.features
    stats = class_statistics(features, checked.labels, checked.num_classes)
    centre = column_centre(features)
    covariance = scatter(features, centre) / len(features)
    trace = np.trace(covariance)
    if trace <= 0:
        raise ValueError("regularized_hscore: every feature dimension is constant; the features carry no information")
    shrinkage = ledoit_wolf_shrinkage(features, centre, covariance)
    shrunk = (1.0 - shrinkage) * covariance
    shrunk.flat[:: features.shape[1] + 1] += shrinkage * trace / features.shape[1]
    deviations = stats.means - centre
    solved = scipy.linalg.cho_solve(scipy.linalg.cho_factor(shrunk), deviations.T)
    return float((1.0 - shrinkage) * stats.priors @ np.sum(deviations.T * solved, axis=0))
