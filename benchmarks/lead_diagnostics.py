"""Why does LEAD rank the way it does? Its parts, each judged against the fine-tuned ground truth.

For every zoo model on every target (the benchmark's 1,000 images at 64 px, full data) this records what LEAD
computed (``return_diagnostics=True``): the score, the classifier-only score (rate 0), the out-of-fold log_init
accuracy and mean true-class probability, the mean per-class NTK eigenvalue λ̄ and its spread across classes,
and the number of non-constant feature dimensions the head saw. Each column is then used as a ranking on its own
and scored with τw against the ground truth, per target and averaged over the development targets: a part whose
τw is near LEAD's carries its signal.

    python benchmarks/lead_diagnostics.py            # → benchmarks/results/lead_diagnostics.csv + table
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from lead_hub import metrics  # noqa: E402
from benchmark import DEVELOPMENT_TARGETS, benchmark_features, zoo_model_ids  # noqa: E402
from lead_hub.evaluation import weighted_tau  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402
from per_target_script import RESULTS, SHARED, require_shared_data, target_script_parser  # noqa: E402

PARTS = ("score", "classifier_only_score", "log_init_accuracy", "log_init_true_class_mean", "mean_eigenvalue",
         "feature_dims_used")


def diagnose(target: str, cache_dir: Path, options: dict) -> pd.DataFrame:
    """One row per zoo model: LEAD's parts on ``target``."""
    extracted = benchmark_features(SHARED / "targets" / target, zoo_model_ids(SHARED / "zoo"), cache_dir=cache_dir)
    rows = []
    for model_id, features in extracted.items():
        score, parts = metrics.get("lead")(features.features, features.labels, return_diagnostics=True, **options)
        rows.append({"target": target, "model": model_id.rsplit("/", 1)[-1], "score": score,
                     "classifier_only_score": parts.classifier_only_score,
                     "log_init_accuracy": parts.log_init_accuracy,
                     "log_init_true_class_mean": parts.log_init_true_class_mean,
                     "mean_eigenvalue": float(np.mean(parts.class_eigenvalues)),
                     "eigenvalue_spread": float(np.ptp(parts.class_eigenvalues) / np.mean(parts.class_eigenvalues)),
                     "mean_rate": float(np.mean(parts.rates)), "feature_dims_used": parts.feature_dims_used})
    return pd.DataFrame(rows)


def part_quality(diagnostics: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """τw of each part used alone as a ranking, per target, plus the mean over the development targets."""
    joined = diagnostics.merge(truth[["target", "model", "test_acc"]], on=["target", "model"])
    table = pd.DataFrame({part: {target: weighted_tau(group[part].to_numpy(), group["test_acc"].to_numpy())
                                 for target, group in joined.groupby("target")} for part in PARTS}).T
    development = [target for target in DEVELOPMENT_TARGETS if target in table.columns]
    table.insert(0, "mean (development)", table[development].mean(axis=1))
    return table.reset_index(names="ranking by")


def main() -> None:
    threadpool_limits(1)
    parser = target_script_parser(__doc__.splitlines()[0], RESULTS / "lead_diagnostics.csv")
    arguments = parser.parse_args()
    require_shared_data("the diagnostics")
    diagnostics = pd.concat([diagnose(target, arguments.cache_dir, {}) for target in arguments.targets])
    diagnostics.to_csv(arguments.output, index=False, float_format="%.6g")
    print(markdown_table(part_quality(diagnostics, pd.read_csv(arguments.ground_truth)), float_format=".3f"))


if __name__ == "__main__":
    main()
