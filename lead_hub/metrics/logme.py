"""LogME (You et al., ICML 2021): the maximum evidence of a Bayesian linear model from features to labels.

For every class k, with the one-hot column y_k ∈ {0,1}^N and the (uncentred) features F (N×D), the model
``y = F w + noise``, ``w ~ N(0, α⁻¹ I_D)``, ``noise ~ N(0, β⁻¹ I_N)`` has the log evidence

    L(α, β) = D/2·log α + N/2·log β − N/2·log 2π − β/2·‖y − F m‖² − α/2·‖m‖² − ½·log det(αI + βFᵀF),

m = β (αI + βFᵀF)⁻¹ Fᵀ y. α and β are set by the fixed-point iteration of the reference code (You et al.,
arXiv 2110.10545): start α = β = 1, at most 11 updates ``α = γ/‖m‖², β = (N − γ)/‖y − Fm‖²`` with
γ = Σ_i β s_i/(α + β s_i) (s_i the eigenvalues of FᵀF), stop when α/β changes by at most 1e-3 relatively.
Score = mean over classes of L/N. Higher is better; no sign change, no log convention to choose (it is a log).

Everything is computed in the eigenbasis of FᵀF (D×D) or of FFᵀ (N×N when N < D), from one eigendecomposition.
The log-determinant counts all D eigenvalues, the zero ones as log α: the exact evidence, as in the ICML
reference. (The fixed-point reference sums only the nonzero ones, which adds (D − rank)/2·log α and so makes the
score depend on all-zero feature dimensions; here appending zero dimensions leaves the score unchanged.)
Deterministic: ``seed`` is accepted for the common signature and unused.
"""

from __future__ import annotations

import numpy as np

from lead_hub.metrics._linalg import one_hot, rank_tolerance, scatter
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs

MAX_ITERATIONS = 11
TOLERANCE = 1e-3
# The reference adds this to ‖m‖² and ‖y − Fm‖² in the updates, which keeps α and β finite on separable data.
_EPSILON = 1e-5


@register(
    "logme",
    summary="How well a simple linear model on the features explains your labels, accounting for its complexity",
    reference="You et al., LogME: Practical Assessment of Pre-trained Models for Transfer Learning, ICML 2021",
)
def logme(features, labels, *, source_logits=None, seed: int = 0) -> float:
    """LogME score: mean over classes of the maximised log evidence / N (see the module docstring)."""
    checked = check_inputs(features, labels, source_logits, metric="logme")
    features, labels = checked.features, checked.labels
    num_samples, num_features = features.shape
    eigenvalues, projections = _spectral_targets(features, one_hot(labels, checked.num_classes))
    target_norms = np.bincount(labels).astype(np.float64)
    evidences = [
        _max_evidence(eigenvalues, projections[:, k], target_norms[k], num_samples, num_features)
        for k in range(checked.num_classes)
    ]
    return float(np.mean(evidences))


def _spectral_targets(features: np.ndarray, targets) -> tuple[np.ndarray, np.ndarray]:
    """Nonzero eigenvalues s_i of FᵀF and the coordinates x = Uᵀy of every target column (rank×K).

    U are the left singular vectors of F; with N ≥ D they are never formed: x = diag(s^-½) Vᵀ Fᵀ y.
    """
    num_samples, num_features = features.shape
    primal = num_samples >= num_features
    eigenvalues, vectors = np.linalg.eigh(scatter(features, None) if primal else features @ features.T)
    keep = eigenvalues > rank_tolerance(num_samples, num_features) * eigenvalues.max(initial=0.0)
    eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
    if primal:
        projections = (vectors.T @ np.asarray(targets.T @ features).T) / np.sqrt(eigenvalues)[:, None]
    else:
        projections = np.asarray(targets.T @ vectors).T
    return eigenvalues, projections


def _max_evidence(eigenvalues, projection, target_norm, num_samples, num_features) -> float:
    """Fixed-point maximisation of L(α, β) for one target column, returned as L/N."""
    squared = projection**2
    outside_span = max(target_norm - squared.sum(), 0.0)
    alpha, beta = 1.0, 1.0
    for _ in range(MAX_ITERATIONS):
        ratio = alpha / beta
        gamma = np.sum(eigenvalues / (eigenvalues + ratio))
        weight_norm = np.sum(eigenvalues * squared / (eigenvalues + ratio) ** 2)
        residual = np.sum(squared * (ratio / (eigenvalues + ratio)) ** 2) + outside_span
        alpha = gamma / (weight_norm + _EPSILON)
        beta = (num_samples - gamma) / (residual + _EPSILON)
        if abs(alpha / beta - ratio) / ratio <= TOLERANCE:
            break
    rank = len(eigenvalues)
    log_determinant = np.sum(np.log(alpha + beta * eigenvalues)) + (num_features - rank) * np.log(alpha)
    evidence = (num_features / 2 * np.log(alpha) + num_samples / 2 * np.log(beta)
                - num_samples / 2 * np.log(2 * np.pi) - beta / 2 * residual - alpha / 2 * weight_norm
                - log_determinant / 2)
    return float(evidence / num_samples)
