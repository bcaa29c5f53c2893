"""LEAD's benchmark grid in two compact tables (markdown), from the committed scores.

    python benchmarks/lead_grid_tables.py

1. Mean full-data τw over the development targets for every rate constant (rows) of every NTK × log_init fit
   (columns), one table per cross-entropy form.
2. For every NTK × fit × form, the rate constant with the best mean full-data τw: its τw per target, the mean with
   its 95% bootstrap interval, and the mean low-data τw with its interval. Picking the best c per row on the same
   scores flatters every row alike; the defaults rule (``report.py defaults``) compares single variants.
3. LEAD's default (``lead``) and the best LEAD variant against the best peer: paired differences with intervals.
4. The best rate constant of every whole-network NTK row against LEAD's default, paired; the default's and the
   best peer's mean with its interval.
5. With ``results/metric_scores_partial.csv`` (grid rows scored on some development targets only): every
   NTK × fit × form on the targets those rows cover, best rate constant on them, mean and per target, no interval.

The intervals are those of ``benchmarks/report.py`` (same resamples, same seed).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

import report  # noqa: E402
from benchmark import DEVELOPMENT_TARGETS  # noqa: E402
from lead_hub.evaluation import rank_quality  # noqa: E402
from lead_hub.finetune_truth import extended_grid_truth, final_runs  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402

GRID_NAME = re.compile(r"^lead (?P<ntk>ntk=\S+ head_input=\S+(?: S=\d+)?) (?P<fit>fit=\S+) c=(?P<c>\S+)"
                       r"(?: ce_form=(?P<ce>\S+))?$")


def grid_cells(variants) -> pd.DataFrame:
    """The grid variants among ``variants``, split into NTK, fit, rate constant and cross-entropy form."""
    rows = []
    for variant in variants:
        match = GRID_NAME.match(variant)
        if match:
            rows.append({"variant": variant, "ntk": match["ntk"], "fit": match["fit"], "c": float(match["c"]),
                         "ce_form": match["ce"] or "log_prob"})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=Path, default=report.RESULTS / "metric_scores.csv")
    parser.add_argument("--resamples", type=int, default=report.RESAMPLES)
    parser.add_argument("--partial", type=Path, default=report.RESULTS / "metric_scores_partial.csv",
                        help="grid rows scored on some development targets only (table 5; skipped when absent)")
    arguments = parser.parse_args()
    protocol, low_runs, _ = report.settled_runs(*report.truth_runs())  # pairs still being fine-tuned: left out
    finals = final_runs(protocol, low_runs, seeds=(0, 1))
    scores = report.read_scores(arguments.scores)
    scores = scores[scores["family"] != "baseline"]
    full = report.full_data_bootstraps(scores, finals, arguments.resamples)["truth"]
    low = report.low_data_bootstraps(scores, finals, arguments.resamples)["mean"]
    cells = grid_cells(full.variants)
    cells["mean"] = [full.mean_interval(v)[0] for v in cells["variant"]]
    quality = rank_quality(scores[scores["regime"] == "full"], extended_grid_truth(protocol, low_runs))
    per_target = quality.pivot_table(index="variant", columns="target", values="weighted_tau")

    for ce_form, group in cells.groupby("ce_form", sort=False):
        matrix = group.pivot_table(index="c", columns=["ntk", "fit"], values="mean").sort_index()
        matrix.columns = [f"{ntk} {fit}" for ntk, fit in matrix.columns]
        print(f"\n#### Mean full-data τw (development targets) by rate constant, ce_form={ce_form}\n")
        matrix.index = [f"{c:.4g}" for c in matrix.index]
        print(markdown_table(matrix.reset_index(names="rate constant c"), float_format=".3f"))

    best = cells.loc[cells.groupby(["ntk", "fit", "ce_form"], sort=False)["mean"].idxmax()]
    rows = []
    for _, cell in best.iterrows():
        row = {"NTK": cell["ntk"], "fit": cell["fit"], "ce_form": cell["ce_form"], "best c": f"{cell['c']:.4g}",
               "mean τw [95% CI]": report.interval(*full.mean_interval(cell["variant"]))}
        row.update({target: per_target.loc[cell["variant"], target] for target in
                    [*DEVELOPMENT_TARGETS, *[t for t in per_target.columns if t not in DEVELOPMENT_TARGETS]]
                    if target in per_target.columns})
        row["low-data τw [95% CI]"] = (report.interval(*low.mean_interval(cell["variant"]))
                                       if cell["variant"] in low.variants else "not scored")
        rows.append(row)
    print("\n#### The best rate constant of every NTK × fit × ce_form (full data)\n")
    print(markdown_table(pd.DataFrame(rows).sort_values("mean τw [95% CI]", ascending=False), float_format=".3f"))

    peers = [v for v in full.variants if not v.startswith("lead")]
    best_peer = max(peers, key=lambda v: full.mean_interval(v)[0])
    best_lead = max((v for v in full.variants if v.startswith("lead")), key=lambda v: full.mean_interval(v)[0])
    print(f"\n#### LEAD against the best peer ({best_peer}), paired\n")
    print(markdown_table(report.compare_table(full, low, best_peer, ["lead", best_lead]), float_format=".3f"))

    whole_network = [v for v in best["variant"] if v.startswith("lead ntk=full")]
    if whole_network:
        print("\n#### The best rate constant of every whole-network NTK row against LEAD's default (lead), paired\n")
        print(markdown_table(report.compare_table(full, low, "lead", whole_network, reverse=True), float_format=".3f"))
    print("\n#### Reference rows: mean full-data τw [95% CI]\n")
    print(markdown_table(pd.DataFrame({"variant": ["lead", best_peer], "mean τw [95% CI]": [
        report.interval(*full.mean_interval(v)) for v in ("lead", best_peer)]})))
    if arguments.partial.is_file():
        partial_table(arguments.partial, per_target, extended_grid_truth(protocol, low_runs))


def partial_table(partial_csv: Path, per_target: pd.DataFrame, truth: pd.DataFrame) -> None:
    """5. The grid rows of ``partial_csv`` (scored on a few development targets) beside every other grid row, on the
    targets they cover: for every NTK × fit × ce_form the rate constant with the best mean τw over those targets,
    the mean and τw per target. No interval: a bootstrap over two or three targets says nothing."""
    partial = pd.read_csv(partial_csv, keep_default_na=False, na_values=[""], low_memory=False)
    quality = rank_quality(partial[partial["regime"] == "full"], truth)
    partial_tau = quality.pivot_table(index="variant", columns="target", values="weighted_tau")
    targets = [target for target in DEVELOPMENT_TARGETS if target in partial_tau.columns]
    tau = pd.concat([per_target[targets], partial_tau[targets]])
    cells = grid_cells(tau.index)
    cells["mean"] = tau.loc[cells["variant"]].mean(axis=1).to_numpy()
    best = cells.loc[cells.groupby(["ntk", "fit", "ce_form"], sort=False)["mean"].idxmax()]
    rows = [{"NTK": cell["ntk"], "fit": cell["fit"], "ce_form": cell["ce_form"], "best c": f"{cell['c']:.4g}",
             f"mean τw ({len(targets)} targets)": cell["mean"], **tau.loc[cell["variant"]].to_dict()}
            for _, cell in best.iterrows()]
    print(f"\n#### Every NTK × fit × ce_form on the targets of {partial_csv.name} ({', '.join(targets)}), "
          "best rate constant on them (full data, no interval)\n")
    print(markdown_table(pd.DataFrame(rows).sort_values(f"mean τw ({len(targets)} targets)", ascending=False),
                         float_format=".3f"))


if __name__ == "__main__":
    main()
