"""``lead-hub evaluate``: how well do metric scores rank models, against fine-tuned accuracies?"""

from __future__ import annotations

import argparse
from pathlib import Path



def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="judge metric scores against fine-tuned accuracies (τw, Pearson r, top-1 regret)",
        description="Judge metric scores against fine-tuned ground truth: weighted Kendall τ "
                    "(scipy.stats.weightedtau), Pearson r, Kendall τ and top-1 regret, per target and averaged, "
                    "with a plot of score against accuracy.",
    )
    parser.add_argument("scores", type=Path,
                        help="scores: a leaderboard (csv/json/parquet from 'lead-hub rank') or a long CSV with "
                             "columns model, score and optionally target, variant, regime, draw")
    parser.add_argument("ground_truth", type=Path,
                        help="CSV with columns model, accuracy (see --accuracy-column) and optionally target "
                             "(e.g. the ground_truth.csv of 'lead-hub finetune')")
    parser.add_argument("--accuracy-column", default="test_acc",
                        help="ground-truth column to rank by (default: %(default)s)")
    parser.add_argument("--target", default="target",
                        help="target name for scores that carry none (default: %(default)s)")
    parser.add_argument("--output", type=Path, help="folder for quality.csv, summary.csv and scores_vs_accuracy.png")
    parser.set_defaults(handler=run)


def read_table(path: Path):
    """A CSV, JSON (a leaderboard's, or records) or parquet file as a pandas DataFrame."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".json":
        from lead_hub.leaderboard import Leaderboard

        return Leaderboard.load(path).table
    return pd.read_csv(path)


def run(arguments: argparse.Namespace) -> int:
    # Imported here so that every other lead-hub command starts without scipy and pandas.
    from lead_hub.evaluation import long_scores, plot_scores_against_accuracy, rank_quality, summarise_quality

    scores = long_scores(read_table(arguments.scores), target=arguments.target)
    truth = read_table(arguments.ground_truth)
    if "target" not in truth.columns:
        truth = truth.assign(target=arguments.target)
    if arguments.accuracy_column not in truth.columns:
        raise ValueError(f"{arguments.ground_truth}: no column {arguments.accuracy_column!r} "
                         f"(columns: {list(truth.columns)}); pass --accuracy-column")
    truth = truth.assign(model=truth["model"].astype(str).str.replace(r"^local-dir:.*/", "", regex=True))
    quality = rank_quality(scores, truth, accuracy_column=arguments.accuracy_column)
    if quality.get("weighted_tau") is None or quality["models"].max() < 2:
        raise ValueError("fewer than two models have both a score and a ground truth: check that model names match "
                         f"(scores: {sorted(scores['model'].unique())[:5]}, truth: {sorted(truth['model'].unique())[:5]})")
    summary = summarise_quality(quality)
    print(summary.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    if arguments.output is not None:
        arguments.output.mkdir(parents=True, exist_ok=True)
        quality.to_csv(arguments.output / "quality.csv", index=False)
        summary.to_csv(arguments.output / "summary.csv", index=False)
        plot = plot_scores_against_accuracy(scores, truth, arguments.output / "scores_vs_accuracy.png",
                                            accuracy_column=arguments.accuracy_column)
        print(f"wrote {arguments.output / 'quality.csv'}, {arguments.output / 'summary.csv'}, {plot}")
    return 0
