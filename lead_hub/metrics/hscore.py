"""H-score (Bao et al., ICIP 2019): how much of the feature covariance the class means explain.

With the feature covariance Cov(f) (1/N normalised) and the covariance of the class-conditional means
Cov(E[f | y]) = Σ_k π_k (μ_k − μ)(μ_k − μ)ᵀ (π_k = n_k/N):

    H = tr(pinv(Cov f) · Cov(E[f | y])) = Σ_k π_k (μ_k − μ)ᵀ pinv(Cov f) (μ_k − μ).

Higher is better, no sign change. The pseudo-inverse comes from the eigendecomposition of the D×D covariance and
drops eigenvalues below max(N, D)·eps·λ_max (constant and all-zero dimensions, rank deficiency); the reference's
``pinv(rcond=1e-15)`` keeps rounding-noise eigenvalues, whose inverses can dominate the score. The common
normalisation (1/N here, 1/(N−1) in the reference) cancels. Deterministic; ``seed`` unused.
"""

from __future__ import annotations

import numpy as np

from lead_hub.metrics._linalg import rank_tolerance, total_and_between_class
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs


@register(
    "hscore",
    summary="tr(pinv(Cov f) Cov(E[f|y])): feature variance explained by the class means",
    reference="Bao et al., An Information-Theoretic Approach to Transferability in Task Transfer Learning, ICIP 2019",
    aliases=("h-score",),
)
def hscore(features, labels, *, source_logits=None, seed: int = 0) -> float:
    """H-score (see the module docstring)."""
    checked = check_inputs(features, labels, source_logits, metric="hscore")
    covariance, priors, deviations = total_and_between_class(checked.features, checked.labels, checked.num_classes)
    eigenvalues, vectors = np.linalg.eigh(covariance)
    keep = eigenvalues > rank_tolerance(*checked.features.shape) * eigenvalues.max(initial=0.0)
    projected = deviations @ vectors[:, keep]
    return float(priors @ np.sum(projected**2 / eigenvalues[keep], axis=1))
