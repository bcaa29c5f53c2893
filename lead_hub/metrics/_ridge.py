"""Multi-output ridge regression with an unpenalised intercept, in-sample or k-fold out-of-fold, in closed form.

For training rows T with feature mean μ and target mean ȳ, the weights minimise
``‖(X_T − μ)W − (Y_T − ȳ)‖² + λ‖W‖²`` with ``λ = alpha · |T|``, and a row x is predicted as ``(x − μ)W + ȳ``.

Two exact routes, picked by shape:

* primal (D < |T|): ``W = (G_c + λI)⁻¹ C_c`` with the centred Gram ``G_c = X_TᵀX_T − |T| μμᵀ`` and
  ``C_c = X_TᵀY_T − |T| μȳᵀ``. The per-fold Grams are accumulated once, and each fold's training Gram is the
  total minus its own, so k folds cost one Gram and k Cholesky solves of D×D. The N×D products run in float32
  BLAS (inputs are standardised, so float32 loses about 1e-6 relative), the D×D solves in float64.
* dual (D ≥ |T|): with the linear kernel K = XXᵀ (float64) centred on the training rows,
  ``α = (K̃_TT + λI)⁻¹ (Y_T − ȳ)`` and predictions ``K̃_ET α + ȳ``: an |T|×|T| solve instead of a D×D one.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve


def ridge_predictions(features: np.ndarray, targets: np.ndarray, alpha: float,
                      fold_of_sample: np.ndarray | None = None) -> np.ndarray:
    """N×K predictions: in-sample when ``fold_of_sample`` is None, else each fold predicted by the others."""
    if not alpha > 0:
        raise ValueError(f"ridge regularization must be > 0, got {alpha}")
    everyone = np.ones(len(features), dtype=bool)
    if fold_of_sample is None:
        held_out_masks = [everyone]
    else:
        held_out_masks = [fold_of_sample == fold for fold in np.unique(fold_of_sample)]
    training_sizes = [len(features) if fold_of_sample is None else int((~mask).sum()) for mask in held_out_masks]
    if features.shape[1] < min(training_sizes):
        return _primal(features, targets, alpha, held_out_masks, fold_of_sample is None)
    return _dual(features, targets, alpha, held_out_masks, fold_of_sample is None)


def _primal(features, targets, alpha, held_out_masks, in_sample) -> np.ndarray:
    # The N×D products (Grams, cross products, predictions) run in float32 BLAS; the D×D systems in float64.
    features32, targets32 = features.astype(np.float32), targets.astype(np.float32)

    def statistics(rows):
        block = features32[rows]
        return ((block.T @ block).astype(np.float64), (block.T @ targets32[rows]).astype(np.float64),
                block.sum(0, dtype=np.float64), targets[rows].sum(0))

    per_fold = [statistics(mask) for mask in held_out_masks]
    totals = [sum(parts) for parts in zip(*per_fold)]
    predictions = np.empty_like(targets, dtype=np.float64)
    for mask, fold_parts in zip(held_out_masks, per_fold):
        gram, cross, feature_sum, target_sum = totals if in_sample else [t - f for t, f in zip(totals, fold_parts)]
        size = len(features) if in_sample else int((~mask).sum())
        mean, target_mean = feature_sum / size, target_sum / size
        centred_gram = gram - size * np.outer(mean, mean)
        centred_gram[np.diag_indices_from(centred_gram)] += alpha * size
        weights = cho_solve(cho_factor(centred_gram, overwrite_a=True), cross - size * np.outer(mean, target_mean))
        offset = (target_mean - mean @ weights).astype(np.float32)
        predictions[mask] = features32[mask] @ weights.astype(np.float32) + offset
    return predictions


def _dual(features, targets, alpha, held_out_masks, in_sample) -> np.ndarray:
    kernel = features @ features.T
    predictions = np.empty_like(targets, dtype=np.float64)
    for mask in held_out_masks:
        train = np.ones_like(mask) if in_sample else ~mask
        train_kernel = kernel[np.ix_(train, train)]
        row_means = train_kernel.mean(axis=1)
        grand_mean = row_means.mean()
        centred = train_kernel - row_means[:, None] - row_means[None, :] + grand_mean
        centred[np.diag_indices_from(centred)] += alpha * int(train.sum())
        target_mean = targets[train].mean(axis=0)
        coefficients = cho_solve(cho_factor(centred), targets[train] - target_mean)
        cross_kernel = kernel[np.ix_(mask, train)]
        cross_centred = cross_kernel - cross_kernel.mean(axis=1)[:, None] - row_means[None, :] + grand_mean
        predictions[mask] = cross_centred @ coefficients + target_mean
    return predictions
