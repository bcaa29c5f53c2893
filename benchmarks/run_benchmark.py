"""Reproduce the offline benchmark table: every metric variant on every zoo model and development target,
at full data and in the low-data regimes, judged against the fine-tuned ground truth.

    python benchmarks/run_benchmark.py                       # everything (needs ../shared/data)
    python benchmarks/run_benchmark.py --targets eurosat     # one target
    python benchmarks/run_benchmark.py --fast                # the CI subset: 3 models, 1 target, few variants
    python benchmarks/run_benchmark.py --variants gbc --replace   # score one metric again after a change
    python benchmarks/run_benchmark.py --targets dtd10 --variants logme lead --output /tmp/new
                                                     # a metric and a LEAD grid's variant on one target
    python benchmarks/run_benchmark.py --no-peers --replace-lead  # LEAD's grids afresh (peers' rows kept)
    python benchmarks/run_benchmark.py --no-peers --lead-grids full-raw --output /tmp/run   # one grid, elsewhere
    python benchmarks/run_benchmark.py --import-scores /tmp/run/metric_scores.csv          # ... merged in
    python benchmarks/run_benchmark.py --no-peers --lead-grids full-standardized --full-ntk-low-data \
        --output /tmp/low   # whole-network grid in every regime (each draw's norms), then --import-scores
    python benchmarks/run_benchmark.py --import-scores /tmp/run/metric_scores.csv --drop-variants-matching 'S=4 '
                                                     # ... replacing the rows of a grid's earlier sample size

Scores are appended to ``benchmarks/results/metric_scores.csv`` as they come (a rerun skips the (target,
variant) pairs already there); the τw tables are rebuilt from all scores and ``ground_truth.csv`` at the end.
Features and whole-network NTK norms are cached under ``.lead_hub_cache/benchmark``; what each model's norms
cost is appended to ``benchmarks/results/ntk_full_norms.csv``. Every metric gets the images' sample ids (their
rows in the source split) where it accepts them (LEAD keys its per-sample choices by them). LEAD's variants are
the grids of ``benchmark_lead.BENCHMARK_LEAD_GRIDS``, each scored from parts computed once; ``--variants``
names metrics and single variants of those grids alike. Targets whose ground truth is not complete yet (the six
added development targets while they are fine-tuned) are scored and left out of the tables until it is.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
from threadpoolctl import threadpool_limits

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from lead_hub import metrics  # noqa: E402
from benchmark import (ADDED_DEVELOPMENT_TARGETS, DEVELOPMENT_TARGETS, SANITY_TARGETS,  # noqa: E402
                       MetricVariant, benchmark_features, benchmark_images, regimes, score_target,
                       targets_with_truth, zoo_model_ids)
from benchmark_lead import (BENCHMARK_LEAD_GRIDS, full_regime, grid_variant_names,  # noqa: E402
                            score_lead_target)
from lead_hub.ntk import sample_ids  # noqa: E402
from lead_hub.evaluation import rank_quality, summarise_quality  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402

SHARED = REPOSITORY.parent / "shared" / "data"
RESULTS = REPOSITORY / "benchmarks" / "results"

# LEAD's variants are grids scored from shared parts (benchmark_lead.py): log_init fit × NTK (head-only or
# whole-network, standardised or raw head inputs) × rate constants × ce_form, plus the default and the paper's SVM.
# Out-of-fold SVM log_init (classifier="ovr_svm"/"cs_svm" with the default fit) costs five SVM fits per model
# (LinearSVC took 38 s per model in sample at N=1000 on a busy machine): run it with --with-svm-folds.
SVM_FOLD_VARIANTS = [
    MetricVariant("lead classifier=ovr_svm", "lead", {"classifier": "ovr_svm"}, "lead"),
    MetricVariant("lead classifier=cs_svm", "lead", {"classifier": "cs_svm"}, "lead"),
]


def peer_variants() -> list[MetricVariant]:
    return [MetricVariant(name, name) for name in metrics.available() if name != "lead"]


def fast_models(models: list[str], ground_truth: Path, count: int = 3) -> list[str]:
    """The CI subset: up to ``count`` zoo models that have eurosat ground truth, the cheapest (smallest folder)
    first, so the fast run can judge what it scores."""
    covered = set()
    if ground_truth.is_file():
        truth = pd.read_csv(ground_truth)
        covered = set(truth.loc[truth["target"] == "eurosat", "model"])
    with_truth = [m for m in models if m.rsplit("/", 1)[-1] in covered]
    if len(with_truth) < 2:
        sys.exit(f"--fast needs eurosat ground truth for at least two zoo models in {ground_truth}")
    size = {m: sum(f.stat().st_size for f in Path(m.split(":", 1)[1]).iterdir()) for m in with_truth}
    return sorted(with_truth, key=size.get)[:count]


def fast_regimes(labels):
    return [regime for regime in regimes(labels) if regime[0] == "full" or (regime[0] == "5/class" and regime[1] == 0)]


def main() -> None:
    # Thousands of small (1000×D) problems on a shared 2-core machine: one BLAS thread per process avoids
    # OpenBLAS threads spinning against other processes (measured 6x faster LEAD log_init under load). Torch gets
    # one thread too: with two OpenMP threads beside fine-tuning jobs, the whole-network norms of 100 coil20 rows
    # took 6-19 s of wall time, with one 2 s (one or two threads give the same bits).
    threadpool_limits(1, user_api="blas")
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+",
                        default=[*DEVELOPMENT_TARGETS, *ADDED_DEVELOPMENT_TARGETS, *SANITY_TARGETS])
    parser.add_argument("--with-svm-folds", action="store_true", help="also LEAD with out-of-fold SVM log_init")
    parser.add_argument("--fast", action="store_true",
                        help="CI subset: eurosat, the 3 smallest models with ground truth, 4 variants, 2 regimes")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--cache-dir", type=Path, default=REPOSITORY / ".lead_hub_cache" / "benchmark")
    parser.add_argument("--ground-truth", type=Path, default=RESULTS / "ground_truth.csv")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="score only these variants (names as in the scores CSV), e.g. one metric after a change")
    parser.add_argument("--replace", action="store_true",
                        help="with --variants: first drop their rows from the scores CSV, so they are scored afresh")
    parser.add_argument("--lead-grids", nargs="*", default=list(BENCHMARK_LEAD_GRIDS),
                        choices=list(BENCHMARK_LEAD_GRIDS), help="LEAD grids to score (none: peers only)")
    parser.add_argument("--lead-log-inits", nargs="+", default=None,
                        help="score only these log_init entries of LEAD's grids (e.g. fit=leave_one_out after a "
                             "change of its code); grids without them are skipped")
    parser.add_argument("--no-peers", action="store_true", help="score LEAD's grids only")
    parser.add_argument("--replace-lead", action="store_true",
                        help="first drop every LEAD row (family 'lead') from the scores CSV: a rerun of LEAD's grids")
    parser.add_argument("--drop-variants-matching", default=None, metavar="REGEX",
                        help="first drop the rows whose variant name matches this regular expression (re.search), "
                             "e.g. a LEAD grid scored with another whole-network sample size before importing it")
    parser.add_argument("--import-scores", type=Path, nargs="+", default=None,
                        help="instead of scoring, append the rows of these scores CSVs (runs made with --output "
                             "elsewhere, e.g. in parallel), skipping every (target, variant, regime, draw, model) "
                             "already present: a run that adds the low-data regimes of scored variants adds those")
    parser.add_argument("--complete-only", action="store_true",
                        help="with --import-scores: import only variants scored on every development target; the "
                             "others go to metric_scores_partial.csv beside the scores")
    parser.add_argument("--full-ntk-low-data", action="store_true",
                        help="score the whole-network (ntk=full) grids in the low-data regimes too: each draw's NTK "
                             "rows through the draw's own head, one norms call per model, head input and draw")
    parser.add_argument("--ntk-costs", type=Path, default=RESULTS / "ntk_full_norms.csv",
                        help="where the whole-network NTK norms' cost per model and target is appended")
    arguments = parser.parse_args()
    if not (SHARED / "zoo").is_dir():
        sys.exit(f"the offline benchmark needs the shared data at {SHARED}")

    models, regimes_of = zoo_model_ids(SHARED / "zoo"), regimes
    variants = [] if arguments.no_peers else peer_variants()
    grids = {name: BENCHMARK_LEAD_GRIDS[name] for name in arguments.lead_grids}
    if arguments.lead_log_inits:
        grids = {name: replace(grid, log_inits={label: options for label, options in grid.log_inits.items()
                                                if label in arguments.lead_log_inits})
                 for name, grid in grids.items() if set(grid.log_inits) & set(arguments.lead_log_inits)}
    if arguments.with_svm_folds:
        variants += SVM_FOLD_VARIANTS
    if arguments.fast:
        arguments.targets = ["eurosat"]
        models = fast_models(models, arguments.ground_truth)
        variants = [MetricVariant(name, name) for name in ("logme", "sfda") if name in metrics.available()]
        grids = {"default": BENCHMARK_LEAD_GRIDS["default"]}
        regimes_of = fast_regimes
    if arguments.variants:
        cells = set(grid_variant_names(grids.values()))
        unknown = sorted(set(arguments.variants) - {variant.name for variant in variants} - cells)
        if unknown:
            sys.exit(f"--variants: unknown {unknown}; known: the metrics {[variant.name for variant in variants]} "
                     f"and the variants of the LEAD grids {list(grids)} (names as in the scores CSV)")
        variants = [variant for variant in variants if variant.name in arguments.variants]
        grids = {cell.variants()[0].name: cell
                 for grid in grids.values() for cell in grid.restricted(arguments.variants)}
    elif arguments.replace:
        sys.exit("--replace needs --variants (it drops those variants' rows before scoring them again)")
    grid_variant_names(grids.values())  # refuses a name given twice
    arguments.output.mkdir(parents=True, exist_ok=True)
    scores_csv = arguments.output / ("metric_scores_fast.csv" if arguments.fast else "metric_scores.csv")
    dropping = arguments.replace or arguments.replace_lead or arguments.drop_variants_matching
    if dropping and scores_csv.is_file():
        kept = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""])
        dropped = kept["variant"].isin(arguments.variants or []) | (arguments.replace_lead & (kept["family"] == "lead"))
        if arguments.drop_variants_matching:
            dropped |= kept["variant"].str.contains(arguments.drop_variants_matching, regex=True)
        replacement = scores_csv.with_suffix(".csv.tmp")
        kept[~dropped].to_csv(replacement, index=False)
        replacement.replace(scores_csv)  # atomic: a reader sees the old or the new file, never half of one
        print(f"dropped {int(dropped.sum())} rows from {scores_csv}; scoring them again", flush=True)
    done = set()
    if scores_csv.is_file():
        previous = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""], low_memory=False)
        done = set(zip(previous["target"], previous["variant"]))

    def append(table: pd.DataFrame, path: Path = scores_csv) -> None:
        table.to_csv(path, mode="a", header=not path.is_file() or path.stat().st_size == 0, index=False)

    if arguments.import_scores:
        imported = pd.concat([pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False)
                              for path in arguments.import_scores], ignore_index=True)
        imported = imported.drop_duplicates(["target", "variant", "regime", "draw", "model"])
        if arguments.complete_only:
            covered = imported[imported["target"].isin(DEVELOPMENT_TARGETS)].groupby("variant")["target"].nunique()
            complete = imported["variant"].map(covered).eq(len(DEVELOPMENT_TARGETS))
            partial_csv = arguments.output / "metric_scores_partial.csv"
            if (~complete).any():
                imported[~complete].to_csv(partial_csv, index=False)
                print(f"{imported.loc[~complete, 'variant'].nunique()} variants lack a development target: "
                      f"written to {partial_csv}, not imported", flush=True)
            else:
                print("every imported variant covers every development target", flush=True)
            imported = imported[complete]
        keys = ["target", "variant", "regime", "draw", "model"]
        present = set()
        if scores_csv.is_file():
            present = set(pd.read_csv(scores_csv, usecols=keys).astype(str).itertuples(index=False, name=None))
        new = [key not in present for key in imported[keys].astype(str).itertuples(index=False, name=None)]
        append(imported[new])
        print(f"imported {sum(new)} rows into {scores_csv}", flush=True)
        arguments.targets = []

    for target in arguments.targets:
        todo = [variant for variant in variants if (target, variant.name) not in done]
        todo_grids = [grid for grid in grids.values()
                      if any((target, variant.name) not in done for variant in grid.variants())]
        if not todo and not todo_grids:
            continue
        folder = SHARED / "targets" / target
        print(f"[{target}] extracting features of {len(models)} models", flush=True)
        images = benchmark_images(folder)
        features = benchmark_features(folder, models, cache_dir=arguments.cache_dir, images=images)
        features = {model_id.rsplit("/", 1)[-1]: extracted for model_id, extracted in features.items()}
        for variant in todo:
            table = score_target(target, features, [variant], regimes_of=regimes_of,
                                 sample_arrays={"sample_ids": sample_ids(images)})
            append(table)
            full = table[table["regime"] == "full"]
            print(f"[{target}] {variant.name:<45} {full['seconds'].sum():7.1f} s full-data", flush=True)

        def grid_done(grid, table):
            table = table[[(target, name) not in done for name in table["variant"]]]
            append(table)
            print(f"[{target}] LEAD grid of {len(grid.variants())} variants: {len(table)} scores", flush=True)

        if todo_grids:
            score_lead_target(target, folder, models, todo_grids, cache_dir=arguments.cache_dir,
                              regimes_of=regimes_of, on_table=grid_done,
                              full_ntk_regimes_of=regimes_of if arguments.full_ntk_low_data else full_regime,
                              on_norms=lambda record: append(pd.DataFrame([record]), arguments.ntk_costs))

    if not arguments.ground_truth.is_file():
        print(f"no ground truth at {arguments.ground_truth}: scores written, tables not built")
        return
    scores = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""], low_memory=False)
    truth = pd.read_csv(arguments.ground_truth)
    judged = targets_with_truth(scores, truth)
    waiting = sorted(set(scores["target"]) - set(judged))
    if waiting:
        print(f"scored, left out of the tables until every scored model has its ground truth: {waiting}")
    quality = rank_quality(scores[scores["target"].isin(judged)], truth)
    suffix = "_fast" if arguments.fast else ""
    quality.to_csv(arguments.output / f"rank_quality{suffix}.csv", index=False)
    summary = summarise_quality(quality)
    summary.to_csv(arguments.output / f"rank_quality_summary{suffix}.csv", index=False)
    print(markdown_table(summary, float_format=".3f"))


if __name__ == "__main__":
    main()
