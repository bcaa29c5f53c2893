"""PARC against 1 − corrcoef dissimilarities and scipy's Spearman correlation, and its memory cap."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from lead_hub.metrics import get
from lead_hub.metrics.parc import SubsampledWarning


def expected_parc(features, labels):
    centred = features - features.mean(axis=0)
    _, _, right_vectors = np.linalg.svd(centred, full_matrices=False)
    # Row correlations depend on the axes' signs: sklearn's PCA convention, largest |loading| positive.
    pivots = np.abs(right_vectors).argmax(axis=1)
    right_vectors *= np.sign(right_vectors[np.arange(len(right_vectors)), pivots])[:, None]
    projected = centred @ right_vectors.T
    projected /= projected.std(axis=0)
    one_hot = np.eye(labels.max() + 1)[labels]
    upper = np.triu_indices(len(labels), k=1)
    feature_rdm = (1 - np.corrcoef(projected))[upper]
    # corrcoef leaves rounding noise (0 vs 2e-16) on equal labels, which would break their ties: round it off.
    label_rdm = np.round(1 - np.corrcoef(one_hot), 12)[upper]
    return 100 * scipy.stats.spearmanr(feature_rdm, label_rdm)[0]


def test_parc_equals_spearman_of_the_dissimilarity_matrices():
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    features = rng.standard_normal((10, 5)) + rng.standard_normal((3, 5))[labels]
    assert get("parc")(features, labels) == pytest.approx(expected_parc(features, labels), rel=1e-9)


def test_parc_subsamples_above_the_cap_and_says_so():
    rng = np.random.default_rng(1)
    labels = np.arange(120) % 3
    features = rng.standard_normal((120, 8)) + 2 * rng.standard_normal((3, 8))[labels]
    with pytest.warns(SubsampledWarning, match="subsample of 60"):
        capped = get("parc")(features, labels, max_samples=60, seed=4)
    with pytest.warns(SubsampledWarning):
        assert get("parc")(features, labels, max_samples=60, seed=4) == capped
    full = get("parc")(features, labels, max_samples=None)
    assert full == pytest.approx(expected_parc(features, labels), rel=1e-9)
    assert capped != full


def test_the_reference_pipeline_differs_only_by_its_pca_solver():
    # scikit-learn's exact PCA fed to parc_of_projection gives lead_hub's PARC; the reference's randomized solver
    # with one power iteration (random_state 1919) finds another subspace on features with a slowly decaying
    # spectrum, and another score (benchmarks/parc_pca_effect.py measures it on the zoo's features). At D = 100
    # lead_hub's PCA is a full eigh, so the two exact routes agree to rounding.
    from sklearn.decomposition import PCA

    from lead_hub.metrics.parc import parc_of_projection

    rng = np.random.default_rng(3)
    labels = np.arange(400) % 4
    features = rng.normal(size=(400, 100)) * (np.arange(1, 101) ** -0.5) + np.eye(4, 100)[labels]
    exact = PCA(n_components=32, svd_solver="full").fit_transform(features)
    assert parc_of_projection(exact, labels) == pytest.approx(get("parc")(features, labels), rel=1e-9)
    randomized = PCA(n_components=32, svd_solver="randomized", iterated_power=1, random_state=1919)
    assert abs(parc_of_projection(randomized.fit_transform(features), labels) - get("parc")(features, labels)) > 1e-3
