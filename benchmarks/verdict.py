"""Apply the pre-registered rule of benchmarks/preregistration.md (R1-R4) once, to the eleven development targets.

    python benchmarks/verdict.py                  # refuses, listing what is missing, until the truth is complete;
                                                  # then writes benchmarks/results/verdict.md (once)
    python benchmarks/verdict.py --targets eurosat pacs_photo pacs_sketch flowers5 fashion_mnist --write /tmp/v.md
                                                  # a test of the machinery on a subset: never the verdict
    python benchmarks/verdict.py --rule r3b       # the revision R3b of the metrics shown beside LEAD (written
                                                  # once, to results/verdict_r3b.md; the verdict stays)

Reads the metric scores (``results/metric_scores.csv``) and the ground truth's runs (``results/ground_truth_runs.csv``
and the grid edge's ``ground_truth_runs_lr1e-4.csv``, from which ``ground_truth.csv`` is written), keeps the
pre-registered variants only, and computes every figure with ``report.py``'s functions: the seeded bootstrap over
targets and seed runs, the paired differences, and the defaults rule applied within each NTK reading.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import report
from ground_truth import ZOO
from benchmark import ADDED_DEVELOPMENT_TARGETS, DEVELOPMENT_TARGETS
from lead_hub.evaluation import BootstrapTau, rank_quality
from lead_hub.finetune import read_runs
from lead_hub.finetune_truth import extended_grid_truth, final_runs
from lead_hub.leaderboard import markdown_table, tied_groups

TARGETS = (*DEVELOPMENT_TARGETS, *ADDED_DEVELOPMENT_TARGETS)
#: The peers: every metric of the registry but LEAD, as scored in metric_scores.csv when the rule was fixed.
PEERS = ("etran", "gbc", "hscore", "leep", "logme", "nce", "nleep", "pactran", "parc", "ped", "regularized_hscore",
         "sfda", "transrate")
HEAD_ONLY = {
    "a": "lead",
    "b": "lead ntk=head head_input=standardized fit=in_sample c=3.815e-06 ce_form=prob",
}
WHOLE_NETWORK = {
    "c": "lead ntk=full head_input=standardized S=64 fit=in_sample c=1e-08 ce_form=prob",
    "d": "lead ntk=full head_input=standardized S=64 fit=in_sample c=1e-07 ce_form=prob",
    "e": "lead ntk=full head_input=standardized S=64 fit=in_sample c=1e-09 ce_form=prob",
    "f": "lead ntk=full head_input=standardized S=64 fit=leave_one_out c=1e-08 ce_form=prob",
    "g": "lead ntk=full head_input=raw S=64 fit=in_sample c=1e-10",
}
#: At most one more whole-network LEAD variant (a cheaper estimator) may be added here, by its own commit, before
#: the new truth is complete; it joins the whole-network reading.
ADDED_LEAD_VARIANT: str | None = None
HEAD_INCUMBENT = HEAD_ONLY["b"]
WHOLE_NETWORK_INCUMBENT = WHOLE_NETWORK["c"]  # the default LEAD of the figures' paired differences
SEEDS = (0, 1)
REFUSED = 2
#: R3b (benchmarks/preregistration.md, revision after the verdict): a peer is shown beside LEAD only if, in every
#: regime, its scores leave at most this many of a target's 12 models without a rank of their own (tied with another
#: model's score, or no score), on average over targets and draws.
R3B_MOST_UNRANKED = 3


def lead_variants() -> dict[str, list[str]]:
    """The pre-registered LEAD variants of each NTK reading."""
    whole = [*WHOLE_NETWORK.values(), *([ADDED_LEAD_VARIANT] if ADDED_LEAD_VARIANT else [])]
    return {"head-only": list(HEAD_ONLY.values()), "whole-network": whole}


def variants() -> list[str]:
    """Every pre-registered variant: the peers, then LEAD's."""
    return [*PEERS, *(name for names in lead_variants().values() for name in names)]


def missing_items(scores: pd.DataFrame, truth: pd.DataFrame, models, targets) -> list[str]:
    """What keeps the rule from being applied (R4), one line per target: the models without a settled truth of
    seeds 0 and 1, and the variants without every model's score at full data and in every low-data draw."""
    expected = {("full", 0)} | {(regime, draw) for regime in report.LOW_DATA for draw in range(5)}
    scored = scores.groupby(["variant", "target", "regime", "draw"])["model"].nunique()
    lines = []
    for target in targets:
        without_truth = sorted(set(models) - set(truth.loc[truth["target"] == target, "model"]))
        unscored = [variant for variant in variants()
                    if any(scored.get((variant, target, regime, draw), 0) < len(models) for regime, draw in expected)]
        parts = []
        if without_truth:
            parts.append(f"truth missing for {_some(without_truth, len(models), 'models', ', ')}")
        if unscored:
            parts.append(f"scores missing for {_some(unscored, len(variants()), 'variants', '; ')}")
        if parts:
            lines.append(f"{target}: " + "; ".join(parts))
    return lines


def _some(names: list[str], total: int, noun: str, separator: str) -> str:
    """``all 12 models``, or ``2 of 12 models (a, b)``."""
    return f"all {total} {noun}" if len(names) == total else f"{len(names)} of {total} {noun} ({separator.join(names)})"


def best(boot: BootstrapTau, names) -> str:
    """The variant of ``names`` with the highest mean τw in ``boot``."""
    return max(names, key=lambda name: boot.mean_interval(name)[0])


def paired_table(full: BootstrapTau, low: BootstrapTau, references: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Per variant, the paired difference (variant − reference) of mean full-data and mean low-data τw [95% CI] to
    each reference; ``references`` maps a label to its (full-data, low-data) reference variant."""
    rows = []
    for variant in full.variants:
        row = {"variant": variant}
        for label, (full_reference, low_reference) in references.items():
            for regime, boot, reference in (("full", full, full_reference), ("low-data", low, low_reference)):
                row[f"{regime} Δ to {label} [95% CI]"] = ("" if variant == reference else report.interval(
                    *boot.difference_interval(variant, reference, report.CONFIDENCE)))
        rows.append(row)
    return pd.DataFrame(rows)


def per_target_table(quality: pd.DataFrame, column: str, targets) -> pd.DataFrame:
    """One row per variant, ``column`` of the full-data rank quality per target and its mean over ``targets``."""
    wide = quality.pivot_table(index="variant", columns="target", values=column, sort=False)
    wide = wide.reindex(columns=list(targets))
    return wide.assign(mean=wide.mean(axis=1)).reset_index()


def has_low_data(variant: str, low: BootstrapTau) -> str:
    """R2's only eligibility condition: a mean low-data τw exists ("" when it does)."""
    return "" if variant in low.variants and not np.isnan(low.mean_interval(variant)[0]) else "no low-data figure"


def verdict_report(scores: pd.DataFrame, truth: pd.DataFrame, finals: pd.DataFrame, targets,
                   resamples: int = report.RESAMPLES, subset: bool = False) -> str:
    """The markdown of R1-R3 applied to ``scores`` (pre-registered variants only) over ``targets``."""
    targets = tuple(targets)
    scores = scores[scores["target"].isin(targets)]
    full_boot = report.full_data_bootstraps(scores, finals, resamples, targets)
    low_boot = report.low_data_bootstraps(scores, finals, resamples, targets)
    full, low = full_boot["truth"], low_boot["mean"]
    quality = rank_quality(scores[scores["regime"] == "full"], truth)
    best_full_peer, best_low_peer = best(full, PEERS), best(low, PEERS)
    seconds = report.seconds_per_model(scores)
    chosen, tables = {}, {}
    for reading, names in lead_variants().items():
        incumbent = HEAD_INCUMBENT if reading == "head-only" else WHOLE_NETWORK_INCUMBENT
        chosen[reading], tables[reading] = report.apply_defaults_rule(full, low, seconds, incumbent, names,
                                                                      has_low_data)
    head, whole = chosen["head-only"], chosen["whole-network"]
    head_over_whole = full.difference_interval(head, whole, report.CONFIDENCE)
    reading = "head-only" if head_over_whole[1] > 0 else "whole-network"
    shown = list(dict.fromkeys([best_full_peer, best_low_peer]))
    title = ("# Test of the verdict machinery on a subset of targets (not the verdict)" if subset
             else "# Verdict of the pre-registered rule")
    interval_note = (f"Intervals: {report.CONFIDENCE:.0%} percentile bootstrap, {resamples} resamples of the "
                     f"{len(targets)} targets and of every (model, target)'s ground-truth seed runs (seed "
                     f"{report.BOOTSTRAP_SEED}); truth = mean test top-1 of seeds 0 and 1 at the selected rate.")
    sections = [
        title,
        f"The rule: [benchmarks/preregistration.md](../preregistration.md), applied to {len(targets)} targets "
        f"({', '.join(targets)}), {scores['model'].nunique()} models, {len(variants())} pre-registered variants. "
        + interval_note,
        "## R1. Mean τw at full data, per target, Pearson r and top-1 regret",
        markdown_table(report.full_data_table(scores, truth, full_boot), float_format=".3f"),
        "### Pearson r per target (full data)",
        markdown_table(per_target_table(quality, "pearson_r", targets), float_format=".3f"),
        "### Top-1 regret per target (full data)",
        markdown_table(per_target_table(quality, "top1_regret", targets), float_format=".3f"),
        "## R1. Mean τw in low data (N/K ∈ {2, 5, 10}, 5 draws each)",
        markdown_table(report.low_data_table(low_boot), float_format=".3f"),
        f"## R1. Paired differences: to the best peer (full data: `{best_full_peer}`, low data: `{best_low_peer}`) "
        f"and to the default LEAD (`{WHOLE_NETWORK_INCUMBENT}`)",
        markdown_table(paired_table(full, low, {"best peer": (best_full_peer, best_low_peer),
                                                "default LEAD": (WHOLE_NETWORK_INCUMBENT,) * 2})),
    ]
    for name, table in tables.items():
        sections += [f"## R2. LEAD's {name} reading (incumbent "
                     f"`{HEAD_INCUMBENT if name == 'head-only' else WHOLE_NETWORK_INCUMBENT}`)",
                     markdown_table(table, float_format=".3f"), f"Chosen within the {name} reading: `{chosen[name]}`."]
    sections += [
        "## Verdict",
        f"- **R2, LEAD's default**: `{chosen[reading]}` ({reading} reading). Head-only winner − whole-network winner "
        f"at full data: {report.interval(*head_over_whole)}"
        + (" (resolved above zero: the head-only reading replaces the whole network)." if reading == "head-only"
           else " (not resolved above zero: the whole network stays the default reading)."),
        f"- **R3, metrics shown beside LEAD**: {', '.join(f'`{name}`' for name in shown)} (highest mean τw among the "
        f"peers at full data: `{best_full_peer}`; in low data: `{best_low_peer}`).",
    ]
    return "\n\n".join(sections) + "\n"


def unranked_models(scores: pd.DataFrame) -> pd.DataFrame:
    """Per variant (rows) and regime (columns): the mean over targets and draws of the models without a rank of
    their own, tied with another model's score (``lead_hub.leaderboard.tied_groups``) or without a score."""
    def count(group: pd.DataFrame) -> int:
        values = group["score"].to_numpy(float)
        return int(sum(mask.sum() for mask in tied_groups(values)) + np.isnan(values).sum())

    per_draw = scores.groupby(["variant", "regime", "target", "draw"])[["score"]].apply(count).rename("unranked")
    table = per_draw.groupby(["variant", "regime"]).mean().unstack("regime")
    return table.reindex(columns=["full", *report.LOW_DATA])


def r3b_report(scores: pd.DataFrame, finals: pd.DataFrame, targets, resamples: int = report.RESAMPLES) -> str:
    """The markdown of R3b: R3 among the peers that rank (at most ``R3B_MOST_UNRANKED`` unranked models in every
    regime)."""
    targets = tuple(targets)
    scores = scores[scores["target"].isin(targets)]
    full = report.full_data_bootstraps(scores, finals, resamples, targets)["truth"]
    low = report.low_data_bootstraps(scores, finals, resamples, targets)["mean"]
    unranked = unranked_models(scores[scores["variant"].isin(PEERS)])
    eligible = [peer for peer in PEERS if unranked.loc[peer].max() <= R3B_MOST_UNRANKED]
    best_full, best_low = best(full, eligible), best(low, eligible)
    shown = list(dict.fromkeys([best_full, best_low]))
    table = unranked.rename(columns={regime: f"unranked, {regime}" for regime in unranked.columns})
    table["mean τw, full [95% CI]"] = [report.interval(*full.mean_interval(peer, report.CONFIDENCE)) for peer in table.index]
    table["mean τw, low data [95% CI]"] = [report.interval(*low.mean_interval(peer, report.CONFIDENCE))
                                          for peer in table.index]
    table["R3b"] = ["eligible" if peer in eligible else "excluded: ties" for peer in table.index]
    return "\n\n".join([
        "# Revision R3b of the metrics shown beside LEAD",
        f"The revision and why: [benchmarks/preregistration.md](../preregistration.md), section R3b. The verdict it "
        f"revises stays in [verdict.md](verdict.md). Applied to the same {len(targets)} targets and scores; a model "
        f"is unranked when its score equals another model's (1e-9 relative) or is missing; a peer is eligible when "
        f"at most {R3B_MOST_UNRANKED} of the {scores['model'].nunique()} models are unranked on average in every "
        f"regime. Intervals as in the verdict ({resamples} resamples, seed {report.BOOTSTRAP_SEED}).",
        markdown_table(table.reset_index(names="peer"), float_format=".2f"),
        f"- **R3b, metrics shown beside LEAD**: {', '.join(f'`{name}`' for name in shown)} (highest mean τw among "
        f"the eligible peers at full data: `{best_full}`; in low data: `{best_low}`).",
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=None,
                        help="apply the machinery to these targets only, for testing (never written as the verdict)")
    parser.add_argument("--scores", type=Path, default=report.RESULTS / "metric_scores.csv")
    parser.add_argument("--runs", type=Path, default=report.RESULTS / "ground_truth_runs.csv")
    parser.add_argument("--low-rate-runs", type=Path, default=report.RESULTS / "ground_truth_runs_lr1e-4.csv")
    parser.add_argument("--resamples", type=int, default=report.RESAMPLES)
    parser.add_argument("--rule", choices=["preregistered", "r3b"], default="preregistered",
                        help="r3b: the revision of R3 (writes results/verdict_r3b.md once; the verdict stays)")
    parser.add_argument("--write", type=Path, default=None,
                        help="where the markdown goes (default: results/verdict.md, written once, without --targets)")
    arguments = parser.parse_args(argv)
    verdict_md = report.RESULTS / ("verdict_r3b.md" if arguments.rule == "r3b" else "verdict.md")
    subset = arguments.targets is not None
    write = arguments.write or (None if subset else verdict_md)
    if subset and write is not None and write.resolve() == verdict_md.resolve():
        print(f"--targets is a test of the machinery; write it elsewhere than {verdict_md}", file=sys.stderr)
        return REFUSED
    if not subset and write is not None and write.exists():
        print(f"the rule was applied already ({write}); a change of rule writes its verdict to a new file with "
              f"--write, and the old one stays", file=sys.stderr)
        return REFUSED
    targets = tuple(arguments.targets or TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        print(f"--targets: {unknown} are not development targets; choose among {', '.join(TARGETS)}", file=sys.stderr)
        return REFUSED
    scores = pd.read_csv(arguments.scores, keep_default_na=False, na_values=[""], low_memory=False)
    scores = scores[scores["variant"].isin(variants()) & scores["target"].isin(targets)]
    protocol, low, _ = report.settled_runs(read_runs(arguments.runs), read_runs(arguments.low_rate_runs), SEEDS)
    truth, finals = extended_grid_truth(protocol, low, SEEDS), final_runs(protocol, low, SEEDS)
    missing = missing_items(scores, truth, ZOO, targets)
    if missing:
        print(f"refused (R4): the rule is applied once every target has the truth of the {len(ZOO)} models with "
              f"seeds {SEEDS[0]} and {SEEDS[1]} and every pre-registered variant's scores. Missing:\n"
              + "\n".join(missing), file=sys.stderr)
        return REFUSED
    if arguments.rule == "r3b":
        text = r3b_report(scores, finals, targets, arguments.resamples)
    else:
        text = verdict_report(scores, truth, finals, targets, arguments.resamples, subset)
    print(text)
    if write is not None:
        write.write_text(text)
        print(f"wrote {write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
