"""TransRate (Huang et al., ICML 2022): coding rate of the features minus their mean coding rate per class.

With Z the features centred by their global mean (not per class), Z_c the rows of class c (n_c of them) and

    R(Z) = ½ · log det(I + ZᵀZ / (n ε)),  ε = 1e-4,

TransRate = R(Z) − (1/K) Σ_c R(Z_c) (classes weighted equally, as in the paper's code). Higher is better, no sign
change. The log-determinant is taken on whichever of ZᵀZ (D×D) and ZZᵀ (n×n) is smaller (Sylvester's identity
makes them equal) via a Cholesky factor, so small classes cost n_c³, not D³; constant and all-zero dimensions add
log 1 = 0. The D×D class scatters, when used, sum to the global one, which is then not recomputed. ε is
absolute, so the score depends on the feature scale, as in the reference. Deterministic; ``seed`` unused.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from lead_hub.metrics._linalg import column_centre, scatter
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs

EPSILON = 1e-4


@register(
    "transrate",
    summary="How much more information the features carry about everything than about one class at a time",
    reference="Huang et al., Frustratingly Easy Transferability Estimation, ICML 2022",
)
def transrate(features, labels, *, source_logits=None, seed: int = 0, epsilon: float = EPSILON) -> float:
    """TransRate score (see the module docstring)."""
    checked = check_inputs(features, labels, source_logits, metric="transrate")
    features, labels = checked.features, checked.labels
    num_samples, num_features = features.shape
    centre = column_centre(features)
    class_rates = []
    summed_scatter = np.zeros((num_features, num_features))
    every_scatter_summed = True
    for cls in range(checked.num_classes):
        rows = features[labels == cls]
        gram = _smaller_gram(rows, centre)
        if len(gram) == num_features:
            summed_scatter += gram
        else:
            every_scatter_summed = False
        class_rates.append(_coding_rate(gram, len(rows), epsilon))
    total_gram = summed_scatter if every_scatter_summed else _smaller_gram(features, centre)
    return float(_coding_rate(total_gram, num_samples, epsilon) - np.mean(class_rates))


def _smaller_gram(rows: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """ZᵀZ (D×D) when there are at least D rows, else ZZᵀ (n×n), for Z = rows − centre."""
    if len(rows) >= rows.shape[1]:
        return scatter(rows, centre)
    centred = rows - centre
    return centred @ centred.T


def _coding_rate(gram: np.ndarray, num_rows: int, epsilon: float) -> float:
    """½ log det(I + gram / (n ε)) from a Cholesky factor (the matrix is symmetric positive definite)."""
    matrix = gram / (num_rows * epsilon)
    matrix.flat[:: len(matrix) + 1] += 1.0
    factor = scipy.linalg.cholesky(matrix, lower=True)
    return float(np.sum(np.log(np.diag(factor))))
