"""NLEEP on clusters whose mixture posteriors are hard, so the score follows from label counts by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lead_hub.metrics import get


@pytest.fixture
def two_mixed_clusters():
    # Cluster A around x = −10 holds labels 0,0,0,1; cluster B around x = +10 holds 1,1,1,0 (tiny spread, so the
    # 2-component mixture separates them and its posteriors are 0/1). P(y | A) = (3/4, 1/4), P(y | B) = (1/4, 3/4).
    rng = np.random.default_rng(0)
    centres = np.repeat([-10.0, 10.0], 4)
    features = np.stack([centres + 0.1 * rng.standard_normal(8), 0.01 * rng.standard_normal(8)], axis=1)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    return features, labels


def test_nleep_by_hand(two_mixed_clusters):
    features, labels = two_mixed_clusters
    # Six samples get 3/4 (majority label of their cluster), two get 1/4.
    assert get("nleep")(features, labels, components_per_class=1) == pytest.approx((6 * 0.75 + 2 * 0.25) / 8)
    assert get("nleep")(features, labels, components_per_class=1, log_probability=True) == pytest.approx(
        (6 * np.log(0.75) + 2 * np.log(0.25)) / 8)


def test_nleep_is_one_for_pure_clusters():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 20)
    features = 0.1 * rng.standard_normal((60, 4)) + 10 * np.eye(4)[labels]
    assert get("nleep")(features, labels, components_per_class=1) == pytest.approx(1.0)


def test_nleep_is_seeded_and_subsamples_its_fit():
    rng = np.random.default_rng(2)
    labels = np.arange(80) % 2
    features = rng.standard_normal((80, 6)) + labels[:, None]
    first = get("nleep")(features, labels, seed=3, max_fit_samples=40)
    assert get("nleep")(features, labels, seed=3, max_fit_samples=40) == first
    assert 0.5 <= first <= 1.0


def test_nleep_needs_as_many_fitting_samples_as_components():
    features, labels = np.random.default_rng(3).standard_normal((8, 3)), np.arange(8) % 2
    with pytest.raises(ValueError, match="10 mixture components"):
        get("nleep")(features, labels)
