"""Multi-output ridge regression with an unpenalised intercept, in-sample, k-fold out-of-fold or exact
leave-one-out, in closed form.

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

Exact leave-one-out (:func:`ridge_leave_one_out`, no folds, everything in float64): ridge with an unpenalised
intercept is a linear smoother, ŷ = H Y, and refitting without row i (same λ) predicts it as
``ŷ_(−i) = (ŷ_i − h_ii y_i) / (1 − h_ii) = y_i − r_i / (1 − h_ii)`` with the residual r = Y − ŷ: one fit on all N
rows and the diagonal of H replace N refits. The left-out fits train on N − 1 rows, so λ = alpha·(N − 1). With
X_c = X − μ (full-sample mean), H = 11ᵀ/N + X_c (X_cᵀX_c + λI)⁻¹ X_cᵀ:

* primal (D < N): with the Cholesky factor L of X_cᵀX_c + λI, ``1 − h_ii = 1 − 1/N − ‖L⁻¹ x_c,i‖²`` and
  ``r = Y − ȳ − X_c W``, W = (X_cᵀX_c + λI)⁻¹ X_cᵀY: two passes of N·D² multiply-adds (the symmetric Gram, then
  the triangular L⁻¹ on every row), twice the 5-fold route's one, in float64.
* dual (D ≥ N): on 1⊥, ``I − K_c (K_c + λI)⁻¹ = λ (K_c + λI)⁻¹`` with K_c = X_c X_cᵀ, so ``r = λ M⁻¹ (Y − ȳ)`` and
  ``1 − h_ii = λ (M⁻¹_ii − 1 / (N(λ + cN)))`` for ``M = K_c + λI + c·11ᵀ``: the rank-one term moves the intercept's
  direction 1 (an eigenvector of K_c with eigenvalue 0) from λ to λ + cN, which acts only along 1, and keeps M as
  well conditioned as K_c on 1⊥; c = trace(K_c)/N² puts it at the mean eigenvalue.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve, cholesky, solve_triangular
from scipy.linalg.blas import dtrmm

from lead_hub.metrics._parallel import blas_workers, map_blas_tasks

#: Rows per float64 block of the leave-one-out primal route (16 MiB at D = 1024).
_LOO_BLOCK_ROWS = 2048


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


def ridge_leave_one_out(features: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """N×K exact leave-one-out predictions: row i predicted by the ridge fit on the other N − 1 rows with
    λ = alpha·(N − 1) (module docstring). ``features`` is N×D (cast to float64), ``targets`` N×K."""
    if not alpha > 0:
        raise ValueError(f"ridge regularization must be > 0, got {alpha}")
    num_samples = len(features)
    if num_samples < 3:
        raise ValueError(f"leave-one-out ridge needs at least 3 samples, got {num_samples}")
    penalty = alpha * (num_samples - 1)
    targets = np.asarray(targets, dtype=np.float64)
    target_mean = targets.mean(axis=0)
    if features.shape[1] < num_samples:
        residuals, one_minus_leverage = _loo_primal(features, targets - target_mean, penalty)
    else:
        residuals, one_minus_leverage = _loo_dual(features, targets - target_mean, penalty)
    return targets - residuals / one_minus_leverage[:, None]


def _loo_primal(features, centred_targets, penalty):
    """Residuals of the all-rows fit and 1 − h_ii, through the D×D Gram; rows are read in blocks side by side."""
    num_samples, workers = len(features), blas_workers()
    ranges = _split(slice(0, num_samples), workers)
    mean = sum(map_blas_tasks(lambda rows: features[rows].sum(axis=0, dtype=np.float64), ranges)) / num_samples

    def centred_blocks(rows):
        for start in range(rows.start, rows.stop, _LOO_BLOCK_ROWS):
            block = slice(start, min(start + _LOO_BLOCK_ROWS, rows.stop))
            yield block, features[block].astype(np.float64) - mean

    def statistics(rows):
        gram, cross = 0.0, 0.0
        for block, centred in centred_blocks(rows):
            gram = gram + centred.T @ centred
            cross = cross + centred.T @ centred_targets[block]
        return gram, cross

    gram, cross = (sum(parts) for parts in zip(*map_blas_tasks(statistics, ranges)))
    gram[np.diag_indices_from(gram)] += penalty
    factor = cholesky(gram, lower=True, check_finite=False)
    weights = cho_solve((factor, True), cross, check_finite=False)
    # L⁻¹ in Fortran order, so that the triangular product reads it and each block's transpose without copies
    inverse_factor = np.asfortranarray(solve_triangular(factor, np.eye(len(factor)), lower=True, check_finite=False))
    residuals = np.empty_like(centred_targets)
    one_minus_leverage = np.empty(num_samples)

    def leave_out(rows):
        for block, centred in centred_blocks(rows):
            residuals[block] = centred_targets[block] - centred @ weights
            # L⁻¹ X_cᵀ as a triangular product (BLAS trmm): half the multiply-adds of a general one
            whitened = dtrmm(1.0, inverse_factor, centred.T, lower=1, overwrite_b=1)
            one_minus_leverage[block] = 1.0 - 1.0 / num_samples - np.einsum("ij,ij->j", whitened, whitened)

    map_blas_tasks(leave_out, ranges)
    return residuals, one_minus_leverage


def _loo_dual(features, centred_targets, penalty):
    """Residuals of the all-rows fit and 1 − h_ii, through the N×N centred kernel."""
    num_samples = len(features)
    centred = np.asarray(features, dtype=np.float64) - np.asarray(features, dtype=np.float64).mean(axis=0)
    kernel = centred @ centred.T
    shift = np.trace(kernel) / num_samples**2  # c, so that cN is the kernel's mean eigenvalue
    system = kernel + shift
    system[np.diag_indices_from(system)] += penalty
    inverse = cho_solve(cho_factor(system, check_finite=False), np.eye(num_samples), check_finite=False)
    residuals = penalty * (inverse @ centred_targets)
    one_minus_leverage = penalty * (np.diag(inverse) - 1.0 / (num_samples * (penalty + shift * num_samples)))
    return residuals, one_minus_leverage


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
