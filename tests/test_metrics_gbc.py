"""GBC on one-dimensional classes whose Bhattacharyya distance is computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lead_hub.metrics import get


def test_gbc_by_hand_two_classes():
    # Class 0: {0, 2} → mean 1, variance 1; class 1: {4, 6} → mean 5, variance 1.
    # BD = (1/8)·(5 − 1)²/1 + ½·(log 1 − ½ log 1 − ½ log 1) = 2; both ordered pairs count → GBC = −2·e^−2.
    features, labels = np.array([[0.0], [2.0], [4.0], [6.0]]), np.array([0, 0, 1, 1])
    assert get("gbc")(features, labels) == pytest.approx(-2 * np.exp(-2.0), rel=1e-12)


def test_gbc_by_hand_unequal_variances():
    # Class 0: {0, 2} (variance 1); class 1: {5, 9} (mean 7, variance 4). v̄ = 2.5.
    features, labels = np.array([[0.0], [2.0], [5.0], [9.0]]), np.array([0, 0, 1, 1])
    distance = (7 - 1) ** 2 / 2.5 / 8 + 0.5 * (np.log(2.5) - 0.5 * np.log(1) - 0.5 * np.log(4))
    assert get("gbc")(features, labels) == pytest.approx(-2 * np.exp(-distance), rel=1e-12)
    assert get("gbc")(features, labels, gaussian="diagonal") == pytest.approx(-2 * np.exp(-distance), rel=1e-12)


def test_spherical_counts_the_log_determinant_once_and_diagonal_per_dimension():
    # Two identical dimensions: PCA finds one direction of variance and a second, empty component (kept, as in
    # the reference's PCA(64), with its class variances floored at 1e-4).
    column = np.array([0.0, 2.0, 5.0, 9.0])
    features, labels = np.stack([column, column], axis=1) / np.sqrt(2), np.array([0, 0, 1, 1])
    # diagonal: the empty component adds 0 to both terms (equal means, log 1e-4 − log 1e-4), so the 1-D value.
    distance = (7 - 1) ** 2 / 2.5 / 8 + 0.5 * (np.log(2.5) - 0.5 * np.log(4))
    assert get("gbc")(features, labels, gaussian="diagonal") == pytest.approx(-2 * np.exp(-distance), rel=1e-9)
    # spherical: σ²_c is the mean over both components, the log term counted once.
    first, second = (1 + 1e-4) / 2, (4 + 1e-4) / 2
    pooled = (first + second) / 2
    distance = (7 - 1) ** 2 / pooled / 8 + 0.5 * (np.log(pooled) - 0.5 * np.log(first) - 0.5 * np.log(second))
    assert get("gbc")(features, labels) == pytest.approx(-2 * np.exp(-distance), rel=1e-9)


def reference_style_gbc(features, labels, components=64):
    """GBC the way the reference computes it: scikit-learn's PCA to exactly ``components`` dimensions, per-class
    biased variances floored at 1e-4, averaged over dimensions (spherical)."""
    from sklearn.decomposition import PCA

    projected = PCA(n_components=components, svd_solver="full").fit_transform(features)
    classes = np.unique(labels)
    means = np.stack([projected[labels == c].mean(axis=0) for c in classes])
    variances = np.stack([np.maximum(projected[labels == c].var(axis=0), 1e-4).mean() for c in classes])
    total = 0.0
    for a in classes:
        for b in classes:
            if a != b:
                pooled = (variances[a] + variances[b]) / 2
                distance = np.sum((means[a] - means[b]) ** 2) / pooled / 8 + 0.5 * (
                    np.log(pooled) - 0.5 * np.log(variances[a]) - 0.5 * np.log(variances[b]))
                total += np.exp(-distance)
    return -total


def padded_features(informative: int, width: int, seed: int = 0, samples: int = 300, classes: int = 5):
    """``informative`` class-structured dimensions, zero-padded to ``width`` (like the zoo's narrow MobileNets)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(samples) % classes
    centres = rng.normal(size=(classes, informative)) * 0.6
    features = np.zeros((samples, width))
    features[:, :informative] = centres[labels] + rng.normal(size=(samples, informative))
    return features, labels


def test_fewer_varying_dimensions_than_components_score_like_the_reference():
    # 22 informative dimensions padded to 256 (the shape of the person-detection control): the reference keeps
    # 64 components, 42 of them empty; an earlier lead_hub dropped those and scored far higher.
    features, labels = padded_features(22, 256)
    assert get("gbc")(features, labels) == pytest.approx(reference_style_gbc(features, labels), rel=1e-9)
    dropped = reference_style_gbc(features, labels, components=22)
    assert abs(dropped - get("gbc")(features, labels)) > 0.1 * abs(dropped)


def test_negligible_noise_on_the_empty_dimensions_leaves_the_score_and_the_order():
    padded, labels = padded_features(10, 128)
    noisy = padded + np.concatenate([np.zeros((len(labels), 10)),
                                     1e-3 * np.random.default_rng(1).normal(size=(len(labels), 118))], axis=1)
    full_rank, _ = padded_features(64, 64, seed=2)
    scores = [get("gbc")(x, labels) for x in (padded, noisy, full_rank)]
    assert scores[1] == pytest.approx(scores[0], rel=1e-3)
    assert (scores[0] > scores[2]) == (scores[1] > scores[2])


def test_zero_variance_classes_hit_the_floor_not_a_division_by_zero():
    features, labels = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), np.array([0, 0, 1, 1])
    # Both class variances are floored at 1e-4: BD = (1/8)·1/1e-4 → coefficients underflow to 0.
    assert get("gbc")(features, labels) == pytest.approx(-2 * np.exp(-1 / 8e-4))
