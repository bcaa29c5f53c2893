"""Judge a transferability metric against fine-tuned accuracies: weighted Kendall τ, Pearson r, Kendall τ, regret.

The weighted τ is exactly ``scipy.stats.weightedtau(scores, accuracies)[0]`` with scipy's defaults (hyperbolic
weights 1/(r+1) on the rank by importance, additive over a pair, both ranks combined): the convention of the
SFDA, PED and ETran repositories and the one METHOD.md §1 fixes.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats


def weighted_tau(scores, accuracies) -> float:
    """``scipy.stats.weightedtau(scores, accuracies)[0]``; NaN when either side is constant."""
    scores, accuracies = _paired(scores, accuracies)
    return float(stats.weightedtau(scores, accuracies)[0])


def pearson_r(scores, accuracies) -> float:
    """Pearson correlation of scores and accuracies; NaN when either side is constant."""
    scores, accuracies = _paired(scores, accuracies)
    if np.ptp(scores) == 0 or np.ptp(accuracies) == 0:
        return float("nan")
    return float(stats.pearsonr(scores, accuracies)[0])


def kendall_tau(scores, accuracies) -> float:
    """Kendall τ-b (ties accounted for) of scores and accuracies."""
    scores, accuracies = _paired(scores, accuracies)
    return float(stats.kendalltau(scores, accuracies)[0])


def top1_regret(scores, accuracies) -> float:
    """max accuracy − accuracy of the model with the highest score.

    When several models tie for the highest score, the regret is the mean over them (a random pick among ties),
    so a metric that ties everything is not rewarded by the order the models happen to be listed in.
    """
    scores, accuracies = _paired(scores, accuracies)
    top = scores == scores.max()
    return float(accuracies.max() - accuracies[top].mean())


def _paired(scores, accuracies) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    accuracies = np.asarray(accuracies, dtype=np.float64)
    if scores.shape != accuracies.shape or scores.ndim != 1:
        raise ValueError(f"scores and accuracies must be 1-D and of equal length, got {scores.shape} and "
                         f"{accuracies.shape}")
    if len(scores) < 2:
        raise ValueError(f"need at least 2 models to judge a ranking, got {len(scores)}")
    if not np.isfinite(scores).all() or not np.isfinite(accuracies).all():
        raise ValueError("scores and accuracies must be finite; drop the models a metric could not score first")
    return scores, accuracies


def evaluate_metrics(
    scores_by_metric: Mapping[str, Mapping[str, float]],
    accuracy_by_model: Mapping[str, float],
) -> pd.DataFrame:
    """One row per metric: weighted_tau, pearson_r, kendall_tau, top1_regret, models, missing.

    ``scores_by_metric`` maps a metric name to ``{model: score}``; ``accuracy_by_model`` maps a model to its
    fine-tuned accuracy. A metric is judged on the models that have both a finite score and an accuracy; the
    ``missing`` column lists the models left out (not applicable, failed or without ground truth), so nothing is
    dropped silently.
    """
    rows = []
    for metric, scores in scores_by_metric.items():
        models = [model for model, score in scores.items()
                  if model in accuracy_by_model and score is not None and np.isfinite(score)]
        missing = sorted(set(accuracy_by_model) - set(models))
        row = {"metric": metric, "models": len(models), "missing": ",".join(missing)}
        if len(models) >= 2:
            metric_scores = [scores[model] for model in models]
            accuracies = [accuracy_by_model[model] for model in models]
            row.update(weighted_tau=weighted_tau(metric_scores, accuracies),
                       pearson_r=pearson_r(metric_scores, accuracies),
                       kendall_tau=kendall_tau(metric_scores, accuracies),
                       top1_regret=top1_regret(metric_scores, accuracies))
        rows.append(row)
    columns = ["metric", "weighted_tau", "pearson_r", "kendall_tau", "top1_regret", "models", "missing"]
    return pd.DataFrame(rows).reindex(columns=columns)
