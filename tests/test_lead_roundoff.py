"""LEAD under round-off: with sample ids no per-sample choice can move, so features × (1 + 1e-6·noise) move every
score by less than 1e-6 relative; invariance to sample order (ids permuted along) and class relabelling.

``benchmarks/lead_roundoff.py`` measures the same noise on a problem like this file's and on real features
(``benchmarks/results/lead_roundoff.csv``): keyed by content, the folds and NTK rows moved scores by up to 7e-3
relative here and 3e-2 to 6e-2 on pacs_sketch, where the models' order changed in every draw; keyed by ids, by at
most 5e-8 here and 3e-6 there, the order never. What ids leave is the random head's ReLU: a hidden pre-activation
within ~1e-6 of zero changes sign, and one sample's head gradient norm moves by ~1/width of itself (on this file's
data, in about one draw in four, λ̄_k of one class moves by 1e-5 and the score by ~8e-7). The classifier-only part,
which has no ReLU, is checked separately and tighter.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPOSITORY_ROOT
from lead_hub import metrics
from lead_hub.metrics._lead_ntk import ntk_rows

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
import blas_kernels  # noqa: E402

lead = metrics.get("lead")

FITS = [{"fit": "out_of_fold"}, {"fit": "leave_one_out"}, {"fit": "in_sample"}]
VARIANTS = [*FITS, {"ntk_samples_per_class": 16}, {"fit": "leave_one_out", "head_input": "raw", "rate_scale": "raw"}]


@pytest.fixture(scope="module")
def problem():
    """3 classes of 200 samples (more than the 64 NTK rows and spread over 5 folds), 32 dimensions, ids."""
    rng = np.random.default_rng(0)
    labels = np.arange(600) % 3
    features = rng.standard_normal((3, 32))[labels] * 0.7 + rng.standard_normal((600, 32))
    ids = rng.permutation(3000)[:600]
    noisy = features * (1 + 1e-6 * np.random.default_rng(10).standard_normal(features.shape))
    return features, noisy, labels, ids


def relative_change(first, second):
    return abs(second / first - 1.0)


@pytest.mark.parametrize("options", VARIANTS)
def test_noise_of_one_millionth_moves_every_score_less_than_a_millionth(problem, options):
    features, noisy, labels, ids = problem
    before = lead(features, labels, sample_ids=ids, return_diagnostics=True, **options)[1]
    after = lead(noisy, labels, sample_ids=ids, return_diagnostics=True, **options)[1]
    assert relative_change(before.score, after.score) < 1e-6
    assert relative_change(before.classifier_only_score, after.classifier_only_score) < 2e-7


@pytest.mark.parametrize("options", FITS)
def test_full_ntk_scores_move_less_than_a_millionth(problem, options):
    features, noisy, labels, ids = problem
    norms = np.random.default_rng(3).uniform(1e4, 1e6, len(labels))
    scores = [lead(values, labels, sample_ids=ids, ntk="full", ntk_sq_norms=norms, rate_constant=1e-5, **options)
              for values in (features, noisy)]
    assert relative_change(*scores) < 1e-6


def test_ids_fix_the_ntk_rows_and_folds_whatever_the_features(problem):
    features, noisy, labels, ids = problem
    for values in (features, noisy, features * 3.0 + 1.0):
        _, diagnostics = lead(values, labels, sample_ids=ids, rate_constant=0.0, return_diagnostics=True)
        assert diagnostics.options["sample_keys"] == "sample_ids"
    first = ntk_rows(labels, 3, sample_ids=ids)
    assert [rows.tolist() for rows in first] == [rows.tolist() for rows in ntk_rows(labels, 3, sample_ids=ids)]


@pytest.mark.parametrize("ntk", ["head", "full"])
@pytest.mark.parametrize("options", [*FITS, {"classifier": "logistic", "fit": "out_of_fold"},
                                     {"margins": "calibrated", "fit": "leave_one_out"}])
def test_invariant_to_sample_order_with_ids_and_to_class_relabelling(problem, options, ntk):
    features, _, labels, ids = problem
    norms = np.random.default_rng(3).uniform(1e4, 1e6, len(labels))
    extra = {"ntk": ntk, "ntk_sq_norms": norms, "rate_constant": 1e-5} if ntk == "full" else {}
    reference = lead(features, labels, sample_ids=ids, **options, **extra)
    order = np.random.default_rng(1).permutation(len(labels))
    permuted_extra = {**extra, "ntk_sq_norms": norms[order]} if ntk == "full" else extra
    # out of fold, the ridge's float32 Gram is summed in another order: the 7th digit may move; leave-one-out and
    # in-sample run in float64 (in-sample's primal products are float32 too)
    tolerance = 1e-10 if options.get("fit") == "leave_one_out" else 1e-6
    assert lead(features[order], labels[order], sample_ids=ids[order], **options, **permuted_extra) == pytest.approx(
        reference, rel=tolerance)
    relabelled = np.array([2, 0, 1])[labels] * 7 + 3
    assert lead(features, relabelled, sample_ids=ids, **options, **extra) == pytest.approx(reference, rel=tolerance)


def test_the_committed_synthetic_round_off_rows_reproduce():
    """``benchmarks/results/lead_roundoff.csv``'s synthetic rows, measured again by the script's own function: the
    counts exactly, the measured moves (themselves round-off, 1e-8 and up) to the tolerance measured across BLAS
    kernels (``benchmarks/blas_kernels.py``)."""
    committed = pd.read_csv(REPOSITORY_ROOT / "benchmarks" / "results" / "lead_roundoff.csv")
    committed = committed[committed["source"] == "synthetic"].reset_index(drop=True)
    measured = blas_kernels.synthetic_roundoff_rows(int(committed["draws"][0]))
    assert measured[["variant", "keyed_by", "draws_with_order_changed", "models_moved_1e-6_or_more"]].equals(
        committed[["variant", "keyed_by", "draws_with_order_changed", "models_moved_1e-6_or_more"]])
    tolerance = blas_kernels.kernel_tolerance("synthetic round-off rows")
    for column in blas_kernels.ROUNDOFF_FIGURES:
        np.testing.assert_allclose(measured[column], committed[column], rtol=tolerance, err_msg=column)
