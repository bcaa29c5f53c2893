"""Print the README's benchmark tables (markdown) from the committed results in benchmarks/results/.

    python benchmarks/report.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from lead_hub.evaluation import rank_quality, summarise_quality  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402

RESULTS = REPOSITORY / "benchmarks" / "results"


def ground_truth_table(truth: pd.DataFrame) -> pd.DataFrame:
    """One row per model, one column of test accuracy per target (blank = not fine-tuned yet)."""
    return truth.pivot_table(index="model", columns="target", values="test_acc").reset_index()


def quality_table(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per variant: models judged, τw at full data, mean τw ± draw std at N/K = 2, 5, 10, Pearson r and regret."""
    summary = summarise_quality(rank_quality(scores, truth))
    wide = summary.pivot_table(index="variant", columns="regime", values="mean_tau_w", sort=False)
    spread = summary.pivot_table(index="variant", columns="regime", values="tau_w_draw_std", sort=False)
    full = summary[summary["regime"] == "full"].set_index("variant")
    table = pd.DataFrame({"variant": wide.index, "τw full": wide["full"].values})
    for regime in ("2/class", "5/class", "10/class"):
        if regime in wide.columns:
            table[f"τw {regime} (±std)"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(wide[regime], spread[regime])]
    table["Pearson r full"] = full.loc[wide.index, "mean_pearson_r"].values
    table["top-1 regret full"] = full.loc[wide.index, "mean_top1_regret"].values
    return table


def main() -> None:
    truth = pd.read_csv(RESULTS / "ground_truth.csv")
    print("### Ground truth (mean test top-1 of two seeds at the selected learning rate)\n")
    print(markdown_table(ground_truth_table(truth), float_format=".3f"))
    scores_csv = RESULTS / "metric_scores.csv"
    if scores_csv.is_file():
        scores = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""])
        judged = scores[scores.set_index(["target", "model"]).index.isin(truth.set_index(["target", "model"]).index)]
        models = judged.groupby("target")["model"].nunique()
        print(f"\n### Ranking quality (models with ground truth per target: {models.to_dict()})\n")
        print(markdown_table(quality_table(scores, truth), float_format=".3f"))


if __name__ == "__main__":
    main()
