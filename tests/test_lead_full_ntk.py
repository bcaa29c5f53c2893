"""LEAD's interface for the whole-network NTK: sample ids, the public NTK rows and head, ntk="full", head_input."""

from __future__ import annotations

import numpy as np
import pytest

from lead_hub import metrics
from lead_hub.metrics._lead_ntk import ntk_head, ntk_rows, per_sample_gradient_sq_norms

lead = metrics.get("lead")


def clustered(samples=240, classes=3, dims=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(samples) % classes
    features = rng.standard_normal((classes, dims))[labels] * 1.5 + rng.standard_normal((samples, dims))
    return features * 3.0 + 7.0, labels, rng.permutation(10 * samples)[:samples]


def head_only_norms(features, labels, **options):
    """Every row's squared gradient norm w.r.t. the head, through the public pieces the extraction pipeline uses."""
    head = ntk_head(features, len(np.unique(labels)), widths=(32, 48), **options)
    return per_sample_gradient_sq_norms(head.head, head.inputs(features))


def test_registry_names_the_per_sample_arrays_lead_accepts():
    assert metrics.info("lead").sample_arrays == ("sample_ids", "ntk_sq_norms")
    assert metrics.info("hscore").sample_arrays == ()


def test_ntk_rows_by_id_follow_the_samples_and_ignore_the_features():
    features, labels, ids = clustered()
    chosen = ntk_rows(labels, 3, sample_ids=ids, samples_per_class=10)
    assert [len(rows) for rows in chosen] == [10, 10, 10]
    assert all((labels[rows] == cls).all() for cls, rows in enumerate(chosen))
    order = np.random.default_rng(1).permutation(len(labels))
    permuted = ntk_rows(labels[order], 3, sample_ids=ids[order], samples_per_class=10)
    assert [sorted(ids[order][rows]) for rows in permuted] == [sorted(ids[rows]) for rows in chosen]
    assert ntk_rows(labels, 3, sample_ids=ids, samples_per_class=10, seed=1)[0].tolist() != chosen[0].tolist()
    assert [len(rows) for rows in ntk_rows(labels, 3, sample_ids=ids, samples_per_class=500)] == [80, 80, 80]


@pytest.mark.parametrize("arguments, message", [
    ({}, "exactly one of"),
    ({"sample_ids": np.arange(6), "keys": np.zeros(6)}, "exactly one of"),
    ({"sample_ids": np.array([0, 1, 2, 2, 3, 4])}, "distinct"),
    ({"sample_ids": np.arange(6.0) + 0.5}, "integers"),
    ({"sample_ids": np.arange(5)}, "one per sample"),
])
def test_ntk_rows_rejects_ambiguous_or_bad_identities(arguments, message):
    with pytest.raises(ValueError, match=message):
        ntk_rows(np.array([0, 0, 0, 1, 1, 1]), 2, **arguments)


def test_ntk_rows_wants_labels_in_zero_to_k():
    with pytest.raises(ValueError, match="numpy.unique"):
        ntk_rows(np.array([3, 3, 5, 5]), 2, sample_ids=np.arange(4))


def test_full_ntk_eigenvalues_are_the_mean_norms_over_the_ntk_rows():
    features, labels, ids = clustered()
    norms = np.full(len(labels), np.nan)
    chosen = ntk_rows(labels, 3, sample_ids=ids, samples_per_class=8)
    selected = np.concatenate(chosen)
    norms[selected] = np.random.default_rng(2).uniform(1e3, 1e5, len(selected))
    _, diagnostics = lead(features, labels, sample_ids=ids, ntk_sq_norms=norms, ntk="full", ntk_samples_per_class=8,
                          return_diagnostics=True)
    np.testing.assert_array_equal(diagnostics.class_eigenvalues, [norms[rows].mean() for rows in chosen])
    assert diagnostics.options["sample_keys"] == "sample_ids"


def test_full_ntk_with_the_heads_own_norms_reproduces_the_head_only_score():
    """The public head and rows are exactly what LEAD uses: handing their norms back as ntk_sq_norms changes
    nothing, for both head inputs."""
    features, labels, ids = clustered()
    for head_input in ("standardized", "raw"):
        options = {"head_widths": (32, 48), "head_input": head_input, "sample_ids": ids, "rate_constant": 1e-3}
        norms = head_only_norms(features, labels, head_input=head_input)
        assert lead(features, labels, ntk="full", ntk_sq_norms=norms, **options) == pytest.approx(
            lead(features, labels, **options), rel=1e-12)


def test_full_ntk_at_rate_zero_is_the_classifier_only_score():
    features, labels, ids = clustered()
    norms = np.full(len(labels), 5e4)
    score, diagnostics = lead(features, labels, sample_ids=ids, ntk="full", ntk_sq_norms=norms, rate_constant=0.0,
                              return_diagnostics=True)
    assert score == diagnostics.classifier_only_score
    assert lead(features, labels, sample_ids=ids, ntk="full", ntk_sq_norms=norms) > score


@pytest.mark.parametrize("norms, message", [
    (None, "needs ntk_sq_norms.*lead.ntk=full"),
    (np.full(240, np.nan), "are NaN.*lead.ntk=full"),
    (np.ones(239), "one value per sample"),
    (-np.ones(240), "non-negative"),
])
def test_full_ntk_without_usable_norms_says_how_to_get_them(norms, message):
    features, labels, ids = clustered()
    with pytest.raises(ValueError, match=message):
        lead(features, labels, sample_ids=ids, ntk="full", ntk_sq_norms=norms)


def test_full_ntk_never_falls_back_when_one_selected_row_is_missing():
    features, labels, ids = clustered()
    norms = np.ones(len(labels))
    norms[ntk_rows(labels, 3, sample_ids=ids)[2][-1]] = np.nan
    with pytest.raises(ValueError, match="1 of them are NaN"):
        lead(features, labels, sample_ids=ids, ntk="full", ntk_sq_norms=norms)
    norms[np.isnan(norms)] = 1.0
    rows_not_chosen = np.setdiff1d(np.arange(len(labels)), np.concatenate(ntk_rows(labels, 3, sample_ids=ids)))
    norms[rows_not_chosen] = np.nan  # rows outside the NTK sample are never read
    assert np.isfinite(lead(features, labels, sample_ids=ids, ntk="full", ntk_sq_norms=norms))


def test_head_input_defaults_to_the_historical_coupling_with_rate_scale():
    features, labels, _ = clustered()
    for rate_scale, implied in (("standardize", "standardized"), ("raw", "raw"), ("per_model", "raw")):
        assert lead(features, labels, rate_scale=rate_scale) == lead(features, labels, rate_scale=rate_scale,
                                                                      head_input=implied)
    untied = lead(features, labels, rate_scale="standardize", head_input="raw", return_diagnostics=True)[1]
    assert untied.options["head_input"] == "raw"
    assert untied.score != lead(features, labels)
    with pytest.raises(ValueError, match="head_input='whitened'"):
        lead(features, labels, head_input="whitened")
    with pytest.raises(ValueError, match="ntk='backbone'"):
        lead(features, labels, ntk="backbone")


def test_sample_ids_must_match_the_rows():
    features, labels, ids = clustered()
    with pytest.raises(ValueError, match="sample_ids has 239 entries"):
        lead(features, labels, sample_ids=ids[:-1])
    with pytest.raises(ValueError, match="distinct"):
        lead(features, labels, sample_ids=np.zeros(len(labels), dtype=int))
