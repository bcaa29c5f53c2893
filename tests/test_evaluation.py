"""Ranking-quality measures on small hand-worked cases, ties included."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from lead_hub.evaluation import (bootstrap_tau, evaluate_metrics, kendall_tau, pearson_r, top1_regret, weighted_tau,
                                 weighted_tau_rows)


def hyperbolic_weighted_tau_by_hand(x, y):
    """scipy's weightedtau with no ties, written out: rank by importance r(i) = position of i when sorted by
    decreasing (x, then y); weight of a pair w = 1/(r(i)+1) + 1/(r(j)+1); τ = Σ w·sign / Σ w, computed for the
    ranking by x and by y and averaged."""
    def one_way(primary, secondary):
        order = sorted(range(len(primary)), key=lambda i: (-primary[i], -secondary[i]))
        rank = {item: position for position, item in enumerate(order)}
        numerator = denominator = 0.0
        for i in range(len(primary)):
            for j in range(i + 1, len(primary)):
                weight = 1 / (rank[i] + 1) + 1 / (rank[j] + 1)
                numerator += weight * np.sign(primary[i] - primary[j]) * np.sign(secondary[i] - secondary[j])
                denominator += weight
        return numerator / denominator
    return (one_way(x, y) + one_way(y, x)) / 2


def test_weighted_tau_perfect_and_reversed():
    accuracies = [0.9, 0.8, 0.7, 0.6]
    assert weighted_tau([4, 3, 2, 1], accuracies) == pytest.approx(1.0)
    assert weighted_tau([1, 2, 3, 4], accuracies) == pytest.approx(-1.0)


def test_weighted_tau_swapping_the_top_costs_more_than_swapping_the_bottom():
    accuracies = [0.9, 0.8, 0.7, 0.6]
    top_swapped = weighted_tau([3, 4, 2, 1], accuracies)
    bottom_swapped = weighted_tau([4, 3, 1, 2], accuracies)
    assert top_swapped < bottom_swapped < 1.0
    # one discordant pair among 6, weighted: by hand with hyperbolic weights
    assert top_swapped == pytest.approx(hyperbolic_weighted_tau_by_hand([3, 4, 2, 1], accuracies))
    assert bottom_swapped == pytest.approx(hyperbolic_weighted_tau_by_hand([4, 3, 1, 2], accuracies))


def test_weighted_tau_three_models_by_hand():
    # ranks by x: item1 (0), item0 (1), item2 (2); pairs (0,1) discordant, (0,2) and (1,2) concordant.
    # weights by x-ranks: (0,1): 1/2+1/1 = 1.5; (0,2): 1/2+1/3; (1,2): 1+1/3. By y-ranks (0,1,2 in order):
    # (0,1): 1+1/2; (0,2): 1+1/3; (1,2): 1/2+1/3.
    x, y = [2.0, 3.0, 1.0], [0.9, 0.8, 0.7]
    by_x = (-1.5 + (1 / 2 + 1 / 3) + (1 + 1 / 3)) / (1.5 + (1 / 2 + 1 / 3) + (1 + 1 / 3))
    by_y = (-1.5 + (1 + 1 / 3) + (1 / 2 + 1 / 3)) / (1.5 + (1 + 1 / 3) + (1 / 2 + 1 / 3))
    assert weighted_tau(x, y) == pytest.approx((by_x + by_y) / 2)


def test_ties_in_scores():
    # a metric that ties every model carries no ranking information
    assert math.isnan(weighted_tau([1, 1, 1], [0.9, 0.8, 0.7]))
    # a tie below the top costs less than a full swap there but still lowers τw below 1
    assert 0.5 < weighted_tau([2, 1, 1], [0.9, 0.8, 0.7]) < 1.0
    assert math.isnan(pearson_r([1, 1, 1], [0.9, 0.8, 0.7]))
    # Kendall tau-b with one tie in x: concordant 2, discordant 0, n0 = 3, ties in x = 1 → 2 / sqrt(2 * 3)
    assert kendall_tau([2, 1, 1], [0.9, 0.8, 0.7]) == pytest.approx(2 / math.sqrt(2 * 3))


def test_pearson_by_hand():
    # x = (1, 2, 3), y = (1, 3, 2): centred (−1, 0, 1) and (−1, 1, 0) → r = 1 / (sqrt 2 · sqrt 2) = 0.5
    assert pearson_r([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)


def test_top1_regret_including_ties_at_the_top():
    accuracies = [0.70, 0.90, 0.80]
    assert top1_regret([3, 1, 2], accuracies) == pytest.approx(0.20)
    assert top1_regret([1, 3, 2], accuracies) == pytest.approx(0.0)
    assert top1_regret([5, 5, 1], accuracies) == pytest.approx(0.90 - 0.80)  # mean of the tied top models


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal length"):
        weighted_tau([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2 models"):
        top1_regret([1], [0.5])
    with pytest.raises(ValueError, match="finite"):
        pearson_r([1, np.nan], [0.5, 0.6])


def test_evaluate_metrics_table_lists_missing_models():
    accuracy = {"a": 0.9, "b": 0.8, "c": 0.7}
    table = evaluate_metrics(
        {"good": {"a": 3.0, "b": 2.0, "c": 1.0}, "partial": {"a": 1.0, "b": 2.0, "c": float("nan")},
         "lonely": {"a": 1.0}},
        accuracy,
    )
    rows = table.set_index("metric")
    assert rows.loc["good", "weighted_tau"] == pytest.approx(1.0)
    assert rows.loc["good", "top1_regret"] == pytest.approx(0.0)
    assert rows.loc["partial", "models"] == 2 and rows.loc["partial", "missing"] == "c"
    assert rows.loc["partial", "weighted_tau"] == pytest.approx(-1.0)
    assert math.isnan(rows.loc["lonely", "weighted_tau"]) and rows.loc["lonely", "missing"] == "b,c"
    assert list(table.columns) == ["metric", "weighted_tau", "pearson_r", "kendall_tau", "top1_regret", "models",
                                   "missing"]


# --- bootstrap intervals -------------------------------------------------------------------------------------------

def test_weighted_tau_rows_equals_scipy_with_and_without_ties():
    rng = np.random.default_rng(0)
    for trial in range(300):
        size = int(rng.integers(3, 14))
        x = rng.integers(0, 4, size).astype(float) if trial % 2 else rng.random(size)
        y = rng.integers(0, 3, size).astype(float) if trial % 3 == 0 else rng.random(size)
        expected = scipy_stats.weightedtau(x, y)[0]
        got = weighted_tau_rows(x, y)[0]
        assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-12)
    rows = rng.random((5, 8))
    assert weighted_tau_rows(rows[0], rows) == pytest.approx([scipy_stats.weightedtau(rows[0], r)[0] for r in rows])


MODELS = [f"m{i}" for i in range(6)]


def _runs(targets, accuracy, seeds=(0, 1, 2, 3), noise=0.0, seed=0):
    """Final runs of every (target, model): ``accuracy(target, model_index)`` plus seeded noise per run."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"target": t, "model": m, "seed": s, "test_acc": accuracy(t, i) + noise * rng.normal()}
                         for t in targets for i, m in enumerate(MODELS) for s in seeds])


def _scores(targets, variant, score):
    return pd.DataFrame([{"target": t, "variant": variant, "regime": "full", "draw": 0, "model": m,
                          "score": score(t, i)} for t in targets for i, m in enumerate(MODELS)])



def test_identical_and_shifted_metrics_differ_by_exactly_zero():
    targets = [f"t{i}" for i in range(5)]
    runs = _runs(targets, lambda t, i: 0.5 + 0.05 * i, noise=0.03)
    noisy = np.random.default_rng(1).random((5, 6))
    base = _scores(targets, "a", lambda t, i: noisy[targets.index(t), i])
    same = base.assign(variant="b")
    shifted = base.assign(variant="c", score=base["score"] * 3 + 7)  # a monotone map keeps every ranking
    result = bootstrap_tau(pd.concat([base, same, shifted]), runs, targets=targets, resamples=500, seed=0)
    assert result.difference_interval("a", "b") == (0.0, 0.0, 0.0)
    assert result.difference_interval("a", "c") == (0.0, 0.0, 0.0)
    mean, low, high = result.mean_interval("a")
    assert low < mean < high  # the seed noise and the five targets do make an interval


def test_perfect_metric_without_seed_noise_has_a_point_interval():
    targets = ["t0", "t1", "t2"]
    runs = _runs(targets, lambda t, i: 0.5 + 0.05 * i)
    scores = _scores(targets, "perfect", lambda t, i: float(i))
    assert bootstrap_tau(scores, runs, targets=targets, resamples=200).mean_interval("perfect") == (1.0, 1.0, 1.0)


def test_target_bootstrap_interval_is_the_binomial_one():
    # Six targets ranked perfectly (τw = 1) and four reversed (τw = −1), no seed noise: a resample's mean is
    # 2K/10 − 1 with K ~ Binomial(10, 0.6), so the 95% percentile interval is [2·3/10 − 1, 2·9/10 − 1].
    targets = [f"t{i}" for i in range(10)]
    runs = _runs(targets, lambda t, i: 0.5 + 0.05 * i)
    scores = _scores(targets, "half", lambda t, i: float(i) if int(t[1:]) < 6 else -float(i))
    result = bootstrap_tau(scores, runs, targets=targets, resamples=20000, seed=3)
    low_count, high_count = scipy_stats.binom.ppf([0.025, 0.975], 10, 0.6)
    assert result.mean_interval("half") == pytest.approx((0.2, 2 * low_count / 10 - 1, 2 * high_count / 10 - 1))
    assert (low_count, high_count) == (3, 9)


def test_seed_resampling_moves_a_close_pair_and_is_deterministic():
    # Two models 0.01 apart with seed noise 0.02: resampled truths swap them often; the metric's interval spans
    # both orders, and the same seed gives the same interval.
    targets = ["t0"]
    runs = _runs(targets, lambda t, i: 0.5 + (0.01 if i == 1 else 0.1 * i), noise=0.02, seed=5)
    scores = _scores(targets, "m", lambda t, i: float(i))
    first = bootstrap_tau(scores, runs, targets=targets, resamples=1000, seed=7)
    second = bootstrap_tau(scores, runs, targets=targets, resamples=1000, seed=7)
    assert first.mean_interval("m") == second.mean_interval("m")
    assert first.mean_interval("m")[1] < first.mean_interval("m")[2]
    assert first.resamples == 1000


def test_difference_variances_split_between_targets_and_seeds():
    # Per-target difference "a" − "b": target 0 alternates 0.1 / 0.3 across resamples, target 1 0.5 / 0.7.
    # Between targets: var([0.2, 0.6], ddof=1) = 0.08; seeds: mean of the two variances 0.01.
    from lead_hub.evaluation import BootstrapTau

    differences = np.array([[0.1, 0.5], [0.3, 0.7]] * 50)
    resampled = np.stack([differences, np.zeros_like(differences)], axis=1)
    boot = BootstrapTau(("a", "b"), ("t0", "t1"), np.zeros((2, 2)), resampled, np.zeros((100, 2), dtype=int), 0)
    assert boot.difference_variances("a", "b") == pytest.approx((0.08, 0.01))
