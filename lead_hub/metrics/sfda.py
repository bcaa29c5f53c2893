"""SFDA (Shao et al., ECCV 2022): Self-challenging Fisher Discriminant Analysis.

1. Fit a linear discriminant with shrunk within-class covariance Σ_λ = (1−λ)S_w + λ·(tr S_w / D)·I,
   λ = max(exp(−5·λ_max(S_w)), 1e-10) (S_w the prior-weighted biased class covariances), and take its class
   posteriors p(y | x) = softmax(logits).
2. ConfMix (self-challenge): soften the posteriors once more, q = softmax(p) (as the reference does), and move
   each sample towards the mean of the *other* classes' means, μ̄_k = (Σ_j μ_j − μ_k)/(K−1):
   x ← q_{y}·x + (1 − q_{y})·μ̄_{y}, with q_y the softened probability of its own class.
3. Refit the discriminant on the mixed features with the same λ; score = (1/N) Σ_i p(y_i | x̃_i).

Higher is better. The score is the mean true-class probability with no log, as in the reference code ("the log
function is ignored in case of instability"); ``log_probability=True`` averages log p(y_i | x̃_i) instead.
Features are handled in centred coordinates, where constant and all-zero dimensions are exactly 0 and get zero
weight; Σ_λ is positive definite whenever some dimension varies. ``seed`` drives the randomized estimate of
λ_max (the reference uses 3 power steps; see ``_linalg.fit_shrinkage_lda``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax

from lead_hub.metrics._linalg import (ROWS_PER_BLOCK, class_statistics, column_centre, constant_columns,
                                      fit_shrinkage_lda, true_class_values)
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs


@register(
    "sfda",
    summary="How well a regularised linear classifier separates the classes, on features made harder to separate",
    reference="Shao et al., Not All Models Are Equal: Predicting Model Transferability in a Self-challenging "
              "Fisher Space, ECCV 2022",
)
def sfda(features, labels, *, source_logits=None, seed: int = 0, log_probability: bool = False) -> float:
    """SFDA score (see the module docstring)."""
    checked = check_inputs(features, labels, source_logits, metric="sfda")
    features, labels, num_classes = checked.features, checked.labels, checked.num_classes
    first = fit_shrinkage_lda(features, labels, num_classes, seed=seed)
    softened = softmax(softmax(first.logits(features), axis=1), axis=1)
    mixed = _confmix(features, labels, num_classes, true_class_values(softened, labels))
    second = fit_shrinkage_lda(mixed, labels, num_classes, shrinkage=first.shrinkage, seed=seed)
    logits = second.logits(mixed)
    if log_probability:
        return float(np.mean(true_class_values(log_softmax(logits, axis=1), labels)))
    return float(np.mean(true_class_values(softmax(logits, axis=1), labels)))


def _confmix(features: np.ndarray, labels: np.ndarray, num_classes: int, confidence: np.ndarray) -> np.ndarray:
    """x_i ← c_i·x_i + (1 − c_i)·μ̄_{y_i}, returned centred (the discriminant is translation invariant)."""
    means = class_statistics(features, labels, num_classes).means
    centre = column_centre(features)
    outer_means = (means.sum(axis=0) - means) / (num_classes - 1) - centre
    outer_means[:, constant_columns(features)] = 0.0
    mixed = features - centre
    for start in range(0, len(mixed), ROWS_PER_BLOCK):
        rows = slice(start, start + ROWS_PER_BLOCK)
        weight = confidence[rows, None]
        mixed[rows] = weight * mixed[rows] + (1.0 - weight) * outer_means[labels[rows]]
    return mixed
