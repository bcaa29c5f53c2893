"""Ranking-quality measures on small hand-worked cases, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lead_hub.evaluation import evaluate_metrics, kendall_tau, pearson_r, top1_regret, weighted_tau


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
