"""Exact leave-one-out ridge (LEAD's fit="leave_one_out") against explicit refits with the point left out."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from lead_hub import metrics
from lead_hub.metrics._lead_log_init import initial_logits
from lead_hub.metrics._ridge import ridge_leave_one_out
from lead_hub.metrics._scaling import ColumnScaling

lead = metrics.get("lead")


def refit_predictions(features, targets, alpha):
    """Row i predicted by scikit-learn's Ridge fit (SVD solver) on every other row, penalty alpha·(N − 1).

    Single-threaded BLAS: on a loaded machine, N small multi-threaded solves cost 30× more than the same work
    on one thread."""
    predictions = np.empty_like(targets)
    with threadpool_limits(limits=1, user_api="blas"):
        for row in range(len(features)):
            others = np.arange(len(features)) != row
            model = Ridge(alpha=alpha * (len(features) - 1), solver="svd").fit(features[others], targets[others])
            predictions[row] = model.predict(features[row:row + 1])
    return predictions


@pytest.mark.parametrize("samples, dims", [(60, 5), (60, 40), (60, 60), (40, 200)])  # primal, primal, dual, dual
@pytest.mark.parametrize("alpha", [0.05, 1e-3])
def test_leave_one_out_matches_explicit_refits(samples, dims, alpha):
    rng = np.random.default_rng(dims)
    features = rng.standard_normal((samples, dims)) * 3.0 + 2.0  # uncentred: the intercept is exercised
    targets = rng.standard_normal((samples, 4))
    np.testing.assert_allclose(ridge_leave_one_out(features, targets, alpha),
                               refit_predictions(features, targets, alpha), rtol=0, atol=1e-10)


def test_leave_one_out_primal_reads_rows_in_blocks(monkeypatch):
    from lead_hub.metrics import _ridge

    rng = np.random.default_rng(7)
    features, targets = rng.standard_normal((90, 6)) + 1.0, rng.standard_normal((90, 2))
    monkeypatch.setattr(_ridge, "_LOO_BLOCK_ROWS", 16)  # several blocks per worker, the last one partial
    np.testing.assert_allclose(ridge_leave_one_out(features, targets, 0.02), refit_predictions(features, targets, 0.02),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(ridge_leave_one_out(features.astype(np.float32), targets, 0.02),
                               refit_predictions(features.astype(np.float32).astype(np.float64), targets, 0.02),
                               rtol=0, atol=1e-10)


def test_leave_one_out_rejects_what_it_cannot_fit():
    with pytest.raises(ValueError, match="regularization must be > 0"):
        ridge_leave_one_out(np.ones((5, 2)), np.ones((5, 2)), 0.0)
    features, labels = np.random.default_rng(0).standard_normal((40, 4)), np.arange(40) % 2
    with pytest.raises(ValueError, match="fit='leave_one_out' has a closed form only for classifier='ridge'"):
        lead(features, labels, fit="leave_one_out", classifier="ovr_svm")


@pytest.mark.parametrize("dims", [6, 150])
def test_lead_log_init_is_the_softmax_of_leave_one_out_margins(dims):
    rng = np.random.default_rng(1)
    labels = np.arange(90) % 3
    features = rng.standard_normal((3, dims))[labels] + rng.standard_normal((90, dims)) * 2.0 + 5.0
    scaling = ColumnScaling.fit(features)
    targets = -np.ones((90, 3))
    targets[np.arange(90), labels] = 1.0
    expected = softmax(refit_predictions(scaling.transform(features), targets, 1e-2), axis=1)
    log_init = initial_logits(features, labels, 3, keys=np.zeros(90), scaling=scaling, fit="leave_one_out")
    np.testing.assert_allclose(log_init, expected, rtol=0, atol=1e-10)


def test_leave_one_out_is_honest_where_in_sample_overfits():
    # D > N: an in-sample linear classifier separates random labels perfectly; left-out predictions cannot.
    rng = np.random.default_rng(0)
    features, labels = rng.standard_normal((60, 200)), np.arange(60) % 3
    diagnostics = lead(features, labels, fit="leave_one_out", regularization=1e-6, return_diagnostics=True)[1]
    assert diagnostics.log_init_accuracy < 0.6
