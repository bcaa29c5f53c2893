"""Properties every peer metric must have: invariance to sample order and class names, the right direction on an
easy contrast, constant/all-zero dimensions handled, seeded determinism, validated inputs."""

from __future__ import annotations

import numpy as np
import pytest

from lead_hub.metrics import get

FEATURE_METRICS = ["logme", "hscore", "regularized_hscore", "transrate", "parc", "gbc", "sfda", "nleep", "ped",
                   "pactran"]
LOGIT_METRICS = ["leep", "nce"]
# One mixture component per class keeps NLEEP's optimum unique on these clusters, hence order-independent.
OPTIONS = {"nleep": {"components_per_class": 1}}
# Iterative solvers (L-BFGS for PACTran, EM for NLEEP) stop at a tolerance: their invariances hold to it.
TOLERANCE = {"pactran": 1e-4, "nleep": 1e-6}
# Metrics whose value does not depend on appended constant or all-zero dimensions (the others regularise with
# tr(S)/D or count D, and are only required to stay finite).
# GBC is not here: like its reference code it keeps min(64, D) PCA components and floors the variance of the
# empty ones at 1e-4, so constant dimensions change its value (tests/test_metrics_gbc.py checks that behaviour).
INVARIANT_TO_CONSTANT_DIMENSIONS = ["hscore", "transrate", "parc", "nleep"]

NUM_CLASSES, PER_CLASS, DIMENSIONS = 3, 20, 12


def score(name, features, labels, **extra):
    """The metric's value; ETran's per-model parts are reduced to their label-dependent LDA part."""
    value = get(name)(features, labels, **OPTIONS.get(name, {}), **extra)
    return value.lda if name == "etran" else value


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(NUM_CLASSES), PER_CLASS)
    centres = 3.0 * rng.standard_normal((NUM_CLASSES, DIMENSIONS))
    features = rng.standard_normal((len(labels), DIMENSIONS)) + centres[labels]
    source_logits = 2.0 * np.eye(6)[2 * labels + rng.integers(0, 2, len(labels))] + rng.standard_normal((60, 6))
    return features, labels, source_logits


def arguments(name, problem):
    features, labels, source_logits = problem
    return (features, labels, {"source_logits": source_logits} if name in LOGIT_METRICS else {})


ALL = FEATURE_METRICS + LOGIT_METRICS + ["etran"]


@pytest.mark.parametrize("name", ALL)
def test_invariant_to_sample_order(name, problem):
    features, labels, extra = arguments(name, problem)
    order = np.random.default_rng(1).permutation(len(labels))
    if "source_logits" in extra:
        shuffled_extra = {"source_logits": extra["source_logits"][order]}
    else:
        shuffled_extra = {}
    expected = score(name, features, labels, **extra)
    assert score(name, features[order], labels[order], **shuffled_extra) == pytest.approx(
        expected, rel=TOLERANCE.get(name, 1e-8))


@pytest.mark.parametrize("name", ALL)
def test_invariant_to_renaming_classes(name, problem):
    features, labels, extra = arguments(name, problem)
    renamed = np.array([7, 2, 5])[labels]  # a permutation of the class order, and other label values
    assert score(name, features, renamed, **extra) == pytest.approx(score(name, features, labels, **extra),
                                                                     rel=TOLERANCE.get(name, 1e-8))


@pytest.mark.parametrize("name", ALL)
def test_separated_classes_score_above_shuffled_labels(name, problem):
    features, labels, extra = arguments(name, problem)
    shuffled = np.random.default_rng(2).permutation(labels)
    assert score(name, features, labels, **extra) > score(name, features, shuffled, **extra)


@pytest.mark.parametrize("name", FEATURE_METRICS + ["etran"])
def test_constant_and_all_zero_dimensions_are_handled(name, problem):
    features, labels, _ = problem
    padded = np.hstack([np.zeros((len(labels), 40)), features, np.full((len(labels), 3), 2.5)])
    value = score(name, padded, labels)
    assert np.isfinite(value)
    if name in INVARIANT_TO_CONSTANT_DIMENSIONS:
        assert value == pytest.approx(score(name, features, labels), rel=1e-6)


def test_logme_is_invariant_to_all_zero_dimensions(problem):
    features, labels, _ = problem
    padded = np.hstack([np.zeros((len(labels), 40)), features])
    assert get("logme")(padded, labels) == pytest.approx(get("logme")(features, labels), rel=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_score_and_any_float_dtype(name, problem):
    features, labels, extra = arguments(name, problem)
    narrow = features.astype(np.float32)
    first = score(name, narrow, labels, seed=5, **extra)
    assert score(name, narrow, labels, seed=5, **extra) == first
    assert score(name, narrow.astype(np.float64), labels, seed=5, **extra) == first


@pytest.mark.parametrize("name", ALL)
def test_non_finite_features_are_rejected_with_the_row(name, problem):
    features, labels, extra = arguments(name, problem)
    broken = features.copy()
    broken[4, 1] = np.nan
    with pytest.raises(ValueError, match=rf"{name}: features hold NaN or inf in 1 rows \(first: \[4\]\)"):
        get(name)(broken, labels, **extra)
