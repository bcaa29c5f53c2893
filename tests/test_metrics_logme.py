"""LogME against the log evidence maximised directly (multivariate normal density + Nelder–Mead), by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import lead_hub.metrics.logme as logme_module
from lead_hub.metrics import get


def max_log_evidence_per_sample(features: np.ndarray, target: np.ndarray) -> float:
    """max over (α, β) of log N(y; 0, FFᵀ/α + I/β), divided by N."""
    num_samples = len(target)

    def negative_log_evidence(log_precisions):
        alpha, beta = np.exp(log_precisions)
        covariance = features @ features.T / alpha + np.eye(num_samples) / beta
        return -scipy.stats.multivariate_normal.logpdf(target, np.zeros(num_samples), covariance)

    result = scipy.optimize.minimize(negative_log_evidence, [0.0, 0.0], method="Nelder-Mead",
                                     options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
    return -result.fun / num_samples


@pytest.fixture
def small_problem():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2] * 4)
    features = rng.standard_normal((12, 3))
    features[:, 0] += 1.5 * (labels == 0)
    return features, labels


def expected_logme(features, labels):
    return np.mean([max_log_evidence_per_sample(features, (labels == k).astype(float)) for k in np.unique(labels)])


def test_converged_logme_is_the_maximum_log_evidence(small_problem, monkeypatch):
    # Without the reference's 11-step cap, 1e-3 tolerance and 1e-5 stabiliser, the fixed point is the exact maximum.
    monkeypatch.setattr(logme_module, "MAX_ITERATIONS", 1000)
    monkeypatch.setattr(logme_module, "TOLERANCE", 1e-13)
    monkeypatch.setattr(logme_module, "_EPSILON", 0.0)
    features, labels = small_problem
    assert get("logme")(features, labels) == pytest.approx(expected_logme(features, labels), rel=1e-8)


def test_reference_settings_stay_within_a_few_thousandths_of_the_maximum(small_problem):
    features, labels = small_problem
    assert get("logme")(features, labels) == pytest.approx(expected_logme(features, labels), rel=3e-3)


def test_fewer_samples_than_dimensions_uses_the_gram_matrix(monkeypatch):
    monkeypatch.setattr(logme_module, "MAX_ITERATIONS", 1000)
    monkeypatch.setattr(logme_module, "TOLERANCE", 1e-13)
    monkeypatch.setattr(logme_module, "_EPSILON", 0.0)
    # Rank 4 < N = 10 < D = 12, both classes encoded: the evidence has a finite maximum for each class.
    rng = np.random.default_rng(1)
    labels = np.array([0, 0, 1, 1, 1, 0, 1, 0, 1, 0])
    latent = rng.standard_normal((10, 4))
    latent[:, 0] += 2 * labels
    latent[:, 1] += 2 * (1 - labels)
    features = latent @ rng.standard_normal((4, 12))
    assert get("logme")(features, labels) == pytest.approx(expected_logme(features, labels), rel=1e-8)


def test_all_zero_dimensions_leave_the_exact_evidence_unchanged(small_problem):
    features, labels = small_problem
    padded = np.hstack([np.zeros((12, 2)), features, np.zeros((12, 50))])
    assert get("logme")(padded, labels) == pytest.approx(get("logme")(features, labels), rel=1e-10)
