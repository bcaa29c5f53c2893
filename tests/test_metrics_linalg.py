"""The shared numerical helpers of the peer metrics, against independent computations (SVD, sklearn, scipy)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from sklearn.covariance import ledoit_wolf_shrinkage as sklearn_ledoit_wolf_shrinkage

from lead_hub.metrics import _linalg


def decaying_features(rows: int, columns: int, seed: int = 0) -> np.ndarray:
    """Gaussian rows with a power-law spectrum (variance of column j ∝ (j+1)^-1.5), randomly rotated."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((columns, columns)))
    return (rng.standard_normal((rows, columns)) * np.arange(1, columns + 1) ** -0.75) @ rotation + 5.0


@pytest.mark.parametrize("rows, columns, count", [(300, 200, 5), (300, 40, 30), (30, 80, 10)])
def test_principal_axes_match_the_svd_of_the_centred_features(rows, columns, count):
    features = decaying_features(rows, columns)
    centred = features - features.mean(axis=0)
    _, singular_values, right_vectors = np.linalg.svd(centred, full_matrices=False)
    axes = _linalg.principal_axes(features, count=count, seed=3)
    np.testing.assert_allclose(axes.variances, singular_values[:count] ** 2 / rows, rtol=1e-8)
    # Same axes up to sign: |cosine| = 1 between matching columns.
    cosines = np.abs(np.sum(axes.axes * right_vectors[:count].T, axis=0))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-6)
    np.testing.assert_allclose(np.abs(axes.project(features)), np.abs(centred @ right_vectors[:count].T), atol=1e-6)


def test_principal_axes_by_variance_fraction_keep_the_fewest_axes_reaching_it():
    features = decaying_features(400, 300)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(features.T, bias=True)))[::-1]
    expected = int(np.searchsorted(np.cumsum(eigenvalues) / eigenvalues.sum(), 0.8) + 1)
    axes = _linalg.principal_axes(features, variance_fraction=0.8, seed=0)
    assert axes.axes.shape == (300, expected)
    assert axes.variances.sum() >= 0.8 * axes.total_variance > axes.variances[:-1].sum()


def test_principal_axes_drop_constant_and_zero_dimensions_and_are_seeded():
    features = np.hstack([decaying_features(100, 6), np.zeros((100, 50)), np.full((100, 3), 7.0)])
    axes = _linalg.principal_axes(features, count=20, seed=1)
    assert axes.axes.shape == (59, 6)
    np.testing.assert_array_equal(axes.axes[6:], 0.0)
    again = _linalg.principal_axes(features, count=20, seed=1)
    np.testing.assert_array_equal(axes.axes, again.axes)


def test_ledoit_wolf_shrinkage_equals_sklearn():
    features = decaying_features(60, 25, seed=4)
    centre = features.mean(axis=0)
    covariance = np.cov(features.T, bias=True)
    ours = _linalg.ledoit_wolf_shrinkage(features, centre, covariance)
    assert ours == pytest.approx(sklearn_ledoit_wolf_shrinkage(features), rel=1e-10)


def test_within_class_covariance_is_the_prior_weighted_biased_class_covariance():
    rng = np.random.default_rng(0)
    features, labels = rng.standard_normal((50, 4)), np.arange(50) % 3
    stats = _linalg.class_statistics(features, labels, 3)
    expected = sum(np.mean(labels == k) * np.cov(features[labels == k].T, bias=True) for k in range(3))
    np.testing.assert_allclose(_linalg.within_class_covariance(features, labels, stats), expected, atol=1e-12)


def test_shrinkage_lda_equals_the_generalised_eigenvector_construction_of_the_sfda_reference():
    rng = np.random.default_rng(2)
    labels = np.arange(90) % 3
    features = rng.standard_normal((90, 6)) + 2.0 * rng.standard_normal((3, 6))[labels]
    shrinkage = 0.3
    means = np.stack([features[labels == k].mean(axis=0) for k in range(3)])
    priors = np.bincount(labels) / 90
    within = sum(priors[k] * np.cov(features[labels == k].T, bias=True) for k in range(3))
    shrunk = (1 - shrinkage) * within + shrinkage * np.trace(within) / 6 * np.eye(6)
    total = (1 - shrinkage) * np.cov(features.T, bias=True) + shrinkage * np.trace(np.cov(features.T, bias=True)) / 6 * np.eye(6)
    _, vectors = scipy.linalg.eigh(total - shrunk, shrunk)
    coef = means @ vectors @ vectors.T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    expected = features @ coef.T + intercept
    fitted = _linalg.fit_shrinkage_lda(features, labels, 3, shrinkage=shrinkage)
    logits = fitted.logits(features)
    # Logits are defined up to a per-sample constant (the softmax is unchanged); compare centred rows.
    np.testing.assert_allclose(logits - logits.mean(axis=1, keepdims=True),
                               expected - expected.mean(axis=1, keepdims=True), atol=1e-9)


def test_adaptive_shrinkage_uses_the_largest_within_class_eigenvalue():
    rng = np.random.default_rng(5)
    labels = np.arange(40) % 2
    features = 0.2 * rng.standard_normal((40, 3))
    stats = _linalg.class_statistics(features, labels, 2)
    largest = np.linalg.eigvalsh(_linalg.within_class_covariance(features, labels, stats)).max()
    fitted = _linalg.fit_shrinkage_lda(features, labels, 2, seed=0)
    assert fitted.shrinkage == pytest.approx(np.exp(-5 * largest), rel=1e-9)


def test_expected_empirical_prediction_by_hand():
    posteriors = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    labels = np.array([0, 0, 1, 1])
    # P(y, z): y=0 -> (1.4, 0.6)/4, y=1 -> (0.4, 1.6)/4; P(z) = (0.45, 0.55).
    p_y0 = np.array([0.35 / 0.45, 0.15 / 0.55])
    p_y1 = np.array([0.10 / 0.45, 0.40 / 0.55])
    expected = [posteriors[0] @ p_y0, posteriors[1] @ p_y0, posteriors[2] @ p_y1, posteriors[3] @ p_y1]
    np.testing.assert_allclose(_linalg.expected_empirical_prediction(posteriors, labels, 2), expected, rtol=1e-12)
