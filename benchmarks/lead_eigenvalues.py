"""How LEAD's per-class NTK eigenvalues λ̄_k spread across models and classes: head-only NTK against the whole network.

For every zoo model on every target (the benchmark's 1,000 images at 64 px, full data, the images' sample ids)
this records λ̄_k of each NTK entry of the benchmark's LEAD grids (``benchmarks/benchmark_lead.py``): the head-only
NTK on standardised and raw head inputs (64 rows per class) and the whole-network NTK on both (the benchmark's
rows per class; the norms come from the benchmark's cache, computed when missing). Then, per NTK and target:
the ratio of the largest to the smallest model's mean λ̄ (across models), the median over models of the ratio of
a model's largest to smallest class λ̄ (across classes), the Spearman correlation of the model's mean λ̄ with its
number of non-constant feature dimensions, and τw of the mean λ̄ used alone as a ranking.

    python benchmarks/lead_eigenvalues.py        # → benchmarks/results/lead_eigenvalues.csv + table
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmark import DEVELOPMENT_TARGETS, zoo_model_ids  # noqa: E402
from benchmark_lead import BENCHMARK_LEAD_GRIDS, LeadGrid, score_lead_target  # noqa: E402
from lead_hub.evaluation import weighted_tau  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402
from per_target_script import RESULTS, SHARED, require_shared_data, target_script_parser  # noqa: E402


def ntk_entries(labels=None) -> dict:
    """The distinct NTK entries of the benchmark's LEAD grids (those of ``labels`` when given), by label."""
    entries = {}
    for grid in BENCHMARK_LEAD_GRIDS.values():
        entries.update({label: entry for label, entry in grid.ntks.items() if label and (not labels or label in labels)})
    return entries


def eigenvalues(target: str, cache_dir: Path, labels=None) -> pd.DataFrame:
    """One row per (model, NTK entry, class): λ̄_k on the full data of ``target``."""
    rows = []

    def keep(parts, model, features):
        for label, values in parts.eigenvalues.items():
            rows.extend({"target": target, "model": model, "ntk": label, "class": k, "eigenvalue": float(value),
                         "feature_dims_used": int(np.ptp(features, axis=0).astype(bool).sum())}
                        for k, value in enumerate(values))

    grid = LeadGrid({}, ntk_entries(labels))
    score_lead_target(target, SHARED / "targets" / target, zoo_model_ids(SHARED / "zoo"), [grid],
                      cache_dir=cache_dir, regimes_of=lambda labels: [("full", 0, np.arange(len(labels)))],
                      on_parts=keep)
    return pd.DataFrame(rows)


def spread_table(values: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per NTK entry, medians over targets of the spreads and correlations, and τw of mean λ̄ (development mean)."""
    per_model = values.groupby(["ntk", "target", "model"]).agg(
        mean=("eigenvalue", "mean"), class_ratio=("eigenvalue", lambda v: v.max() / v.min()),
        dims=("feature_dims_used", "first")).reset_index()
    per_model = per_model.merge(truth[["target", "model", "test_acc"]], on=["target", "model"], how="left")
    rows = []
    for (ntk, target), group in per_model.groupby(["ntk", "target"]):
        rows.append({"ntk": ntk, "target": target, "model_ratio": group["mean"].max() / group["mean"].min(),
                     "class_ratio": group["class_ratio"].median(),
                     "spearman_with_dims": spearmanr(group["mean"], group["dims"])[0],
                     "tau_w": weighted_tau(group["mean"].to_numpy(), group["test_acc"].to_numpy())})
    table = pd.DataFrame(rows)
    development = table[table["target"].isin(DEVELOPMENT_TARGETS)]
    return pd.DataFrame({
        "NTK": sorted(table["ntk"].unique()),
        "largest / smallest model mean λ̄ (range over targets)": [
            f"{g['model_ratio'].min():.3g}-{g['model_ratio'].max():.3g}" for _, g in table.groupby("ntk")],
        "largest / smallest class λ̄, median model (range over targets)": [
            f"{g['class_ratio'].min():.3g}-{g['class_ratio'].max():.3g}" for _, g in table.groupby("ntk")],
        "Spearman(mean λ̄, feature dims) (range)": [
            f"{g['spearman_with_dims'].min():.2f} to {g['spearman_with_dims'].max():.2f}"
            for _, g in table.groupby("ntk")],
        "τw of mean λ̄ alone (development mean)": development.groupby("ntk")["tau_w"].mean().reindex(
            sorted(table["ntk"].unique())).to_numpy()})


def main() -> None:
    threadpool_limits(1)
    parser = target_script_parser(__doc__.splitlines()[0], RESULTS / "lead_eigenvalues.csv")
    parser.add_argument("--ntks", nargs="+", default=None, help="only these NTK entries (labels as in the grids)")
    arguments = parser.parse_args()
    require_shared_data("the eigenvalue spread")
    values = pd.concat([eigenvalues(target, arguments.cache_dir, arguments.ntks) for target in arguments.targets])
    values.to_csv(arguments.output, index=False, float_format="%.6g")
    print(markdown_table(spread_table(values, pd.read_csv(arguments.ground_truth)), float_format=".3f"))


if __name__ == "__main__":
    main()
