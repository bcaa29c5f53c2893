"""H-score (Bao et al., ICIP 2019): how much of the feature covariance the class means explain.

With the feature covariance Cov(f) (1/N normalised) and the covariance of the class-conditional means
Cov(E[f | y]) = Σ_k π_k (μ_k − μ)(μ_k − μ)ᵀ (π_k = n_k/N):

    H = tr(pinv(Cov f) · Cov(E[f | y])) = Σ_k π_k (μ_k − μ)ᵀ pinv(Cov f) (μ_k − μ).

Higher is better, no sign change. The pseudo-inverse comes from the eigendecomposition of the D×D covariance (of
the N×N Gram matrix when N < D, same nonzero spectrum) and drops eigenvalues below max(N, D)·eps·λ_max (constant and all-zero dimensions, rank deficiency); the reference's
``pinv(rcond=1e-15)`` keeps rounding-noise eigenvalues, whose inverses can dominate the score. The common
normalisation (1/N here, 1/(N−1) in the reference) cancels. Deterministic; ``seed`` unused.

Saturation: H = tr(P_F · P_Y), with P_F the projector onto the span of the centred feature columns (in sample
space) and P_Y the one onto the centred class indicators (rank K − 1). Features of numerical rank N − 1 span every
centred direction, so H = K − 1 exactly, whatever the labels: with as many dimensions as samples, H-score cannot
tell models apart. Such features get exactly K − 1 (ties, which the evaluation treats as ties) and a warning;
the rounding noise a direct computation leaves (1e-11 here) would otherwise rank them at random.
"""

from __future__ import annotations

import warnings

import numpy as np

from lead_hub.metrics._linalg import class_statistics, principal_axes
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs


@register(
    "hscore",
    summary="How much of the features' spread is explained by the class they belong to",
    reference="Bao et al., An Information-Theoretic Approach to Transferability in Task Transfer Learning, ICIP 2019",
    aliases=("h-score",),
)
def hscore(features, labels, *, source_logits=None, seed: int = 0) -> float:
    """H-score (see the module docstring)."""
    checked = check_inputs(features, labels, source_logits, metric="hscore")
    features = checked.features
    stats = class_statistics(features, checked.labels, checked.num_classes)
    # Every axis of nonzero variance: the eigenpairs of Cov(f), from the N×N Gram matrix when N < D.
    axes = principal_axes(features, count=features.shape[1])
    num_samples = len(features)
    if len(axes.variances) >= num_samples - 1:
        warnings.warn(f"hscore: the features have rank {len(axes.variances)} = N − 1 (N={num_samples} samples, "
                      f"D={features.shape[1]} dimensions), so H-score is exactly K − 1 = {checked.num_classes - 1} "
                      "for any labels and cannot rank such models; use more samples than dimensions, or "
                      "regularized_hscore", stacklevel=2)
        return float(checked.num_classes - 1)
    projected = (stats.means - axes.mean) @ axes.axes
    return float(stats.priors @ np.sum(projected**2 / axes.variances, axis=1))
