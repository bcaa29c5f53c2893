"""Judge a transferability metric against fine-tuned accuracies: weighted Kendall τ, Pearson r, Kendall τ, regret.

The weighted τ is exactly ``scipy.stats.weightedtau(scores, accuracies)[0]`` with scipy's defaults (hyperbolic
weights 1/(r+1) on the rank by importance, additive over a pair, both ranks combined): the convention of the
SFDA, PED and ETran repositories and the one METHOD.md §1 fixes.
"""

from __future__ import annotations

from typing import Mapping

import math
from pathlib import Path

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


def rank_quality(scores: pd.DataFrame, ground_truth: pd.DataFrame, *, accuracy_column: str = "test_acc") -> pd.DataFrame:
    """τw, Pearson r, Kendall τ and top-1 regret of every (target, variant, regime, draw) against ground truth.

    ``scores`` is long-format: target, variant, family, regime, draw, model, score (one row per model).
    ``ground_truth`` has columns model, target and ``accuracy_column``. Only models with both a finite score and
    a ground truth count; ``models`` says how many did. A variant that ties every model gets τw = NaN.
    """
    truth = ground_truth.set_index(["target", "model"])[accuracy_column]
    rows = []
    for (target, variant, regime, draw), group in scores.groupby(["target", "variant", "regime", "draw"], sort=False):
        pairs = [(score, truth[(target, model)]) for model, score in zip(group["model"], group["score"])
                 if (target, model) in truth.index and np.isfinite(score)]
        row = {"target": target, "variant": variant, "family": group["family"].iloc[0], "regime": regime,
               "draw": draw, "models": len(pairs)}
        if len(pairs) >= 2:
            metric_scores, accuracies = map(np.array, zip(*pairs))
            tied = np.ptp(metric_scores) == 0
            row.update(weighted_tau=math.nan if tied else weighted_tau(metric_scores, accuracies),
                       pearson_r=pearson_r(metric_scores, accuracies),
                       kendall_tau=math.nan if tied else kendall_tau(metric_scores, accuracies),
                       top1_regret=top1_regret(metric_scores, accuracies))
        rows.append(row)
    return pd.DataFrame(rows)


def summarise_quality(quality: pd.DataFrame) -> pd.DataFrame:
    """Mean over draws, then one column per target and the mean over targets, of τw per (variant, regime);
    ``tau_w_draw_std`` is the mean across targets of the standard deviation over draws (0 for full data)."""
    per_target = quality.groupby(["variant", "regime", "target"], sort=False).agg(
        weighted_tau=("weighted_tau", "mean"), draw_std=("weighted_tau", "std"),
        pearson_r=("pearson_r", "mean"), top1_regret=("top1_regret", "mean")).reset_index()
    table = per_target.pivot_table(index=["variant", "regime"], columns="target", values="weighted_tau",
                                   sort=False)
    summary = per_target.groupby(["variant", "regime"], sort=False).agg(
        mean_tau_w=("weighted_tau", "mean"), tau_w_draw_std=("draw_std", "mean"),
        mean_pearson_r=("pearson_r", "mean"), mean_top1_regret=("top1_regret", "mean"),
        targets=("target", "nunique"))
    return table.join(summary).reset_index()


def long_scores(table: pd.DataFrame, *, target: str = "target") -> pd.DataFrame:
    """Bring a scores table to the long format of :func:`rank_quality`.

    Accepted: already long (columns model and score, optionally target, variant, regime, draw), or wide like a
    leaderboard (a ``model_id`` or ``model`` column and one numeric column per metric, listed in ``metrics`` or
    taken as every float column that is not a known cost column). Missing target/regime/draw get ``target``,
    ``"full"`` and 0.
    """
    frame = table.copy()
    if "model" not in frame.columns and "model_id" in frame.columns:
        frame["model"] = frame["model_id"]
    if "model" not in frame.columns:
        raise ValueError(f"scores need a 'model' (or 'model_id') column; got {list(table.columns)}")
    if "score" not in frame.columns:
        not_scores = {"rank", "num_params", "feature_dim", "extract_seconds", "score_seconds", "seed",
                      "samples_per_class", "image_size", "pareto"}
        metric_columns = [column for column in frame.columns
                          if column not in not_scores and pd.api.types.is_float_dtype(frame[column])]
        if not metric_columns:
            raise ValueError("found neither a 'score' column nor numeric metric columns in the scores table")
        frame = frame.melt(id_vars=[c for c in frame.columns if c not in metric_columns], value_vars=metric_columns,
                           var_name="variant", value_name="score")
    defaults = {"target": target, "variant": "score", "family": "", "regime": "full", "draw": 0}
    for column, value in defaults.items():
        if column not in frame.columns:
            frame[column] = value
    frame["family"] = frame["family"].fillna("")
    frame["model"] = frame["model"].astype(str).str.replace(r"^local-dir:.*/", "", regex=True)
    return frame


def plot_scores_against_accuracy(scores: pd.DataFrame, ground_truth: pd.DataFrame, path: str | Path, *,
                                 variants: list[str] | None = None, accuracy_column: str = "test_acc") -> Path:
    """One panel per (variant, target): full-data score against fine-tuned accuracy, each model a labelled dot,
    τw in the title. Written as PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = scores[scores["regime"] == "full"]
    variants = variants or list(dict.fromkeys(full["variant"]))
    targets = list(dict.fromkeys(full["target"]))
    truth = ground_truth.set_index(["target", "model"])[accuracy_column]
    figure, axes = plt.subplots(len(variants), len(targets), figsize=(3.6 * len(targets), 3.0 * len(variants)),
                                squeeze=False)
    for row, variant in enumerate(variants):
        for column, target in enumerate(targets):
            axis = axes[row][column]
            group = full[(full["variant"] == variant) & (full["target"] == target)]
            points = [(model, score, truth[(target, model)]) for model, score in zip(group["model"], group["score"])
                      if (target, model) in truth.index and np.isfinite(score)]
            title = f"{variant}\n{target}"
            if len(points) >= 2:
                names, xs, ys = zip(*points)
                axis.scatter(xs, ys, s=18)
                for name, x, y in points:
                    axis.annotate(name.split(".")[0], (x, y), fontsize=6, alpha=0.7)
                tau = math.nan if np.ptp(xs) == 0 else weighted_tau(xs, ys)
                title += f"  τw={tau:.2f}"
            axis.set_title(title, fontsize=8)
            axis.tick_params(labelsize=6)
            if column == 0:
                axis.set_ylabel("fine-tuned accuracy", fontsize=7)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
