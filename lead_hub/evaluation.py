"""Judge a transferability metric against fine-tuned accuracies: weighted Kendall τ, Pearson r, Kendall τ, regret.

The weighted τ is exactly ``scipy.stats.weightedtau(scores, accuracies)[0]`` with scipy's defaults (hyperbolic
weights 1/(r+1) on the rank by importance, additive over a pair, both ranks combined): the convention of the
SFDA, PED and ETran repositories and the one METHOD.md §1 fixes.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
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
        not_scores = {"rank", "num_params", "feature_dim", "extract_seconds", "score_seconds", "process", "seed",
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


def weighted_tau_rows(scores, accuracies) -> np.ndarray:
    """``scipy.stats.weightedtau(scores[b], accuracies[b])[0]`` for every row b of two broadcastable (B, n) arrays,
    vectorised for the bootstrap (scipy's is a per-call loop, ~1 ms each at n = 12 on a busy CPU).

    Written out (Vigna 2015, scipy's defaults, ties included): rank every item by decreasing (x, then y), weight
    w(r) = 1/(r + 1), pair weight w_ij = w(r_i) + w(r_j), and
    τ(x → y) = Σ_{i<j} w_ij sgn(x_i − x_j) sgn(y_i − y_j) / √(Σ_{i<j} w_ij [x_i ≠ x_j] · Σ_{i<j} w_ij [y_i ≠ y_j]);
    τw = (τ(x → y) + τ(y → x)) / 2. O(n²) per row, so meant for the benchmark's n ≈ 12 models. NaN where either
    side is constant, like scipy.
    """
    x, y = np.broadcast_arrays(np.asarray(scores, dtype=np.float64), np.asarray(accuracies, dtype=np.float64))
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    upper = np.triu_indices(x.shape[1], k=1)
    sign_x = np.sign(x[:, :, None] - x[:, None, :])[:, upper[0], upper[1]]
    sign_y = np.sign(y[:, :, None] - y[:, None, :])[:, upper[0], upper[1]]

    def one_way(primary, secondary):
        order = np.lexsort((-secondary, -primary), axis=-1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(x.shape[1])[None, :].repeat(len(order), axis=0), axis=-1)
        weight = 1.0 / (rank + 1.0)
        pair_weight = weight[:, upper[0]] + weight[:, upper[1]]
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((pair_weight * sign_x * sign_y).sum(axis=1)
                    / np.sqrt((pair_weight * np.abs(sign_x)).sum(axis=1) * (pair_weight * np.abs(sign_y)).sum(axis=1)))

    return (one_way(x, y) + one_way(y, x)) / 2


@dataclass(frozen=True)
class BootstrapTau:
    """Bootstrap distribution of per-target τw figures of several variants, for confidence intervals.

    ``point[v, t]`` is variant v's τw on target t against the ground truth itself; ``resampled[b, v, t]`` the same
    against resample b's ground truth (recomputed from resampled seed runs); ``target_draws[b]`` the target
    indices (with replacement) that resample b averages over. Every interval of one object comes from the same
    resamples, so the interval of a difference is paired. Percentile intervals (not BCa).
    """

    variants: tuple[str, ...]
    targets: tuple[str, ...]
    point: np.ndarray
    resampled: np.ndarray
    target_draws: np.ndarray
    seed: int

    @property
    def resamples(self) -> int:
        return len(self.target_draws)

    def _index(self, variant: str) -> int:
        if variant not in self.variants:
            raise KeyError(f"no variant {variant!r} in the bootstrap; known: {list(self.variants)}")
        return self.variants.index(variant)

    def _interval(self, point: np.ndarray, resampled: np.ndarray, confidence: float) -> tuple[float, float, float]:
        """(mean over targets of ``point``, percentile interval of the per-resample means over the drawn targets)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a variant with no τw on any drawn target: NaN
            means = np.nanmean(np.take_along_axis(resampled, self.target_draws, axis=1), axis=1)
            tail = 100 * (1 - confidence) / 2
            low, high = np.nanpercentile(means, [tail, 100 - tail])
            return float(np.nanmean(point)), float(low), float(high)

    def difference_variances(self, variant: str, other: str) -> tuple[float, float]:
        """(between-target, seed) variance of the per-target paired difference ``variant`` − ``other``: the variance
        across targets of its mean over resamples, and the mean over targets of its variance across resamples (the
        ground truth's seed noise at this bootstrap's seeds per truth). The mean difference over T new targets like
        these, each with its own fine-tuning seeds, then varies by (between + seed) / T: the power estimate."""
        first, second = self._index(variant), self._index(other)
        differences = self.resampled[:, first] - self.resampled[:, second]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            between = np.nanvar(np.nanmean(differences, axis=0), ddof=1)
            seed = np.nanmean(np.nanvar(differences, axis=0))
        return float(between), float(seed)

    def mean_interval(self, variant: str, confidence: float = 0.95) -> tuple[float, float, float]:
        """(mean τw over targets, low, high) of ``variant``."""
        index = self._index(variant)
        return self._interval(self.point[index], self.resampled[:, index], confidence)

    def difference_interval(self, variant: str, other: str, confidence: float = 0.95) -> tuple[float, float, float]:
        """(mean τw of ``variant`` − mean τw of ``other``, low, high), paired: both on the same resamples."""
        first, second = self._index(variant), self._index(other)
        return self._interval(self.point[first] - self.point[second],
                              self.resampled[:, first] - self.resampled[:, second], confidence)


# Accuracies are ratios of counts: means of runs are rounded so that equal counts tie exactly, not by round-off
# (0.9054054054054054 against ...055 for 1005/1110 reached two ways).
TRUTH_DECIMALS = 10


def seed_pools(final_runs: pd.DataFrame, targets, models, *, accuracy_column: str = "test_acc") -> np.ndarray:
    """The final-run accuracies of every (target, model) as a (T, M, S) array padded with NaN (S = most seeds)."""
    grouped = final_runs.groupby(["target", "model"])[accuracy_column].apply(list)
    size = max(len(values) for values in grouped)
    pools = np.full((len(targets), len(models), size), np.nan)
    for t, target in enumerate(targets):
        for m, model in enumerate(models):
            values = grouped.get((target, model))
            if values is not None:
                pools[t, m, :len(values)] = values
    return pools


def resampled_truths(pools: np.ndarray, seeds_per_truth: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, T, M) ground truths, each the mean of ``seeds_per_truth`` runs drawn with replacement from a pair's pool
    (independently per pair: every fine-tuning is its own random run)."""
    sizes = np.sum(~np.isnan(pools), axis=2)
    draws = (rng.random((resamples, *sizes.shape, seeds_per_truth)) * sizes[None, :, :, None]).astype(int)
    values = np.take_along_axis(np.broadcast_to(pools, (resamples, *pools.shape)), draws, axis=3)
    return np.round(values.mean(axis=3), TRUTH_DECIMALS)


def bootstrap_tau(scores: pd.DataFrame, final_runs: pd.DataFrame, *, targets, truth_seeds=(0, 1),
                  resamples: int = 2000, seed: int = 0, seeds_per_truth: int | None = None,
                  targets_per_resample: int | None = None, accuracy_column: str = "test_acc",
                  variants=None) -> BootstrapTau:
    """Seeded bootstrap of every variant's τw over ``targets`` and over the ground truth's seeds.

    ``scores``: long format (target, variant, regime, draw, model, score), already restricted to the regimes the
    figure covers; a variant's figure on a target is τw averaged over draws, then over regimes (NaN where it
    ties every model, left out of means). ``final_runs``: model, target, seed and ``accuracy_column`` of every
    final run at the learning rate of the truth. The truth itself is the mean over ``truth_seeds``; resample b
    draws ``targets_per_resample`` targets (default: as many as there are) with replacement and, for every pair,
    ``seeds_per_truth`` runs (default len(truth_seeds)) with replacement from all its recorded seeds, and
    recomputes every τw against that truth. Larger sizes than the data's estimate the intervals of a larger
    benchmark (used for the power estimate). ``variants`` fixes the order (default: as they first appear).
    """
    targets = tuple(targets)
    models = tuple(sorted(set(final_runs["model"])))
    seeds_per_truth = seeds_per_truth or len(truth_seeds)
    rng = np.random.default_rng(seed)
    target_draws = rng.integers(0, len(targets), size=(resamples, targets_per_resample or len(targets)))
    truths = resampled_truths(seed_pools(final_runs, targets, models, accuracy_column=accuracy_column),
                              seeds_per_truth, resamples, rng)
    own = final_runs[final_runs["seed"].isin(truth_seeds)]
    point_truth = seed_pools(own, targets, models, accuracy_column=accuracy_column)
    point_truth = np.round(np.nanmean(point_truth, axis=2), TRUTH_DECIMALS)
    variants = tuple(dict.fromkeys(scores["variant"]) if variants is None else variants)
    point = np.full((len(variants), len(targets)), np.nan)
    resampled = np.full((resamples, len(variants), len(targets)), np.nan)
    chosen_rows = scores["target"].isin(targets) & scores["variant"].isin(variants) & scores["model"].isin(models)
    wide = scores[chosen_rows].pivot_table(index=["variant", "target", "regime", "draw"], columns="model",
                                           values="score", aggfunc="last", sort=False).reindex(columns=list(models))
    keys, table = wide.index.to_frame(index=False), wide.to_numpy(dtype=float)
    for (variant, target), rows in keys.groupby(["variant", "target"], sort=False).indices.items():
        v, t = variants.index(variant), targets.index(target)
        per_point, per_resample = [], []
        for row in rows:
            chosen = np.flatnonzero(np.isfinite(table[row]) & np.isfinite(point_truth[t]))
            values = table[row, chosen]
            if len(chosen) < 2 or np.ptp(values) == 0:
                per_point.append(np.nan)
                per_resample.append(np.full(resamples, np.nan))
                continue
            per_point.append(weighted_tau_rows(values, point_truth[t, chosen])[0])
            per_resample.append(weighted_tau_rows(values[None, :], truths[:, t, chosen]))
        regimes = keys["regime"].to_numpy()[rows]
        point[v, t] = _mean_over_draws_then_regimes(np.array(per_point), regimes)
        resampled[:, v, t] = _mean_over_draws_then_regimes(np.stack(per_resample, axis=-1), regimes)
    return BootstrapTau(variants, targets, point, resampled, target_draws, seed)


def _mean_over_draws_then_regimes(values: np.ndarray, regimes: np.ndarray) -> np.ndarray:
    """Mean over the last axis' draws within each regime, then over regimes, NaNs left out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a regime where every draw is NaN stays NaN
        per_regime = [np.nanmean(values[..., regimes == regime], axis=-1) for regime in dict.fromkeys(regimes)]
        return np.nanmean(np.stack(per_regime, axis=-1), axis=-1)


def combine_regimes(parts: list[BootstrapTau]) -> BootstrapTau:
    """One bootstrap whose per-target figure is the mean over ``parts`` (one per regime, NaNs left out), e.g. the
    mean low-data τw from the 2/5/10-per-class bootstraps. The parts must share their resamples (same targets,
    runs, resamples and seed), so the combination stays paired."""
    first = parts[0]
    for part in parts[1:]:
        if part.variants != first.variants or not np.array_equal(part.target_draws, first.target_draws):
            raise ValueError("combine_regimes needs bootstraps of the same variants on the same resamples")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = np.nanmean(np.stack([part.point for part in parts]), axis=0)
        resampled = np.nanmean(np.stack([part.resampled for part in parts]), axis=0)
    return dataclasses.replace(first, point=point, resampled=resampled)
