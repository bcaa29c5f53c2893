"""Multi-output ridge regression with an unpenalised intercept, in-sample or k-fold out-of-fold, in closed form.

For training rows T with feature mean μ and target mean ȳ, the weights minimise
``‖(X_T − μ)W − (Y_T − ȳ)‖² + λ‖W‖²`` with ``λ = alpha · |T|``, and a row x is predicted as ``(x − μ)W + ȳ``.

Rows are handled fold by fold as contiguous slices: features whose folds are not sorted are gathered into fold
order once (a caller that builds its features in fold order, as LEAD does, spares that copy). The BLAS work runs
as single-threaded tasks side by side (``_parallel``): the Grams of pieces of the folds, then each fold's solve
and predictions.

Two exact routes, picked by shape (:func:`solves_primal`):

* primal (D < |T|): ``W = (G_c + λI)⁻¹ C_c`` with the centred Gram ``G_c = X_TᵀX_T − |T| μμᵀ`` and
  ``C_c = X_TᵀY_T − |T| μȳᵀ``. The per-fold Grams are accumulated once, and each fold's training Gram is the
  total minus its own, so k folds cost one Gram (N·D² multiply-adds) and k Cholesky solves of D×D. The N×D
  products run in float32 BLAS on standardised inputs (measured on bench_lead's features, N = 10k and 50k,
  D = 1843 varying, K = 100: out-of-fold predictions of order 1 within 1.4e-6 of all-float64 products); the
  centring and the D×D solves run in float64.
* dual (D ≥ |T|): with the linear kernel K = XXᵀ (float64) centred on the training rows,
  ``α = (K̃_TT + λI)⁻¹ (Y_T − ȳ)`` and predictions ``K̃_ET α + ȳ``: an |T|×|T| solve instead of a D×D one.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from lead_hub.metrics._parallel import blas_workers, map_blas_tasks


def solves_primal(dims: int, num_samples: int, fold_of_sample: np.ndarray | None = None) -> bool:
    """Whether :func:`ridge_predictions` takes the primal route (float32 N×D products): D smaller than every
    training set (all ``num_samples`` in-sample, all but one fold's out of fold)."""
    if fold_of_sample is None:
        return dims < num_samples
    return dims < num_samples - np.unique(fold_of_sample, return_counts=True)[1].max()


def ridge_predictions(features: np.ndarray, targets: np.ndarray, alpha: float,
                      fold_of_sample: np.ndarray | None = None) -> np.ndarray:
    """N×K predictions: in-sample when ``fold_of_sample`` is None, else each fold predicted by the others.

    ``features`` is N×D float64, or float32 (used as is by the primal route, cast to float64 by the dual one)."""
    if not alpha > 0:
        raise ValueError(f"ridge regularization must be > 0, got {alpha}")
    solver = _primal if solves_primal(features.shape[1], len(features), fold_of_sample) else _dual
    if fold_of_sample is None:
        return solver(features, targets, alpha, [slice(0, len(features))], in_sample=True)
    order = None if np.all(fold_of_sample[1:] >= fold_of_sample[:-1]) else np.argsort(fold_of_sample, kind="stable")
    if order is not None:
        features, targets, fold_of_sample = features[order], targets[order], fold_of_sample[order]
    starts = np.flatnonzero(np.diff(fold_of_sample)) + 1
    held_out = [slice(start, stop) for start, stop in zip([0, *starts], [*starts, len(fold_of_sample)])]
    predictions = solver(features, targets, alpha, held_out, in_sample=False)
    if order is None:
        return predictions
    unsorted = np.empty_like(predictions)
    unsorted[order] = predictions
    return unsorted


def _primal(features, targets, alpha, held_out, in_sample) -> np.ndarray:
    features32, targets32 = features.astype(np.float32, copy=False), targets.astype(np.float32)
    workers = blas_workers()

    def statistics(rows):
        block = features32[rows]
        return (block.T @ block, block.T @ targets32[rows], block.sum(0, dtype=np.float64), targets[rows].sum(0))

    # Each fold is cut into one piece per worker, so that the workers stay evenly loaded.
    pieces = [piece for rows in held_out for piece in _split(rows, workers)]
    of_pieces = map_blas_tasks(statistics, pieces, workers)
    per_fold = [[sum(part.astype(np.float64) for part in parts) for parts in zip(*of_pieces[start:start + workers])]
                for start in range(0, len(pieces), workers)]
    totals = [sum(parts) for parts in zip(*per_fold)]

    def predict_fold(fold):
        rows, fold_parts = fold
        gram, cross, feature_sum, target_sum = totals if in_sample else [t - f for t, f in zip(totals, fold_parts)]
        size = len(features) - (0 if in_sample else rows.stop - rows.start)
        mean, target_mean = feature_sum / size, target_sum / size
        gram -= size * np.outer(mean, mean)
        gram[np.diag_indices_from(gram)] += alpha * size
        cross -= size * np.outer(mean, target_mean)
        weights = cho_solve(cho_factor(gram, overwrite_a=True, check_finite=False), cross, overwrite_b=True,
                            check_finite=False)
        offset = (target_mean - mean @ weights).astype(np.float32)
        return features32[rows] @ weights.astype(np.float32) + offset

    predictions = np.empty(targets.shape, dtype=np.float64)
    for rows, fold_predictions in zip(held_out, map_blas_tasks(predict_fold, zip(held_out, per_fold), workers)):
        predictions[rows] = fold_predictions
    return predictions


def _dual(features, targets, alpha, held_out, in_sample) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    kernel = features @ features.T
    everyone = np.arange(len(features))
    predictions = np.empty(targets.shape, dtype=np.float64)
    for rows in held_out:
        train = everyone if in_sample else np.concatenate([everyone[:rows.start], everyone[rows.stop:]])
        train_kernel = kernel[np.ix_(train, train)]
        row_means = train_kernel.mean(axis=1)
        grand_mean = row_means.mean()
        centred = train_kernel - row_means[:, None] - row_means[None, :] + grand_mean
        centred[np.diag_indices_from(centred)] += alpha * len(train)
        target_mean = targets[train].mean(axis=0)
        coefficients = cho_solve(cho_factor(centred), targets[train] - target_mean)
        cross_kernel = kernel[rows][:, train]
        cross_centred = cross_kernel - cross_kernel.mean(axis=1)[:, None] - row_means[None, :] + grand_mean
        predictions[rows] = cross_centred @ coefficients + target_mean
    return predictions


def _split(rows: slice, parts: int) -> list[slice]:
    bounds = np.linspace(rows.start, rows.stop, parts + 1).round().astype(int)
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
