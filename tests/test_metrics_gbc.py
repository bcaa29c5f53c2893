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
    # Two identical dimensions: spherical keeps one log term, diagonal adds one per dimension.
    column = np.array([0.0, 2.0, 5.0, 9.0])
    features, labels = np.stack([column, column], axis=1) / np.sqrt(2), np.array([0, 0, 1, 1])
    # PCA keeps the single direction of variance: the data are the 1-D case above.
    distance = (7 - 1) ** 2 / 2.5 / 8 + 0.5 * (np.log(2.5) - 0.5 * np.log(4))
    assert get("gbc")(features, labels) == pytest.approx(-2 * np.exp(-distance), rel=1e-9)


def test_zero_variance_classes_hit_the_floor_not_a_division_by_zero():
    features, labels = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), np.array([0, 0, 1, 1])
    # Both class variances are floored at 1e-4: BD = (1/8)·1/1e-4 → coefficients underflow to 0.
    assert get("gbc")(features, labels) == pytest.approx(-2 * np.exp(-1 / 8e-4))
