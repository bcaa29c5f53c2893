"""GBC (Pándy et al., CVPR 2022): Gaussian Bhattacharyya Coefficient between every pair of classes.

Project the features on their top ``pca_dims`` = 64 principal axes; model class c by a Gaussian with mean μ_c and
per-dimension variances v_c (biased, floored at 1e-4 as in the reference, which keeps zero-variance dimensions
finite). The Bhattacharyya distance between classes a and b, with v̄ = (v_a + v_b)/2, is

    BD(a, b) = (1/8) Σ_j (μ_a,j − μ_b,j)² / v̄_j + ½ Σ_j [log v̄_j − ½ log v_a,j − ½ log v_b,j],

    GBC = − Σ_{a ≠ b} exp(−BD(a, b))   (ordered pairs, so each pair counts twice).

Higher (closer to 0) is better, no sign change. ``gaussian="spherical"`` (default) replaces each v_c by its
mean over dimensions, a scalar σ²_c; as in the reference code, the log-determinant term is then counted once,
not once per dimension: ½ [log σ̄² − ½ log σ²_a − ½ log σ²_b]. ``gaussian="diagonal"`` keeps per-dimension
variances. The 1e-4 floor is absolute, so very small feature scales hit it. ``seed`` drives the randomized PCA.

Always min(``pca_dims``, D) components, as in the reference (scikit-learn's ``PCA(n_components=64)``): when fewer
dimensions vary (zero-padded or low-rank features), the components beyond the features' rank carry zero
variance, which the floor turns into 1e-4 in every class. They add nothing to the mean term but pull the
spherical variance σ²_c towards the floor, so a model is scored the same whether its empty dimensions are exactly
zero or carry negligible noise (dropping them instead, as an earlier version did, moved a padded model from
−3.38 to −0.25 when 1e-3 noise was added to its zero dimensions, and changed which of a padded and a full-rank
model ranks first).
"""

from __future__ import annotations

import numpy as np

from lead_hub.metrics._linalg import class_statistics, one_hot, principal_axes
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs

PCA_DIMS = 64
VARIANCE_FLOOR = 1e-4


@register(
    "gbc",
    summary="How little the classes overlap in the model's feature space",
    reference="Pándy et al., Transferability Estimation using Bhattacharyya Class Separability, CVPR 2022",
)
def gbc(features, labels, *, source_logits=None, seed: int = 0, pca_dims: int = PCA_DIMS,
        gaussian: str = "spherical") -> float:
    """GBC score (see the module docstring)."""
    if gaussian not in ("spherical", "diagonal"):
        raise ValueError(f"gbc: gaussian must be 'spherical' or 'diagonal', got {gaussian!r}")
    checked = check_inputs(features, labels, source_logits, metric="gbc")
    labels, num_classes = checked.labels, checked.num_classes
    projected = principal_axes(checked.features, count=pca_dims, seed=seed).project(checked.features)
    components = min(pca_dims, checked.features.shape[1])
    projected = np.pad(projected, ((0, 0), (0, components - projected.shape[1])))  # zero-variance components
    stats = class_statistics(projected, labels, num_classes)
    squared_deviations = one_hot(labels, num_classes).T @ (projected - stats.means[labels]) ** 2
    variances = np.maximum(squared_deviations / stats.counts[:, None], VARIANCE_FLOOR)
    if gaussian == "spherical":
        variances = variances.mean(axis=1, keepdims=True)
    log_variances = np.log(variances)
    total = 0.0
    for cls in range(num_classes):
        pair_variances = (variances[cls] + variances) / 2
        mean_term = np.sum((stats.means[cls] - stats.means) ** 2 / pair_variances, axis=1) / 8
        spread_term = np.sum(np.log(pair_variances) - (log_variances[cls] + log_variances) / 2, axis=1) / 2
        coefficients = np.exp(-(mean_term + spread_term))
        coefficients[cls] = 0.0
        total += coefficients.sum()
    return float(-total)
