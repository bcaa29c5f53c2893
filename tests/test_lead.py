"""LEAD: the closed-form NTK against autograd and eigvalsh, the sanity properties of METHOD.md §3, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lead_hub import metrics
from lead_hub.metrics._lead_evolution import evolution_score
from lead_hub.metrics._content_keys import content_keys
from lead_hub.metrics._lead_log_init import initial_logits
from lead_hub.metrics._scaling import standardize_columns
from lead_hub.metrics._lead_ntk import class_mean_eigenvalues, ntk_rows, per_sample_gradient_sq_norms, random_head

lead = metrics.get("lead")


def clustered_features(samples=300, classes=4, dims=24, separation=1.5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(samples) % classes
    centres = rng.standard_normal((classes, dims)) * separation
    return centres[labels] + rng.standard_normal((samples, dims)), labels


def autograd_gradients(head, features):
    """Per-sample gradients of (1/√K) Σ_j F_j w.r.t. every head parameter, by torch autograd, as rows."""
    layers = []
    fan_ins = [features.shape[1]] + [w.shape[0] for w in head.hidden]
    for weights, fan_in in zip(head.hidden, fan_ins):
        linear = torch.nn.Linear(fan_in, weights.shape[0], dtype=torch.float64)
        linear.weight.data = torch.tensor(weights)
        linear.bias.data.zero_()
        layers += [linear, torch.nn.ReLU()]
    output = torch.nn.Linear(fan_ins[-1], head.output.shape[0], dtype=torch.float64)
    output.weight.data = torch.tensor(head.output)
    output.bias.data.zero_()
    network = torch.nn.Sequential(*layers, output)
    rows = []
    for sample in torch.tensor(features):
        network.zero_grad()
        (network(sample[None]).sum() / np.sqrt(head.output.shape[0])).backward()
        rows.append(torch.cat([p.grad.flatten() for p in network.parameters()]).numpy().copy())
    return np.array(rows)


def test_gradient_norms_match_autograd():
    features, _ = clustered_features(samples=12, dims=7)
    head = random_head(7, (5, 6), 3, seed=3)
    gradients = autograd_gradients(head, features)
    np.testing.assert_allclose(per_sample_gradient_sq_norms(head, features), (gradients**2).sum(axis=1), rtol=1e-10)


def test_mean_eigenvalue_of_explicit_ntk_equals_closed_form():
    features, labels = clustered_features(samples=40, classes=2, dims=6)
    head = random_head(6, (8, 9), 2, seed=1)
    samples = ntk_rows(labels, 2, keys=np.zeros(len(labels)), samples_per_class=64)
    eigenvalues = class_mean_eigenvalues(head, features[np.concatenate(samples)], [len(rows) for rows in samples])
    for cls in range(2):
        gradients = autograd_gradients(head, features[labels == cls])
        gram = gradients @ gradients.T
        assert np.linalg.eigvalsh(gram).mean() == pytest.approx(eigenvalues[cls], rel=1e-10)


def test_trace_over_size_is_mean_eigenvalue_on_random_gram_matrices():
    rng = np.random.default_rng(5)
    for size in (1, 3, 17):
        vectors = rng.standard_normal((size, 11))
        gram = vectors @ vectors.T
        assert np.trace(gram) / size == pytest.approx(np.linalg.eigvalsh(gram).mean(), rel=1e-12)


def test_head_is_seeded_and_depends_only_on_dimension():
    first, second = random_head(10, (4,), 3, seed=0), random_head(10, (4,), 3, seed=0)
    np.testing.assert_array_equal(first.hidden[0], second.hidden[0])
    assert not np.array_equal(first.hidden[0], random_head(10, (4,), 3, seed=1).hidden[0])
    # He-normal fan-in: variance 2 / fan_in
    wide = random_head(400, (3000,), 2, seed=0)
    assert wide.hidden[0].var() == pytest.approx(2 / 400, rel=0.02)


def test_evolution_score_by_hand():
    log_init = np.array([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]])
    labels = np.array([0, 0, 1])
    rates = np.array([np.log(2.0), np.log(4.0)])  # keep e^{-r} = 1/2 for class 0, 1/4 for class 1
    true_class = np.array([0.5 + 0.5 * 0.7, 0.5 + 0.5 * 0.4, 0.75 + 0.25 * 0.5])
    assert evolution_score(log_init, labels, rates, "prob") == pytest.approx(true_class.mean())
    assert evolution_score(log_init, labels, rates, "log_prob") == pytest.approx(np.log(true_class).mean())
    evolved = np.array([[0.5 + 0.35, 0.15], [0.5 + 0.2, 0.3], [0.125, 0.75 + 0.125]])
    by_hand = np.mean([evolved[i, y] - np.log(np.exp(evolved[i]).sum()) for i, y in enumerate(labels)])
    assert evolution_score(log_init, labels, rates, "softmax_ce") == pytest.approx(by_hand)


def default_log_init(features, labels, classes):
    """log_init with LEAD's default options: the ridge fit and read in sample (no per-sample choice, no keys)."""
    return initial_logits(standardize_columns(features), labels, classes, keys=None, fit="in_sample")


def test_rate_zero_gives_the_classifier_only_score():
    features, labels = clustered_features()
    log_init = default_log_init(features, labels, 4)
    classifier_only = log_init[np.arange(len(labels)), labels].mean()  # ce_form "prob", the default
    assert lead(features, labels, rate_constant=0.0) == pytest.approx(classifier_only, rel=1e-12)
    _, diagnostics = lead(features, labels, return_diagnostics=True)
    assert diagnostics.classifier_only_score == pytest.approx(classifier_only, rel=1e-12)


@pytest.mark.parametrize("ce_form", ["log_prob", "prob", "softmax_ce"])
def test_infinite_rate_ties_every_model(ce_form):
    good, labels = clustered_features(separation=3.0)
    poor, _ = clustered_features(separation=0.1, seed=1)
    scores = [lead(f, labels, rate_constant=1e9, ce_form=ce_form) for f in (good, poor)]
    assert scores[0] == pytest.approx(scores[1], abs=1e-12)
    assert lead(good, labels, rate_constant=0.0, ce_form=ce_form) != pytest.approx(
        lead(poor, labels, rate_constant=0.0, ce_form=ce_form), abs=1e-6)


@pytest.mark.parametrize("ce_form", ["log_prob", "prob", "softmax_ce"])
def test_score_is_monotone_in_the_eigenvalues(ce_form):
    features, labels = clustered_features(separation=0.5)
    log_init = default_log_init(features, labels, 4)
    base = np.array([0.2, 0.5, 1.0, 2.0])
    scores = [evolution_score(log_init, labels, base * factor, ce_form) for factor in (0.0, 0.5, 1.0, 2.0, 8.0)]
    assert np.all(np.diff(scores) > 0)
    raised = base.copy()
    raised[2] *= 3  # one class converges faster, the others unchanged
    assert evolution_score(log_init, labels, raised, ce_form) > evolution_score(log_init, labels, base, ce_form)


@pytest.mark.parametrize("options", [{}, {"fit": "out_of_fold"}, {"rate_scale": "per_model"},
                                     {"margins": "calibrated"}])
def test_invariant_to_sample_order_and_class_relabelling(options):
    features, labels = clustered_features(samples=200)
    reference = lead(features, labels, **options)
    order = np.random.default_rng(1).permutation(len(labels))
    # the ridge Gram is accumulated in float32, so summation order moves the score in the 8th digit
    assert lead(features[order], labels[order], **options) == pytest.approx(reference, rel=1e-6)
    relabelled = np.array([3, 0, 2, 1])[labels] * 10 + 5  # a permutation of class ids, and not 0..K-1
    assert lead(features, relabelled, **options) == pytest.approx(reference, rel=1e-6)


def test_deterministic_under_a_seed():
    features, labels = clustered_features()
    assert lead(features, labels, seed=4) == lead(features, labels, seed=4)
    assert lead(features, labels, seed=4) != lead(features, labels, seed=5)


def test_constant_dimensions_change_nothing():
    features, labels = clustered_features()
    padded = np.hstack([features, np.zeros((len(features), 40)), np.full((len(features), 3), 2.5)])
    assert lead(padded, labels) == pytest.approx(lead(features, labels), rel=1e-9)
    assert lead(padded.astype(np.float32), labels) == pytest.approx(lead(features, labels), rel=1e-4)


@pytest.mark.parametrize("classifier", ["ridge", "ovr_svm", "cs_svm", "logistic"])
@pytest.mark.parametrize("fit", ["in_sample", "out_of_fold"])
def test_every_classifier_separates_easy_from_shuffled(classifier, fit):
    features, labels = clustered_features(samples=160, separation=2.0)
    shuffled = np.random.default_rng(0).permutation(labels)
    options = {"classifier": classifier, "fit": fit, "margins": "calibrated"}
    assert lead(features, labels, **options) > lead(features, shuffled, **options)


def test_out_of_fold_log_init_is_honest_where_in_sample_overfits():
    # D > N: an in-sample linear classifier separates random labels perfectly; out-of-fold it cannot.
    rng = np.random.default_rng(0)
    features, labels = rng.standard_normal((60, 200)), np.arange(60) % 3
    in_sample = lead(features, labels, fit="in_sample", regularization=1e-6, return_diagnostics=True)[1]
    out_of_fold = lead(features, labels, fit="out_of_fold", regularization=1e-6, return_diagnostics=True)[1]
    assert in_sample.log_init_accuracy == 1.0
    assert out_of_fold.log_init_accuracy < 0.6


def test_diagnostics_report_every_step():
    features, labels = clustered_features()
    score, diagnostics = lead(features, labels, return_diagnostics=True)
    assert diagnostics.score == score
    assert diagnostics.class_eigenvalues.shape == (4,) and np.all(diagnostics.class_eigenvalues > 0)
    np.testing.assert_allclose(diagnostics.rates, diagnostics.class_eigenvalues * diagnostics.options["rate_constant"])
    assert set(diagnostics.seconds) == {"standardize", "log_init", "ntk", "evolution"}
    assert 0.9 <= diagnostics.log_init_accuracy <= 1.0


def test_standardised_head_input_makes_the_score_scale_free():
    features, labels = clustered_features()
    assert lead(features * 1000.0, labels) == pytest.approx(lead(features, labels), rel=1e-9)
    assert lead(features * 1000.0, labels, rate_scale="raw") != pytest.approx(
        lead(features, labels, rate_scale="raw"), rel=1e-3)


@pytest.mark.parametrize(
    "features, labels, message",
    [
        (np.zeros(10), np.zeros(10), "2-D"),
        (np.zeros((10, 3)), np.zeros(9), "one label per feature row"),
        (np.full((4, 3), np.nan), np.array([0, 0, 1, 1]), "NaN or inf"),
        (np.ones((4, 3)), np.zeros(4), "at least 2 classes"),
        (np.ones((5, 3)), np.array([0, 0, 1, 1, 2]), "at least 2 samples"),
        (np.ones((4, 3)), np.array(["a", "a", "b", "b"]), "integers"),
        (np.ones((4, 3)), np.array([0.0, 0.5, 1.0, 1.0]), "integers"),
    ],
)
def test_bad_inputs_raise_clear_errors(features, labels, message):
    with pytest.raises(ValueError, match=message):
        lead(features, labels)


def test_bad_options_raise_clear_errors():
    features, labels = clustered_features(samples=40)
    with pytest.raises(ValueError, match="classifier='svm'"):
        lead(features, labels, classifier="svm")
    with pytest.raises(ValueError, match="margins='raw'"):
        lead(features, labels, margins="raw")
    with pytest.raises(ValueError, match="rate_scale"):
        lead(features, labels, rate_scale="global")
    with pytest.raises(TypeError, match="unexpected keyword"):
        lead(features, labels, learning_rte=1.0)
    with pytest.raises(ValueError, match="every feature dimension is constant"):
        lead(np.ones((40, 3)), labels)


def test_standardize_columns_drops_constant_columns():
    features = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 0.0]])
    np.testing.assert_allclose(standardize_columns(features), [[-1.0], [1.0]])


@pytest.mark.parametrize("dims", [5, 80])  # primal (D < N) and dual (D ≥ N) routes
def test_ridge_matches_scikit_learn_in_sample_and_out_of_fold(dims):
    from sklearn.linear_model import Ridge

    from lead_hub.metrics._ridge import ridge_predictions

    rng = np.random.default_rng(2)
    features, targets = rng.standard_normal((60, dims)), rng.standard_normal((60, 3))
    folds = np.arange(60) % 4
    alpha = 0.05
    expected_in_sample = Ridge(alpha=alpha * 60).fit(features, targets).predict(features)
    np.testing.assert_allclose(ridge_predictions(features, targets, alpha), expected_in_sample, atol=1e-5)
    expected_out_of_fold = np.empty_like(targets)
    for fold in range(4):
        held = folds == fold
        model = Ridge(alpha=alpha * int((~held).sum())).fit(features[~held], targets[~held])
        expected_out_of_fold[held] = model.predict(features[held])
    np.testing.assert_allclose(ridge_predictions(features, targets, alpha, folds), expected_out_of_fold, atol=1e-5)


def test_column_scaling_streams_blocks_like_numpy(monkeypatch):
    from lead_hub.metrics import _scaling

    monkeypatch.setattr(_scaling, "BLOCK_BYTES", 8 * 16 * 7)  # 16-row blocks: 101 rows end in a partial block
    rng = np.random.default_rng(3)
    features = rng.standard_normal((101, 7)) * 5.0 + 100.0
    features[:, 2] = 4.0
    scaling = _scaling.ColumnScaling.fit(features)
    varying = features[:, [0, 1, 3, 4, 5, 6]]
    np.testing.assert_array_equal(scaling.columns, [0, 1, 3, 4, 5, 6])
    np.testing.assert_allclose(scaling.mean, varying.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(scaling.std, varying.std(axis=0), rtol=1e-12)
    expected = (varying - varying.mean(axis=0)) / varying.std(axis=0)
    np.testing.assert_allclose(scaling.transform(features), expected, atol=1e-12)
    rows = rng.permutation(101)[:40]
    np.testing.assert_allclose(scaling.transform(features, rows=rows), expected[rows], atol=1e-12)
    assert scaling.transform(features, dtype=np.float32).dtype == np.float32
    np.testing.assert_allclose(content_keys(scaling.blocks(features), 0), content_keys(expected, 0), atol=1e-9)


def test_float32_features_are_not_copied_to_float64():
    features, labels = clustered_features()
    features32 = features.astype(np.float32)
    checked = metrics.check_inputs(features32, labels, metric="lead", keep_float32=True)
    assert checked.features is features32
    assert metrics.check_inputs(features32, labels, metric="lead").features.dtype == np.float64
    assert lead(features32, labels) == pytest.approx(lead(features32.astype(np.float64), labels), rel=1e-12)


@pytest.mark.parametrize("dims", [5, 80])
def test_ridge_reads_sorted_folds_as_slices_and_float32_features(dims):
    from lead_hub.metrics._ridge import ridge_predictions

    rng = np.random.default_rng(4)
    features, targets = rng.standard_normal((60, dims)), rng.standard_normal((60, 3))
    folds = np.arange(60) % 4
    expected = ridge_predictions(features, targets, 0.05, folds)
    order = np.argsort(folds, kind="stable")
    np.testing.assert_allclose(ridge_predictions(features[order], targets[order], 0.05, folds[order]),
                               expected[order], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ridge_predictions(features.astype(np.float32), targets, 0.05, folds), expected,
                               atol=1e-5)


def test_blas_tasks_keep_their_order_and_restore_the_thread_count():
    from threadpoolctl import threadpool_limits

    from lead_hub.metrics._parallel import blas_workers, map_blas_tasks

    before = blas_workers()
    assert map_blas_tasks(lambda value: value * value, range(7), workers=2) == [value * value for value in range(7)]
    assert blas_workers() == before
    with threadpool_limits(limits=1, user_api="blas"):
        assert blas_workers() == 1  # a caller's limit (one BLAS thread per process) also limits the workers


def test_the_plain_function_does_not_move_with_round_off_of_the_features():
    """On a feature matrix alone (no sample ids, the head-only NTK) the default LEAD makes no per-sample choice, so
    features × (1 + 1e-6·noise) move the score by round-off only: < 1e-5 relative (it moved by 1e-2 when folds
    and NTK rows were keyed by the features' content). Shaped like real pooled features: non-negative float32,
    D > N, classes of unequal size above the 64 NTK rows of a subsampled class."""
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 4, size=400)
    centres = rng.standard_normal((4, 640))
    features = np.maximum(centres[labels] + 2.0 * rng.standard_normal((400, 640)), 0.0).astype(np.float32)
    reference = lead(features, labels)
    for draw in range(2):
        noise = np.random.default_rng(draw).standard_normal(features.shape)
        noisy = (features * (1.0 + 1e-6 * noise)).astype(np.float32)
        assert lead(noisy, labels) == pytest.approx(reference, rel=1e-5)
    _, diagnostics = lead(features, labels, return_diagnostics=True)
    assert diagnostics.options["ntk"] == "head" and diagnostics.options["sample_keys"] == "none"


def test_each_ntk_takes_its_own_default_rate_constant():
    from lead_hub.metrics.lead import DEFAULT_RATE_CONSTANTS, rate_warning

    features, labels = clustered_features()
    norms = np.full(len(labels), 3e6)  # whole-network λ̄ is 10⁴–10⁷: the head's constant would saturate it
    _, full = lead(features, labels, ntk_sq_norms=norms, return_diagnostics=True)
    _, head = lead(features, labels, return_diagnostics=True)
    assert full.options["ntk"] == "full" and full.options["rate_constant"] == DEFAULT_RATE_CONSTANTS["full", "standardized"]
    assert head.options["ntk"] == "head" and head.options["rate_constant"] == DEFAULT_RATE_CONSTANTS["head", "standardized"]
    np.testing.assert_allclose(full.rates, 3e6 * 1e-8)
    assert rate_warning(full.rates, "full") is None and rate_warning(head.rates, "head") is None
    saturated = rate_warning(np.full(4, 3e6 / 16384), "full")
    assert "saturate" in saturated and "lead.rate_constant" in saturated
    assert "vanish" in rate_warning(np.full(4, 1e-9), "full")
