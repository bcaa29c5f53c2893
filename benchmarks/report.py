"""Print the benchmark tables of benchmarks/README.md (markdown) from the committed results in benchmarks/results/.

    python benchmarks/report.py                                  # every table, intervals beside every mean τw
    python benchmarks/report.py --write-dir benchmarks/results   # ... each to its file (linked from the README)
    python benchmarks/report.py defaults --write results/report_defaults_choice.md   # apply the defaults rule
    python benchmarks/report.py power [A B]                      # targets and seeds needed to separate 0.05
    python benchmarks/report.py power --write benchmarks/results/power.md   # ... half-widths at 5, 10, 11, ... targets
    python benchmarks/report.py cost --write benchmarks/results/cost.md     # seconds and memory of one score
    python benchmarks/report.py compare lead hscore pactran      # paired differences of the first to the others
    python benchmarks/report.py compare --reverse lead hscore    # the others minus the first
    python benchmarks/report.py edge                             # how the grid's edge moves the truth and τw

Tables: the ground truth (the learning-rate grid extended below 1e-3 where settled, ``lead_hub.finetune_truth``);
how well it reproduces itself (seeds 0-1 against seeds 2-3); τw at full data per target and averaged over the
development targets (cifar10, the sanity target, is shown but never averaged), with two trivial baselines and
the average against the four-seed truth, LEAD's parts each used alone; the low-data regimes; LEAD's variants by the defaults rule.

Every mean τw comes with a 95% percentile interval from one seeded bootstrap (``lead_hub.evaluation.bootstrap_tau``:
``RESAMPLES`` resamples of the development targets and, per (model, target), of the ground truth's seed runs);
a difference is called one only when its paired interval, on the same resamples, excludes zero.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmark import JUDGED_TARGETS, targets_with_truth  # noqa: E402
from lead_hub.evaluation import (BootstrapTau, bootstrap_tau, combine_regimes, kendall_tau, rank_quality,  # noqa: E402
                                 weighted_tau)
from lead_hub.finetune import read_runs  # noqa: E402
from lead_hub.finetune_truth import extended_grid_truth, final_runs, grid_table  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402

RESULTS = REPOSITORY / "benchmarks" / "results"
ZOO_JSON = REPOSITORY.parent / "shared" / "data" / "zoo" / "zoo.json"
LOW_DATA = ("2/class", "5/class", "10/class")
RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
SEPARATE = 0.05  # the mean-τw difference the power estimate asks to separate

INCUMBENT = "lead"  # the variant scored with lead_hub's current default options


def defaults_rule(resamples: int = RESAMPLES, incumbent: str = INCUMBENT) -> str:
    """The rule for LEAD's defaults, as stated before it is applied (benchmarks/README.md quotes it)."""
    paired = (f"paired {CONFIDENCE:.0%} bootstrap interval ({resamples} percentile resamples of the development "
              f"targets and of the ground truth's seed runs, seed {BOOTSTRAP_SEED})")
    return f"""**The rule for LEAD's defaults** (stated before it is applied; applied once per benchmark round, to the run
made with the previous defaults, and not on fewer than three development targets with complete ground truth):

1. *Eligible*: the LEAD variants of `benchmarks/run_benchmark.py` that (a) fit log_init with the ridge, the only
   classifier that meets the default path's speed target (the SVM and logistic variants are scored, never
   eligible); (b) take λ̄ from the head-only NTK, which is computed from the features alone: the whole-network NTK
   (`ntk=full`) needs every model's weights and a backward pass per NTK row (6-15 times the extraction on a CPU)
   and cannot score a model known only by its features, so it stays an option, scored and shown, never the
   default; (c) are scored at full data and in the low-data regimes, the two figures the rule reads.
2. *Incumbent*: the variant scored with the current defaults (`{incumbent}`). It stays the default unless a
   challenger exists.
3. *Challengers*: eligible variants whose {paired} of the difference to the incumbent in mean full-data τw over
   the development targets lies entirely above zero, and whose paired interval of the difference in mean
   low-data τw does not lie entirely below zero.
4. *Best*: the challenger with the highest mean full-data τw. *Tied*: a challenger whose paired interval of the
   difference to the best includes zero.
5. *Tie-breaks*: among the best and the challengers tied with it, the highest mean low-data τw; challengers whose
   paired low-data interval to that one includes zero stay tied, and the fastest of them (mean seconds per model
   at full data) is the new default."""


def interval(point: float, low: float, high: float) -> str:
    """``0.313 [0.045, 0.543]``; blank for NaN."""
    return "" if np.isnan(point) else f"{point:.3f} [{low:.3f}, {high:.3f}]"


# --- the ground truth ------------------------------------------------------------------------------------------------

def truth_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The protocol's runs and the low-rate runs of the grid's edge (``lr_grid_edge.py``)."""
    return read_runs(RESULTS / "ground_truth_runs.csv"), read_runs(RESULTS / "ground_truth_runs_lr1e-4.csv")


def settled_runs(protocol: pd.DataFrame, low: pd.DataFrame, seeds=(0, 1)
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The runs of every (model, target) pair whose truth is settled, and why each other pair is left out.

    A pair is settled when its protocol grid is complete, the grid's edge is settled (``lead_hub.finetune_truth``)
    and the final runs of every seed in ``seeds`` are recorded at the truth's rate. A target whose fine-tuning is
    still running thus joins the tables pair by pair, never with a provisional rate.

    Returns
    -------
    (protocol, low, missing): the protocol's and the grid edge's runs of the settled pairs, for
    :func:`~lead_hub.finetune_truth.extended_grid_truth` and :func:`~lead_hub.finetune_truth.final_runs`, and one
    row per left-out pair (model, target, reason).
    """
    settled, missing = [], []
    for (model, target), pair in protocol.groupby(["model", "target"], sort=False):
        pair_low = low[(low["model"] == model) & (low["target"] == target)]
        finals = final_runs(pair, pair_low, seeds)  # empty while the pair is in progress
        if not finals.empty:
            edge = finals["edge"].iloc[0]
        elif grid_table(pair, pair_low).empty:
            edge = "protocol grid incomplete"
        else:
            edge = f"final runs of seeds {list(seeds)} not all recorded"
        if edge == "extended":
            settled.append((model, target))
        else:
            missing.append({"model": model, "target": target, "reason": edge})
    keep = pd.MultiIndex.from_tuples(settled, names=["model", "target"])
    return (protocol[protocol.set_index(["model", "target"]).index.isin(keep)],
            low[low.set_index(["model", "target"]).index.isin(keep)],
            pd.DataFrame(missing, columns=["model", "target", "reason"]))


def ground_truth_table(truth: pd.DataFrame) -> pd.DataFrame:
    """One row per model, one column of test accuracy per target (blank = not fine-tuned yet)."""
    return truth.pivot_table(index="model", columns="target", values="test_acc").reset_index()


def truth_changes(protocol: pd.DataFrame, low: pd.DataFrame) -> pd.DataFrame:
    """The pairs whose truth the extended grid changes or leaves unsettled: the validation accuracy at 1e-3, 3e-4
    and 1e-4 (blank where not run), rates and test accuracies before and after."""
    before = extended_grid_truth(protocol, low.iloc[0:0]).set_index(["target", "model"])
    after = extended_grid_truth(protocol, low).set_index(["target", "model"])
    grid = grid_table(protocol, low).set_index(["target", "model"])
    table = pd.DataFrame({"val 1e-3": grid["val_0.001"], "val 3e-4": grid["val_0.0003"],
                          "val 1e-4": grid["val_0.0001"], "protocol lr": before["best_lr"],
                          "truth lr": after["best_lr"], "protocol test acc": before["test_acc"],
                          "truth test acc": after["test_acc"], "edge": after["edge"]})
    changed = (table["protocol lr"] != table["truth lr"]) | (table["edge"] != "extended")
    return table[changed].reset_index()


def edge_shift_table(scores: pd.DataFrame, protocol: pd.DataFrame, low: pd.DataFrame) -> pd.DataFrame:
    """Per variant: mean full-data τw over the development targets against the truth at the protocol's rates and
    against the truth by the extended grid, the change, and the change of τw on every target (cifar10 included;
    the pairs whose truth changes are in :func:`truth_changes`). Sorted by the largest change of the mean."""
    full = scores[scores["regime"] == "full"]
    per_target = {}
    for label, truth in (("protocol grid", extended_grid_truth(protocol, low.iloc[0:0])),
                         ("extended grid", extended_grid_truth(protocol, low))):
        per_target[label] = rank_quality(full, truth).pivot_table(index="variant", columns="target",
                                                                   values="weighted_tau", sort=False)
    before, after = per_target["protocol grid"], per_target["extended grid"]
    development = [target for target in JUDGED_TARGETS if target in before.columns]
    table = pd.DataFrame({"mean τw, protocol grid truth": before[development].mean(axis=1),
                          "mean τw, extended grid truth": after[development].mean(axis=1)})
    table["change"] = table.iloc[:, 1] - table.iloc[:, 0]
    for target in [*development, *[t for t in before.columns if t not in development]]:
        table[f"change {target}"] = after[target] - before[target]
    return table.sort_values("change", key=abs, ascending=False).reset_index(names="variant")


def reproducibility_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Per target: τw and Kendall τ of the seeds-0-1 truth against the seeds-2-3 truth, the mean |difference| of
    the two, the mean gap between seed 0 and seed 1 of a pair, and the accuracy range without the control model.
    ``finals``: final runs (model, target, seed, test_acc) of seeds 0-3 at each pair's truth rate; a target is
    shown once every model has all four."""
    by_seed = finals.pivot_table(index=["target", "model"], columns="seed", values="test_acc").dropna()
    first, second = by_seed[[0, 1]].mean(axis=1), by_seed[[2, 3]].mean(axis=1)
    models = by_seed.groupby(level="target").size()
    rows = []
    for target in models.index[models == models.max()]:  # targets whose every model has its four seeds
        a, b = first[target], second[target].reindex(first[target].index)
        seeds = by_seed.loc[target]
        without_control = a[~a.index.str.contains("vww")]
        rows.append({"target": target, "τw (seeds 0-1 vs 2-3)": weighted_tau(a.values, b.values),
                     "Kendall τ": kendall_tau(a.values, b.values), "mean abs. difference": (a - b).abs().mean(),
                     "mean abs. seed 0 − seed 1": (seeds[0] - seeds[1]).abs().mean(),
                     "accuracy range without the control": np.ptp(without_control.values)})
    table = pd.DataFrame(rows)
    development = table[table["target"].isin(JUDGED_TARGETS)].drop(columns="target").mean()
    return pd.concat([table, pd.DataFrame([{"target": "mean (development)", **development}])], ignore_index=True)


# --- scores ---------------------------------------------------------------------------------------------------------

LEAD_PARTS = {"classifier_only_score": "classifier-only score (rate 0)", "log_init_accuracy": "out-of-fold accuracy",
              "log_init_true_class_mean": "mean out-of-fold true-class probability",
              "mean_eigenvalue": "mean NTK eigenvalue"}


def baseline_scores() -> pd.DataFrame:
    """Rankings that are not metrics, in the long scores format, full data only: the trivial baselines (feature
    dimensions LEAD's head saw, non-constant ones, from ``lead_diagnostics.csv``; true parameter count from
    ``zoo.json``; family "baseline") and LEAD's parts each used alone (``lead_diagnostics.csv``; family
    "diagnostic")."""
    frames = []
    diagnostics_csv = RESULTS / "lead_diagnostics.csv"
    if diagnostics_csv.is_file():
        diagnostics = pd.read_csv(diagnostics_csv)
        frames.append(diagnostics.assign(variant="baseline: non-constant feature dimensions", family="baseline",
                                         score=diagnostics["feature_dims_used"].astype(float)))
        frames += [diagnostics.assign(variant=f"LEAD part: {name}", family="diagnostic",
                                      score=diagnostics[column].astype(float)) for column, name in LEAD_PARTS.items()]
    if ZOO_JSON.is_file() and frames:
        params = {entry["folder"]: entry["params"]["true"] for entry in json.loads(ZOO_JSON.read_text())["models"]}
        frames.append(frames[0].assign(variant="baseline: parameter count",
                                       score=frames[0]["model"].map(params).astype(float)))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames).assign(regime="full", draw=0)[
        ["target", "variant", "family", "regime", "draw", "model", "score"]]


def read_scores(scores_csv: Path) -> pd.DataFrame:
    """The metric scores plus the trivial baselines."""
    scores = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""], low_memory=False)
    return pd.concat([scores, baseline_scores()], ignore_index=True)


def seconds_per_model(scores: pd.DataFrame) -> pd.Series:
    return scores[scores["regime"] == "full"].groupby("variant")["seconds"].mean()


def full_data_bootstraps(scores: pd.DataFrame, finals: pd.DataFrame, resamples: int,
                         targets=JUDGED_TARGETS) -> dict[str, BootstrapTau]:
    """The full-data bootstrap over ``targets`` against the truth (seeds 0-1) and against the four-seed truth."""
    full = scores[scores["regime"] == "full"]
    variants = tuple(dict.fromkeys(full["variant"]))
    common = dict(targets=tuple(targets), resamples=resamples, seed=BOOTSTRAP_SEED, variants=variants)
    return {"truth": bootstrap_tau(full, finals, truth_seeds=(0, 1), **common),
            "4-seed": bootstrap_tau(full, finals, truth_seeds=(0, 1, 2, 3), **common)}


def low_data_bootstraps(scores: pd.DataFrame, finals: pd.DataFrame, resamples: int,
                        targets=JUDGED_TARGETS) -> dict[str, BootstrapTau]:
    """One bootstrap per low-data regime over ``targets`` and their combination (the mean low-data τw), on shared
    resamples."""
    low = scores[scores["regime"].isin(LOW_DATA)]
    variants = tuple(dict.fromkeys(low["variant"]))
    parts = {regime: bootstrap_tau(low[low["regime"] == regime], finals, targets=tuple(targets),
                                   resamples=resamples, seed=BOOTSTRAP_SEED, variants=variants)
             for regime in LOW_DATA}
    return {**parts, "mean": combine_regimes(list(parts.values()))}


def full_data_table(scores: pd.DataFrame, truth: pd.DataFrame, boot: dict[str, BootstrapTau]) -> pd.DataFrame:
    """Per variant: mean τw over the bootstrap's targets [interval], the paired difference to the top variant
    [interval] and whether it is one, τw per target, the mean against the four-seed truth [interval], mean Pearson r
    and top-1 regret (the bootstrap's targets). Sorted by the mean."""
    targets = boot["truth"].targets
    full = scores[scores["regime"] == "full"]
    quality = rank_quality(full, truth)
    wide = quality.pivot_table(index="variant", columns="target", values="weighted_tau", sort=False)
    on_development = quality[quality["target"].isin(targets)].groupby("variant", sort=False)
    variants = [v for v in boot["truth"].variants if v in wide.index]
    means = {v: boot["truth"].mean_interval(v, CONFIDENCE) for v in variants}
    top = max(variants, key=lambda v: -np.inf if np.isnan(means[v][0]) else means[v][0])
    rows = []
    for variant in variants:
        difference = boot["truth"].difference_interval(variant, top, CONFIDENCE)
        row = {"variant": variant, "mean τw [95% CI]": interval(*means[variant]), "_mean": means[variant][0],
               f"Δ to {top} [95% CI]": "" if variant == top else interval(*difference),
               "differs?": "" if variant == top else ("yes" if difference[1] > 0 or difference[2] < 0 else "no")}
        for target in [*targets, *[t for t in wide.columns if t not in targets]]:
            row[target] = wide.loc[variant, target] if target in wide.columns else np.nan
        row["mean τw, 4-seed truth [95% CI]"] = interval(*boot["4-seed"].mean_interval(variant, CONFIDENCE))
        row["mean Pearson r"] = on_development["pearson_r"].mean().get(variant, np.nan)
        row["mean top-1 regret"] = on_development["top1_regret"].mean().get(variant, np.nan)
        rows.append(row)
    return pd.DataFrame(rows).sort_values("_mean", ascending=False, ignore_index=True).drop(columns="_mean")


def low_data_table(boot: dict[str, BootstrapTau]) -> pd.DataFrame:
    """Per variant: τw per low-data regime and their mean over development targets, each [interval]."""
    rows = []
    for variant in boot["mean"].variants:
        row = {"variant": variant}
        for regime in LOW_DATA:
            row[f"τw {regime} [95% CI]"] = interval(*boot[regime].mean_interval(variant, CONFIDENCE))
        mean = boot["mean"].mean_interval(variant, CONFIDENCE)
        row["mean low-data τw [95% CI]"], row["_mean"] = interval(*mean), mean[0]
        rows.append(row)
    return pd.DataFrame(rows).sort_values("_mean", ascending=False, ignore_index=True).drop(columns="_mean")


# --- the defaults rule ----------------------------------------------------------------------------------------------

def ineligibility(variant: str, low: BootstrapTau) -> str:
    """Why a LEAD variant is not eligible for the default (rule step 1), or "" when it is."""
    if re.search(r"classifier=(?!ridge)|paper-faithful|svm", variant):
        return "not eligible (log_init slower than the speed target allows)"
    if "ntk=full" in variant:
        return "not eligible (whole-network NTK: needs every model's gradients)"
    if variant not in low.variants or np.isnan(low.mean_interval(variant, CONFIDENCE)[0]):
        return "not eligible (no low-data figure)"
    return ""


def _excludes_zero(gap: tuple[float, float, float]) -> bool:
    return gap[1] > 0 or gap[2] < 0


def apply_defaults_rule(full: BootstrapTau, low: BootstrapTau, seconds: pd.Series,
                        incumbent: str = INCUMBENT, candidates=None,
                        ineligibility=ineligibility) -> tuple[str, pd.DataFrame]:
    """Apply :func:`defaults_rule` to the bootstraps of the full-data and mean low-data τw: the chosen variant (the
    incumbent when no challenger beats it) and the table that shows every step (one row per LEAD variant).
    ``candidates``: the variants the rule weighs (default: every LEAD variant of ``full``); ``ineligibility(variant,
    low)``: why a variant may not become the default ("" when it may; default: rule step 1)."""
    lead = [v for v in full.variants if v.startswith("lead")] if candidates is None else list(candidates)
    if incumbent not in lead or ineligibility(incumbent, low):
        raise ValueError(f"the incumbent {incumbent!r} must be scored at full data and in low data, eligible; "
                         f"score it with benchmarks/run_benchmark.py first")
    why_not = {v: ineligibility(v, low) for v in lead}
    eligible = [v for v in lead if not why_not[v]]
    full_means = {v: full.mean_interval(v, CONFIDENCE) for v in lead}
    low_means = {v: low.mean_interval(v, CONFIDENCE) if v in low.variants else (np.nan,) * 3 for v in lead}
    over_incumbent = {v: full.difference_interval(v, incumbent, CONFIDENCE) for v in lead if v != incumbent}
    low_over_incumbent = {v: low.difference_interval(v, incumbent, CONFIDENCE) for v in eligible if v != incumbent}
    above = [v for v in eligible if v != incumbent and over_incumbent[v][1] > 0]
    challengers = [v for v in above if not low_over_incumbent[v][2] < 0]
    best = low_best = None
    full_gaps, low_gaps, low_tied = {}, {}, []
    chosen = incumbent
    if challengers:
        best = max(challengers, key=lambda v: full_means[v][0])
        full_gaps = {v: full.difference_interval(v, best, CONFIDENCE) for v in challengers}
        tied = [v for v in challengers if v == best or not _excludes_zero(full_gaps[v])]
        low_best = max(tied, key=lambda v: low_means[v][0])
        low_gaps = {v: low.difference_interval(v, low_best, CONFIDENCE) for v in tied}
        low_tied = [v for v in tied if v == low_best or not _excludes_zero(low_gaps[v])]
        chosen = min(low_tied, key=lambda v: seconds.get(v, np.inf))
    rows = []
    for variant in sorted(lead, key=lambda v: (v != incumbent, bool(why_not[v]), -full_means[v][0])):
        if variant == chosen:
            verdict = "**chosen**" + (" (the incumbent stays: no challenger)" if variant == incumbent else "")
        elif variant == incumbent:
            verdict = "incumbent, replaced"
        elif why_not[variant]:
            verdict = why_not[variant]
        elif variant not in above:
            verdict = ("below the incumbent (interval excludes 0)" if over_incumbent[variant][2] < 0
                       else "not above the incumbent (interval includes 0)")
        elif variant not in challengers:
            verdict = "above the incumbent at full data, below it in low data"
        elif variant not in low_gaps:
            verdict = "challenger, below the best challenger (interval excludes 0)"
        elif variant not in low_tied:
            verdict = "challenger tied with the best, below in low data"
        else:
            verdict = "challenger tied at full and low data, slower"
        row = {"variant": variant, "mean τw [95% CI]": interval(*full_means[variant]),
               f"Δ to {incumbent} [95% CI]": interval(*over_incumbent[variant]) if variant in over_incumbent else "",
               "mean low-data τw [95% CI]": interval(*low_means[variant]),
               f"low-data Δ to {incumbent} [95% CI]": interval(*low_over_incumbent[variant])
               if variant in low_over_incumbent else ""}
        if challengers:
            row[f"Δ to best challenger {best} [95% CI]"] = (interval(*full_gaps[variant]) if variant in full_gaps
                                                          and variant != best else "")
            row[f"low-data Δ to {low_best} [95% CI]"] = (interval(*low_gaps[variant]) if variant in low_gaps
                                                       and variant != low_best else "")
        row.update({"seconds per model": seconds.get(variant, np.nan), "verdict": verdict})
        rows.append(row)
    return chosen, pd.DataFrame(rows)


def defaults_report(scores: pd.DataFrame, finals: pd.DataFrame, resamples: int = RESAMPLES,
                    complete_targets: int | None = None, source: str = "") -> str:
    """The markdown report that applies the defaults rule to ``scores``: the rule, then the table and the choice."""
    if complete_targets is not None and complete_targets < 3:
        raise ValueError(f"the rule needs at least three development targets with complete ground truth, "
                         f"got {complete_targets}")
    full = full_data_bootstraps(scores, finals, resamples)["truth"]
    low = low_data_bootstraps(scores, finals, resamples)["mean"]
    chosen, table = apply_defaults_rule(full, low, seconds_per_model(scores))
    outcome = ("no challenger: the incumbent stays" if chosen == INCUMBENT
               else f"the incumbent `{INCUMBENT}` gives way")
    counts = "; ".join(f"{verdict.replace('**', '')}: {count}"
                       for verdict, count in table["verdict"].value_counts().items())
    return "\n\n".join([defaults_rule(resamples), f"**Applied** to {source or 'the scores below'}:",
                        markdown_table(table, float_format=".3f"),
                        f"Verdicts of the {len(table)} LEAD variants: {counts}.",
                        f"**Chosen default: `{chosen}`** ({outcome})."]) + "\n"


def compare_table(full: BootstrapTau, low: BootstrapTau, variant: str, others, reverse: bool = False) -> pd.DataFrame:
    """Paired differences ``variant`` − each of ``others`` (each of ``others`` − ``variant`` with ``reverse``) in
    mean full-data and mean low-data τw, [interval], and whether each is a difference (its interval excludes zero)."""
    rows = []
    for other in others:
        first, second = (other, variant) if reverse else (variant, other)
        row = {"difference": f"{first} − {second}"}
        for label, boot in (("full data", full), ("low data", low)):
            if variant in boot.variants and other in boot.variants:
                point, lower, upper = boot.difference_interval(first, second, CONFIDENCE)
                row[f"{label} [95% CI]"] = interval(point, lower, upper)
                row[f"{label}: differs?"] = "yes" if lower > 0 or upper < 0 else "no"
        rows.append(row)
    return pd.DataFrame(rows)


# --- power ----------------------------------------------------------------------------------------------------------

#: Benchmark sizes the power estimate gives the interval half-width at: 11 is the development set with the six
#: added targets.
TARGET_COUNTS = (5, 10, 11, 20, 40, 80)

# LEAD's default and its ce_form="prob" twin: a pair whose difference is consistent across targets
POWER_PAIR = ("lead", "lead ntk=head head_input=standardized fit=out_of_fold c=6.104e-05 ce_form=prob")

def power_table(scores: pd.DataFrame, finals: pd.DataFrame, resamples: int,
                target_counts=TARGET_COUNTS, seed_counts=(2, 4, 8),
                pair=POWER_PAIR, targets=JUDGED_TARGETS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How the paired 95% interval of a full-data mean-τw difference shrinks with more targets and seeds.

    Model: the per-target difference of two variants varies across targets (between-target variance) and with
    the ground truth's seeds (seed variance, from resampling each pair's runs: ``seed_counts`` runs per truth,
    drawn with replacement from its recorded seeds); over T new targets like the development ones, each with its
    own fine-tuning, the mean difference has variance (between + seed) / T, so the half-width is
    1.96·√((between + seed) / T). Reported: the median over every pair of metric variants (baselines and LEAD's
    parts left out) and for ``pair``; and the targets needed for a half-width of 0.05 (a 0.05 difference called
    one about half the time) and for 80% power ((1.96 + 0.84)·√(V/T) ≤ 0.05)."""
    full = scores[(scores["regime"] == "full") & ~scores["family"].isin(["baseline", "diagnostic"])]
    variants = tuple(dict.fromkeys(full["variant"]))
    missing = [variant for variant in pair if variant not in variants]
    if missing:
        raise ValueError(f"power: no full-data scores of {missing}; name two scored variants, "
                         f"e.g. 'power {POWER_PAIR[0]} \"{POWER_PAIR[1]}\"'")
    pairs = [(a, b) for i, a in enumerate(variants) for b in variants[i + 1:]]
    rows, needs = [], []
    for seeds in seed_counts:
        boot = bootstrap_tau(full, finals, targets=tuple(targets), resamples=resamples, seed=BOOTSTRAP_SEED,
                             seeds_per_truth=seeds, variants=variants)
        variance = {p: sum(boot.difference_variances(*p)) for p in pairs}
        median = float(np.nanmedian(list(variance.values())))
        shown = sum(boot.difference_variances(*pair))
        for label, value in (("median over all pairs", median), (f"{pair[0]} vs {pair[1]}", shown)):
            row = {"seeds per truth": seeds, "pair": label}
            row.update({f"{count} targets": 1.96 * np.sqrt(value / count) for count in target_counts})
            rows.append(row)
            needs.append({"seeds per truth": seeds, "pair": label,
                          f"targets for half-width {SEPARATE}": int(np.ceil(value * (1.96 / SEPARATE) ** 2)),
                          "targets for 80% power": int(np.ceil(value * (2.80 / SEPARATE) ** 2))})
    return pd.DataFrame(rows), pd.DataFrame(needs)


# --- the generated tables -------------------------------------------------------------------------------------------

#: LEAD in the main table: the head-only default the scores were made with, and the whole-network cell fixed
#: before the held-out check (benchmarks/preregistration.md, variants a and c).
MAIN_TABLE_LEAD = ("lead", "lead ntk=full head_input=standardized S=64 fit=in_sample c=1e-08 ce_form=prob")


def main_table(scores: pd.DataFrame, full: BootstrapTau, low: BootstrapTau) -> pd.DataFrame:
    """Every peer metric and ``MAIN_TABLE_LEAD``: mean τw at full data and in low data [95% CI] and mean seconds per
    model at full data (whole-network LEAD: without its gradient norms), sorted by the full-data mean."""
    peers = scores.loc[scores["family"] == "peer", "variant"].unique().tolist()
    seconds = seconds_per_model(scores)
    rows = []
    for variant in [*peers, *(name for name in MAIN_TABLE_LEAD if name in full.variants)]:
        mean = full.mean_interval(variant, CONFIDENCE)
        rows.append({"metric": variant, "mean τw, full data [95% CI]": interval(*mean), "_mean": mean[0],
                     "mean τw, low data [95% CI]": interval(*low.mean_interval(variant, CONFIDENCE))
                     if variant in low.variants else "",
                     "seconds per model": seconds.get(variant, np.nan)})
    return pd.DataFrame(rows).sort_values("_mean", ascending=False, ignore_index=True).drop(columns="_mean")


def cost_table() -> pd.DataFrame:
    """Per metric, seconds and peak memory of one score on the two synthetic problems of ``bench_metrics.py``
    (``results/metric_speed.csv``: one process per metric, one thread)."""
    speed = pd.read_csv(RESULTS / "metric_speed.csv")
    speed = speed[speed["status"] == "ok"]
    speed["problem"] = [f"N={n:,} D={d} K={k}" for n, d, k in zip(speed["samples"], speed["features"],
                                                                   speed["classes"])]
    table = speed.pivot_table(index="metric", columns="problem", values=["seconds", "peak_rss_gb"], sort=False)
    table.columns = [f"{'seconds' if value == 'seconds' else 'peak GB'}, {problem}" for value, problem in table.columns]
    order = sorted(table.columns, key=lambda column: (column.split(", ")[1], not column.startswith("seconds")))
    return table[order].reset_index()


def ntk_cost_line() -> str:
    """The whole-network NTK's cost per image from ``results/ntk_cost.csv`` (``bench_ntk.py``), one sentence."""
    cost = pd.read_csv(RESULTS / "ntk_cost.csv")
    return (f"Whole-network NTK (`ntk=full`), on top of the extraction: {cost['ntk_cpu_ms_per_image'].min():.0f}-"
            f"{cost['ntk_cpu_ms_per_image'].max():.0f} ms of CPU per NTK image at 64 px, "
            f"{cost['ntk_over_extract'].min():.1f}-{cost['ntk_over_extract'].max():.1f} times the extraction of "
            f"the same images ({cost['model'].nunique()} models, one thread, `results/ntk_cost.csv`).")


def cost_section() -> str:
    """The cost of one score per metric on large problems, and the whole-network NTK's cost per image."""
    return "\n\n".join(["### What one score costs (`benchmarks/bench_metrics.py`, one thread per process)",
                        markdown_table(cost_table(), float_format=".2f"), ntk_cost_line()])


def table_sections(scores, protocol, low_runs, withheld, finals, truth, resamples, reproducibility) -> dict[str, str]:
    """The report's tables as markdown sections, by the name of the file ``--write-dir`` writes each to."""
    note = (f"Intervals: {CONFIDENCE:.0%} percentile bootstrap, {resamples} resamples of the "
            f"{len(JUDGED_TARGETS)} development targets ({', '.join(JUDGED_TARGETS)}) and of every pair's "
            f"ground-truth seed runs (seed {BOOTSTRAP_SEED}).")
    if len(withheld):
        note += (f" Left out until their fine-tuning is settled: {len(withheld)} (model, target) pairs "
                 f"{withheld.groupby('target').size().to_dict()}.")
    sections = {"ground_truth": "\n\n".join([
        "### Ground truth (mean test top-1 of seeds 0 and 1 at the selected learning rate)",
        markdown_table(ground_truth_table(truth), float_format=".3f"),
        "### Pairs the learning-rate grid's edge changes or leaves unsettled",
        markdown_table(truth_changes(protocol, low_runs), float_format=".4g"),
        "### How well the ground truth reproduces itself",
        markdown_table(reproducibility_table(reproducibility), float_format=".3f")])}
    if scores is None:
        return sections
    full_boot = full_data_bootstraps(scores, finals, resamples)
    low_boot = low_data_bootstraps(scores, finals, resamples)
    models = scores[scores["regime"] == "full"].groupby("target")["model"].nunique().to_dict()
    _, defaults = apply_defaults_rule(full_boot["truth"], low_boot["mean"], seconds_per_model(scores))
    sections.update({
        "main_table": "\n\n".join([
            "### Every metric and LEAD at full data and in low data", note,
            markdown_table(main_table(scores, full_boot["truth"], low_boot["mean"]), float_format=".2f")]),
        "tau_full": "\n\n".join([f"### τw at full data (models per target: {models})", note,
                                  markdown_table(full_data_table(scores, truth, full_boot), float_format=".3f")]),
        "tau_low_data": "\n\n".join(["### τw in the low-data regimes (development targets)", note,
                                      markdown_table(low_data_table(low_boot), float_format=".3f")]),
        "lead_variants": "\n\n".join(["### LEAD's variants by the rule for defaults", note,
                                       markdown_table(defaults, float_format=".3f")])})
    return sections


# --- command line ---------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="tables", choices=("tables", "defaults", "power", "compare", "edge", "cost"))
    parser.add_argument("variants", nargs="*", help="compare: a variant, then the variants to compare it with; "
                        "power: the pair to show beside the median (default: LEAD's default and its ce_form=prob twin)")
    parser.add_argument("--scores", type=Path, default=RESULTS / "metric_scores.csv")
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    parser.add_argument("--reverse", action="store_true",
                        help="compare: print each other variant minus the first (e.g. every variant over the default)")
    parser.add_argument("--write", type=Path, default=None,
                        help="defaults, power, cost: also write the report to this file")
    parser.add_argument("--target-counts", type=int, nargs="+", default=list(TARGET_COUNTS),
                        help="power: the benchmark sizes (targets) to give the expected half-width at")
    parser.add_argument("--write-dir", type=Path, default=None,
                        help="tables: write each table to a markdown file there (main_table.md, tau_full.md, "
                             "tau_low_data.md, lead_variants.md, ground_truth.md) instead of printing them")
    arguments = parser.parse_intermixed_args(argv)  # options may come between the command and its variants
    all_protocol, all_low = truth_runs()
    # Pairs still being fine-tuned (a target added to the benchmark) stay out of every table until settled.
    protocol, low_runs, withheld = settled_runs(all_protocol, all_low)
    truth = extended_grid_truth(protocol, low_runs)
    finals = final_runs(protocol, low_runs, seeds=(0, 1))
    scores = read_scores(arguments.scores) if arguments.scores.is_file() else None
    if scores is not None:  # a target is judged once every scored model has its settled truth
        scores = scores[scores["target"].isin(targets_with_truth(scores, truth))]
    if arguments.command != "tables" and scores is None:
        raise SystemExit(f"no scores at {arguments.scores}: run benchmarks/run_benchmark.py first")
    if arguments.command == "cost":
        text = cost_section()
        print(text)
        if arguments.write:
            arguments.write.write_text(f"<!-- written by `python benchmarks/report.py cost --write "
                                       f"benchmarks/results/cost.md` -->\n\n{text}\n")
        return
    if arguments.command == "defaults":
        complete = int(truth[truth["target"].isin(JUDGED_TARGETS)].groupby("target").size().ge(
            scores[scores["regime"] == "full"].groupby("target")["model"].nunique().max()).sum())
        metric_scores = scores[~scores["family"].isin(["baseline", "diagnostic"])]
        edges = truth["edge"].value_counts().to_dict()
        source = (f"`{arguments.scores.name}` ({len(metric_scores)} scores) against the ground truth of "
                  f"{len(truth)} (model, target) pairs (learning-rate grid edge: {edges})")
        report = defaults_report(metric_scores, finals, arguments.resamples, complete, source)
        print(report)
        if arguments.write:
            arguments.write.write_text(report)
        return
    if arguments.command == "edge":
        print("### Pairs the learning-rate grid's edge changes or leaves unsettled\n")
        print(markdown_table(truth_changes(protocol, low_runs), float_format=".4g"))
        print("\n### Mean full-data τw against the truth before and after the grid's edge\n")
        print(markdown_table(edge_shift_table(scores, protocol, low_runs), float_format=".3f"))
        return
    if arguments.command == "compare":
        if len(arguments.variants) < 2:
            raise SystemExit("compare needs a variant and at least one other, e.g. 'compare lead hscore'")
        full = full_data_bootstraps(scores, finals, arguments.resamples)["truth"]
        low = low_data_bootstraps(scores, finals, arguments.resamples)["mean"]
        print(markdown_table(compare_table(full, low, arguments.variants[0], arguments.variants[1:],
                                           reverse=arguments.reverse)))
        return
    if arguments.command == "power":
        if arguments.variants and len(arguments.variants) != 2:
            raise SystemExit("power takes no variant or exactly two (the pair to show beside the median)")
        scored = scores[scores["regime"] == "full"].groupby("target")["model"].nunique()
        judged = truth.groupby("target").size()
        targets = [t for t in JUDGED_TARGETS
                   if t in scored.index and judged.get(t, 0) >= scored[t]]
        widths, needs = power_table(scores, finals, arguments.resamples, tuple(arguments.target_counts),
                                    pair=tuple(arguments.variants) or POWER_PAIR, targets=targets)
        metric = scores[(scores["regime"] == "full") & ~scores["family"].isin(["baseline", "diagnostic"])]
        text = "\n\n".join([
            f"### Half-width of the paired 95% interval of a mean-τw difference ({arguments.resamples} resamples; "
            f"median over the pairs of {metric['variant'].nunique()} metric variants; variances estimated on the "
            f"{len(targets)} development targets with complete truth: {', '.join(targets)})",
            markdown_table(widths, float_format=".3f"),
            f"### Development-like targets needed to separate a {SEPARATE} difference in mean τw",
            markdown_table(needs, float_format=".3f")])
        print(text)
        if arguments.write:
            arguments.write.write_text(f"<!-- written by `python benchmarks/report.py power --write "
                                       f"benchmarks/results/power.md` -->\n\n{text}\n")
        return
    sections = table_sections(scores, protocol, low_runs, withheld, finals, truth, arguments.resamples,
                              reproducibility=final_runs(*settled_runs(all_protocol, all_low, (0, 1, 2, 3))[:2],
                                                         seeds=(0, 1, 2, 3)))
    if arguments.write_dir is None:
        print("\n\n".join(sections.values()))
        return
    command = "python benchmarks/report.py --write-dir benchmarks/results"
    for name, text in sections.items():
        path = arguments.write_dir / f"{name}.md"
        path.write_text(f"<!-- written by `{command}`: edit the script, not this file -->\n\n{text}\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
