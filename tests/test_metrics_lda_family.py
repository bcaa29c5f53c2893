"""SFDA, ETran and PED: the metrics built on the shrinkage linear discriminant.

SFDA is compared with the reference algorithm written out below (generalised eigenvectors, ConfMix toward the
other classes' means); ETran's combination and energy part and PED's potential-energy steps are checked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.special import softmax

from lead_hub.metrics import get, score_model_set
from lead_hub.metrics.etran import ETranParts, combine_etran
from lead_hub.metrics.ped import descend


def reference_lda_posteriors(features, labels, shrinkage=None):
    """The SFDA reference discriminant: coef = μ V Vᵀ with V the generalised eigenvectors of (S_b, Σ_λ)."""
    num_classes, num_features = labels.max() + 1, features.shape[1]
    means = np.stack([features[labels == k].mean(axis=0) for k in range(num_classes)])
    priors = np.bincount(labels) / len(labels)
    within = sum(priors[k] * np.cov(features[labels == k].T, bias=True) for k in range(num_classes))
    if shrinkage is None:
        shrinkage = max(np.exp(-5 * np.linalg.eigvalsh(within).max()), 1e-10)
    total = np.cov(features.T, bias=True)
    shrunk = (1 - shrinkage) * within + shrinkage * np.trace(within) / num_features * np.eye(num_features)
    shrunk_total = (1 - shrinkage) * total + shrinkage * np.trace(total) / num_features * np.eye(num_features)
    _, vectors = scipy.linalg.eigh(shrunk_total - shrunk, shrunk)
    coef = means @ vectors @ vectors.T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    return softmax(features @ coef.T + intercept, axis=1), shrinkage


def reference_sfda(features, labels):
    rows, num_classes = np.arange(len(labels)), labels.max() + 1
    posteriors, shrinkage = reference_lda_posteriors(features, labels)
    confidence = softmax(posteriors, axis=1)[rows, labels][:, None]
    means = np.stack([features[labels == k].mean(axis=0) for k in range(num_classes)])
    outer_means = (means.sum(axis=0) - means) / (num_classes - 1)
    mixed = confidence * features + (1 - confidence) * outer_means[labels]
    posteriors, _ = reference_lda_posteriors(mixed, labels, shrinkage)
    return posteriors[rows, labels].mean()


@pytest.fixture
def overlapping_classes():
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    features = 0.4 * rng.standard_normal((60, 5)) + 0.5 * rng.standard_normal((3, 5))[labels] + 2.0
    return features, labels


def test_sfda_equals_the_reference_algorithm(overlapping_classes):
    features, labels = overlapping_classes
    expected = reference_sfda(features, labels)
    assert 0.4 < expected < 0.99  # a case where the shrinkage and the self-challenge both matter
    assert get("sfda")(features, labels) == pytest.approx(expected, rel=1e-9)


def test_sfda_log_probability_variant_is_at_most_the_log_of_the_mean(overlapping_classes):
    features, labels = overlapping_classes
    mean_log = get("sfda")(features, labels, log_probability=True)
    assert mean_log < np.log(get("sfda")(features, labels))


def test_sfda_with_constant_and_zero_dimensions_is_finite_and_unaffected_by_their_values(overlapping_classes):
    features, labels = overlapping_classes
    zeros = np.hstack([features, np.zeros((60, 4))])
    constants = np.hstack([features, np.full((60, 4), 123.0)])
    assert np.isfinite(get("sfda")(zeros, labels))
    assert get("sfda")(constants, labels) == pytest.approx(get("sfda")(zeros, labels), rel=1e-9)


def test_etran_lda_part_is_the_reference_discriminant_posterior(overlapping_classes):
    features, labels = overlapping_classes
    posteriors, _ = reference_lda_posteriors(features, labels)
    parts = get("etran")(features, labels)
    assert isinstance(parts, ETranParts)
    assert parts.lda == pytest.approx(posteriors[np.arange(60), labels].mean(), rel=1e-9)


def test_etran_energy_is_the_mean_of_the_lowest_half_percent():
    features = np.tile([[1.0, 2.0, 3.0]], (400, 1))
    features[7] = [-3.0, -3.0, -3.0]  # energy log(3) − 3
    features[9] = [-2.0, -2.0, -2.0]  # energy log(3) − 2
    labels = np.arange(400) % 2
    features[10:, 0] += 0.01 * labels[10:]
    assert get("etran")(features, labels).energy == pytest.approx(np.log(3) - 2.5)  # 0.5% of 400 = 2 rows
    assert get("etran")(features[:100], labels[:100]).energy == pytest.approx(np.log(3) - 3)  # at least 1 row


def test_etran_combines_min_max_parts_across_the_model_set():
    parts = {"a": ETranParts(lda=0.9, energy=1.0), "b": ETranParts(lda=0.5, energy=3.0),
             "c": ETranParts(lda=0.7, energy=2.0)}
    assert combine_etran(parts) == pytest.approx({"a": 0.85, "b": 0.15, "c": 0.5})
    assert combine_etran({"only": ETranParts(lda=0.3, energy=-2.0)}) == {"only": 0.0}


def test_score_model_set_returns_etran_scores(overlapping_classes):
    features, labels = overlapping_classes
    rng = np.random.default_rng(1)
    scores = score_model_set("etran", {"separable": {"features": features, "labels": labels},
                                       "noise": {"features": rng.standard_normal(features.shape), "labels": labels}})
    assert set(scores) == {"separable", "noise"} and all(0.0 <= value <= 1.0 for value in scores.values())


ONE_DIMENSIONAL = np.array([[-1.0], [1.0], [1.0], [3.0]])
TWO_CLASSES = np.array([0, 0, 1, 1])


def test_ped_first_step_by_hand():
    # Standardised (mean 1, std √2): class means ∓1/√2, radii 1/√2, distance √2. With ν = 2 the overlap is
    # 2·√2 − √2 = √2 and each class moves ½τ²·√2 = 0.005·√2 apart, i.e. 0.01 in original units.
    moved = descend(ONE_DIMENSIONAL, TWO_CLASSES, 2, radius_scale=2.0, max_steps=1)
    np.testing.assert_allclose(moved.ravel(), [-1.01, 0.99, 1.01, 3.01], atol=1e-12)


def test_ped_runs_every_step_while_the_change_stays_above_the_exit_ratio():
    # Each step shrinks the overlap by 2·0.005 = 1%: six steps move each class by 1 − 0.99⁶ in original units.
    moved = descend(ONE_DIMENSIONAL, TWO_CLASSES, 2, radius_scale=2.0)
    shift = 1 - 0.99**6
    np.testing.assert_allclose(moved.ravel(), [-1 - shift, 1 - shift, 1 + shift, 3 + shift], atol=1e-12)


def test_ped_stops_when_the_change_falls_to_the_exit_ratio():
    # ½τ² = 0.3: the first step moves each class by 0.3·2 = 0.6 (original units) and leaves an overlap of 40%
    # of the first one, 0.4 ≤ 0.5, so no second step.
    moved = descend(ONE_DIMENSIONAL, TWO_CLASSES, 2, radius_scale=2.0, time_step=np.sqrt(0.6))
    np.testing.assert_allclose(moved.ravel(), [-1.6, 0.4, 1.6, 3.6], atol=1e-12)


def test_ped_leaves_separated_classes_and_constant_dimensions_alone():
    features = np.hstack([ONE_DIMENSIONAL, np.zeros((4, 2)), np.full((4, 1), 5.0)])
    np.testing.assert_allclose(descend(features, TWO_CLASSES, 2), features, atol=1e-12)


def test_ped_scores_the_moved_features_with_the_base_metric():
    rng = np.random.default_rng(3)
    labels = np.arange(60) % 3
    features = rng.standard_normal((60, 5)) + 0.3 * rng.standard_normal((3, 5))[labels]
    moved = descend(features, labels, 3)
    assert np.abs(moved - features).max() > 1e-4
    assert get("ped")(features, labels, base="hscore") == pytest.approx(get("hscore")(moved, labels), rel=1e-12)
    assert get("ped")(features, labels) == pytest.approx(get("sfda")(moved, labels), rel=1e-12)


@pytest.mark.parametrize("base", ["leep", "etran", "ped"])
def test_ped_refuses_bases_that_are_not_per_model_feature_metrics(base, overlapping_classes):
    with pytest.raises(ValueError, match="features-only metric"):
        get("ped")(*overlapping_classes, base=base)
