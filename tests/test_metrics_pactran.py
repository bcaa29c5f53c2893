"""PACTran-Gauss against its formula, with the head optimised by a different solver in the test."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from scipy.special import log_softmax, softmax

from lead_hub.metrics import get


def expected_pactran(features, labels, prior_factor=1.0, variance_factor=10.0):
    features = features - features.mean(axis=0)
    num_samples, num_features = features.shape
    num_classes = labels.max() + 1
    targets = np.eye(num_classes)[labels]
    prior_scale = prior_factor * num_samples

    def split(theta):
        return theta[:-num_classes].reshape(num_features, num_classes), theta[-num_classes:]

    def loss(theta):
        weights, bias = split(theta)
        cross_entropy = -np.sum(targets * log_softmax(features @ weights + bias, axis=1)) / num_samples
        return cross_entropy + 0.5 * np.sum(weights**2) / prior_scale

    theta = scipy.optimize.minimize(loss, np.zeros(num_features * num_classes + num_classes), method="BFGS",
                                    options={"gtol": 1e-10}).x
    weights, bias = split(theta)
    probabilities = softmax(features @ weights + bias, axis=1)
    curvature = probabilities * (1 - probabilities)
    h_weights = (features**2).T @ curvature + 1 / prior_scale
    h_bias = curvature.sum(axis=0)
    parameters = num_features * num_classes
    inverse_variance = (h_weights.sum() + h_bias.sum()) * prior_scale / parameters + 1e-10
    bound = loss(theta) + 0.5 * parameters / prior_scale * (variance_factor / num_features) * np.log(inverse_variance)
    return -bound


@pytest.fixture
def small_problem():
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    features = rng.standard_normal((30, 4)) + 0.8 * rng.standard_normal((3, 4))[labels] + 1.0
    return features, labels


# The metric stops L-BFGS-B at the reference's tol=1e-6, the test's BFGS runs to gtol 1e-10: a few 1e-6 apart.
TOLERANCE = 3e-5


def test_pactran_is_the_negated_bound(small_problem):
    features, labels = small_problem
    assert get("pactran")(features, labels) == pytest.approx(expected_pactran(features, labels), rel=TOLERANCE)


def test_pactran_options_enter_the_bound(small_problem):
    features, labels = small_problem
    score = get("pactran")(features, labels, prior_factor=0.1, variance_factor=1.0)
    assert score == pytest.approx(expected_pactran(features, labels, 0.1, 1.0), rel=TOLERANCE)


def test_pactran_is_deterministic_and_finite_with_zero_dimensions(small_problem):
    features, labels = small_problem
    padded = np.hstack([features, np.zeros((30, 6))])
    assert get("pactran")(padded, labels, seed=1) == get("pactran")(padded, labels, seed=2)
    assert np.isfinite(get("pactran")(padded, labels))
