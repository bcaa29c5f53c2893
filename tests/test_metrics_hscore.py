"""H-score and the regularised H-score on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from lead_hub.metrics import get


def test_hscore_by_hand_in_one_dimension():
    # Mean 3, variance ((−3)² + (−1)² + 1² + 3²)/4 = 5; class means 1 and 5, between-class variance 4 → 4/5.
    features, labels = np.array([[0.0], [2.0], [4.0], [6.0]]), np.array([0, 0, 1, 1])
    assert get("hscore")(features, labels) == pytest.approx(0.8, rel=1e-12)


def test_hscore_ignores_constant_and_zero_dimensions():
    features, labels = np.array([[0.0], [2.0], [4.0], [6.0]]), np.array([0, 0, 1, 1])
    padded = np.hstack([np.zeros((4, 5)), features, np.full((4, 2), 3.0)])
    assert get("hscore")(padded, labels) == pytest.approx(0.8, rel=1e-10)


def test_hscore_is_the_trace_formula():
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    features = rng.standard_normal((30, 4)) + rng.standard_normal((3, 4))[labels]
    class_means = np.stack([features[labels == k].mean(axis=0) for k in range(3)])[labels]
    expected = np.trace(np.linalg.pinv(np.cov(features.T, bias=True)) @ np.cov(class_means.T, bias=True))
    assert get("hscore")(features, labels) == pytest.approx(expected, rel=1e-9)


def test_hscore_saturates_at_k_minus_one_when_features_span_the_samples():
    # 20 samples in 30 dimensions: rank N − 1, so H = tr(P_F P_Y) = K − 1 for any labels, even random ones.
    rng = np.random.default_rng(3)
    features, labels = rng.standard_normal((20, 30)), np.arange(20) % 4
    with pytest.warns(UserWarning, match="rank 19 = N − 1"):
        assert get("hscore")(features, labels) == 3.0
    # One sample more than dimensions plus one: rank D < N − 1, an ordinary score below K − 1.
    features = rng.standard_normal((40, 30))
    assert get("hscore")(features, np.arange(40) % 4) < 3.0 - 1e-6


def test_regularized_hscore_uses_the_ledoit_wolf_covariance():
    rng = np.random.default_rng(1)
    labels = np.arange(24) % 3
    features = rng.standard_normal((24, 10)) + rng.standard_normal((3, 10))[labels]
    estimator = LedoitWolf().fit(features)
    class_means = np.stack([features[labels == k].mean(axis=0) for k in range(3)])[labels]
    expected = np.trace(np.linalg.inv(estimator.covariance_)
                        @ ((1 - estimator.shrinkage_) * np.cov(class_means.T, bias=True)))
    assert get("regularized_hscore")(features, labels) == pytest.approx(expected, rel=1e-9)


def test_regularized_hscore_is_finite_with_more_dimensions_than_samples_and_zero_dimensions():
    rng = np.random.default_rng(2)
    labels = np.arange(12) % 2
    features = np.hstack([rng.standard_normal((12, 40)) + labels[:, None], np.zeros((12, 30))])
    assert np.isfinite(get("regularized_hscore")(features, labels))
