"""Print the benchmark tables of benchmarks/README.md (markdown) from the committed results in benchmarks/results/.

    python benchmarks/report.py

Tables: the ground truth; how well the ground truth reproduces itself (seeds 0-1 against seeds 2-3 of the final
runs: no metric can be expected to agree with the truth much better than the truth agrees with itself); τw at
full data per target and averaged over the development targets (cifar10, the sanity target, is shown but never
averaged), with two trivial baselines (number of non-constant feature dimensions and true parameter count) and
the average against the four-seed truth; the low-data regimes; and LEAD's variants ordered by the rule that
chooses its defaults.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from lead_hub.benchmark import DEVELOPMENT_TARGETS  # noqa: E402
from lead_hub.evaluation import kendall_tau, rank_quality, weighted_tau  # noqa: E402
from lead_hub.finetune import summarise_runs  # noqa: E402
from lead_hub.finetune_protocol import FinetuneProtocol  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402

RESULTS = REPOSITORY / "benchmarks" / "results"
ZOO_JSON = REPOSITORY.parent / "shared" / "data" / "zoo" / "zoo.json"
LOW_DATA = ("2/class", "5/class", "10/class")


def ground_truth_table(truth: pd.DataFrame) -> pd.DataFrame:
    """One row per model, one column of test accuracy per target (blank = not fine-tuned yet)."""
    return truth.pivot_table(index="model", columns="target", values="test_acc").reset_index()


def truth_with_seeds(runs: pd.DataFrame, seeds: tuple[int, ...]) -> pd.DataFrame:
    """The ground truth as the mean test accuracy of the final runs of ``seeds`` (learning rate chosen as usual)."""
    return summarise_runs(runs, FinetuneProtocol(seeds=seeds))


def reproducibility_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per target: τw and Kendall τ of the seeds-0-1 truth against the seeds-2-3 truth, the mean |difference| of
    the two, the mean gap between seed 0 and seed 1 of a pair, and the accuracy range without the control model."""
    first = truth_with_seeds(runs, (0, 1)).set_index(["target", "model"])["test_acc"]
    second = truth_with_seeds(runs, (2, 3)).set_index(["target", "model"])["test_acc"]
    final = runs[runs["phase"] == "final"].set_index(["target", "model", "seed"])["test_acc"]
    rows = []
    for target in first.index.get_level_values("target").unique():
        a, b = first[target], second[target].reindex(first[target].index)
        seed_gap = (final.xs(0, level="seed")[target] - final.xs(1, level="seed")[target]).abs().mean()
        without_control = a[~a.index.str.contains("vww")]
        rows.append({"target": target, "τw (seeds 0-1 vs 2-3)": weighted_tau(a.values, b.values),
                     "Kendall τ": kendall_tau(a.values, b.values), "mean abs. difference": (a - b).abs().mean(),
                     "mean abs. seed 0 − seed 1": seed_gap,
                     "accuracy range without the control": np.ptp(without_control.values)})
    table = pd.DataFrame(rows)
    development = table[table["target"].isin(DEVELOPMENT_TARGETS)].drop(columns="target").mean()
    return pd.concat([table, pd.DataFrame([{"target": "mean (development)", **development}])], ignore_index=True)


def baseline_scores() -> pd.DataFrame:
    """Trivial rankings in the long scores format: feature dimensions LEAD's head saw (non-constant ones, from
    ``lead_diagnostics.csv``) and true parameter count (``zoo.json``), full data only."""
    frames = []
    diagnostics_csv = RESULTS / "lead_diagnostics.csv"
    if diagnostics_csv.is_file():
        diagnostics = pd.read_csv(diagnostics_csv)
        frames.append(diagnostics.assign(variant="baseline: non-constant feature dimensions",
                                         score=diagnostics["feature_dims_used"].astype(float)))
    if ZOO_JSON.is_file() and frames:
        params = {entry["folder"]: entry["params"]["true"] for entry in json.loads(ZOO_JSON.read_text())["models"]}
        frames.append(frames[0].assign(variant="baseline: parameter count",
                                       score=frames[0]["model"].map(params).astype(float)))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames).assign(family="baseline", regime="full", draw=0)[
        ["target", "variant", "family", "regime", "draw", "model", "score"]]


def full_data_table(scores: pd.DataFrame, truth: pd.DataFrame, four_seed_truth: pd.DataFrame) -> pd.DataFrame:
    """Per variant: τw at full data per target, the mean over development targets, the same mean against the
    four-seed truth, mean Pearson r and top-1 regret (development targets)."""
    full = scores[scores["regime"] == "full"]
    quality = rank_quality(full, truth)
    wide = quality.pivot_table(index="variant", columns="target", values="weighted_tau", sort=False)
    development = [target for target in DEVELOPMENT_TARGETS if target in wide.columns]
    on_development = quality[quality["target"].isin(development)].groupby("variant", sort=False)
    alternative = rank_quality(full, four_seed_truth)
    alternative = alternative[alternative["target"].isin(development)].groupby("variant", sort=False)
    table = pd.DataFrame({"variant": wide.index, "mean τw (development)": wide[development].mean(axis=1).values})
    for target in [*development, *[t for t in wide.columns if t not in development]]:
        table[target] = wide[target].values
    table["mean τw, 4-seed truth"] = alternative["weighted_tau"].mean().reindex(wide.index).values
    table["mean Pearson r"] = on_development["pearson_r"].mean().reindex(wide.index).values
    table["mean top-1 regret"] = on_development["top1_regret"].mean().reindex(wide.index).values
    return table


def low_data_table(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per variant and low-data regime: τw averaged over draws then over development targets, ± the mean over
    targets of the standard deviation across draws."""
    quality = rank_quality(scores[scores["regime"].isin(LOW_DATA)], truth)
    quality = quality[quality["target"].isin(DEVELOPMENT_TARGETS)]
    per_target = quality.groupby(["variant", "regime", "target"], sort=False)["weighted_tau"].agg(["mean", "std"])
    per_regime = per_target.groupby(["variant", "regime"], sort=False).mean()
    table = pd.DataFrame({"variant": per_regime.index.get_level_values("variant").unique()})
    for regime in LOW_DATA:
        cells = per_regime.xs(regime, level="regime").reindex(table["variant"])
        table[f"τw {regime} (± draw std)"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(cells["mean"], cells["std"])]
    table["mean low-data τw"] = per_regime["mean"].groupby("variant", sort=False).mean().reindex(table["variant"]).values
    return table


def default_choice(full: pd.DataFrame, low: pd.DataFrame, seconds: pd.Series) -> pd.DataFrame:
    """LEAD's variants ordered by the rule for defaults: mean full-data τw over development targets, then mean
    low-data τw, then mean seconds per model at full data."""
    lead = full[full["variant"].str.startswith("lead")][["variant", "mean τw (development)"]]
    lead = lead.merge(low[["variant", "mean low-data τw"]], on="variant", how="left")
    lead["seconds per model"] = lead["variant"].map(seconds).values
    return lead.sort_values(["mean τw (development)", "mean low-data τw", "seconds per model"],
                            ascending=[False, False, True], ignore_index=True)


def main() -> None:
    truth = pd.read_csv(RESULTS / "ground_truth.csv")
    runs = pd.read_csv(RESULTS / "ground_truth_runs.csv")
    print("### Ground truth (mean test top-1 of seeds 0 and 1 at the selected learning rate)\n")
    print(markdown_table(ground_truth_table(truth), float_format=".3f"))
    print("\n### How well the ground truth reproduces itself\n")
    print(markdown_table(reproducibility_table(runs), float_format=".3f"))
    scores_csv = RESULTS / "metric_scores.csv"
    if not scores_csv.is_file():
        return
    scores = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""])
    seconds = scores[scores["regime"] == "full"].groupby("variant")["seconds"].mean()
    scores = pd.concat([scores, baseline_scores()], ignore_index=True)
    models = scores[scores["regime"] == "full"].groupby("target")["model"].nunique().to_dict()
    full = full_data_table(scores, truth, truth_with_seeds(runs, (0, 1, 2, 3)))
    low = low_data_table(scores, truth)
    print(f"\n### τw at full data (models per target: {models})\n")
    print(markdown_table(full.sort_values("mean τw (development)", ascending=False), float_format=".3f"))
    print("\n### τw in the low-data regimes (development targets)\n")
    print(markdown_table(low.sort_values("mean low-data τw", ascending=False), float_format=".3f"))
    print("\n### LEAD's variants by the rule for defaults\n")
    print(markdown_table(default_choice(full, low, seconds), float_format=".3f"))


if __name__ == "__main__":
    main()
