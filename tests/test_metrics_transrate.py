"""TransRate against the coding-rate formula written with slogdet."""

from __future__ import annotations

import numpy as np
import pytest

from lead_hub.metrics import get


def coding_rate(rows: np.ndarray, epsilon: float = 1e-4) -> float:
    _, log_determinant = np.linalg.slogdet(np.eye(rows.shape[1]) + rows.T @ rows / (len(rows) * epsilon))
    return 0.5 * log_determinant


def expected_transrate(features, labels):
    centred = features - features.mean(axis=0)
    return coding_rate(centred) - np.mean([coding_rate(centred[labels == k]) for k in np.unique(labels)])


@pytest.mark.parametrize("rows_per_class", [3, 20])  # classes smaller and larger than D (Gram vs scatter path)
def test_transrate_is_the_coding_rate_difference(rows_per_class):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), rows_per_class)
    features = 0.05 * rng.standard_normal((len(labels), 6)) + 0.1 * rng.standard_normal((3, 6))[labels]
    assert get("transrate")(features, labels) == pytest.approx(expected_transrate(features, labels), rel=1e-9)


def test_transrate_one_dimensional_by_hand():
    # Centred x = (−1.5, −0.5, 0.5, 1.5): R = ½ log(1 + Σx²/(Nε)); class rates use their own n.
    features, labels = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    total = 0.5 * np.log(1 + 5.0 / (4 * 1e-4))
    class0 = 0.5 * np.log(1 + (1.5**2 + 0.5**2) / (2 * 1e-4))
    class1 = 0.5 * np.log(1 + (0.5**2 + 1.5**2) / (2 * 1e-4))
    assert get("transrate")(features, labels) == pytest.approx(total - (class0 + class1) / 2, rel=1e-12)


def test_constant_dimensions_add_nothing():
    rng = np.random.default_rng(3)
    labels = np.arange(16) % 2
    features = rng.standard_normal((16, 3)) + labels[:, None]
    padded = np.hstack([features, np.zeros((16, 20)), np.full((16, 2), -4.0)])
    assert get("transrate")(padded, labels) == pytest.approx(get("transrate")(features, labels), rel=1e-10)
