"""Reproduce the offline benchmark table: every metric variant on every zoo model and development target,
at full data and in the low-data regimes, judged against the fine-tuned ground truth.

    python benchmarks/run_benchmark.py                       # everything (needs ../shared/data)
    python benchmarks/run_benchmark.py --targets eurosat     # one target
    python benchmarks/run_benchmark.py --fast                # the CI subset: 3 models, 1 target, few variants
    python benchmarks/run_benchmark.py --variants gbc --replace   # score one metric again after a change

Scores are appended to ``benchmarks/results/metric_scores.csv`` as they come (a rerun skips the (target,
variant) pairs already there); the τw tables are rebuilt from all scores and ``ground_truth.csv`` at the end.
Features are cached under ``.lead_hub_cache/benchmark``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from lead_hub import metrics  # noqa: E402
from lead_hub.benchmark import (DEVELOPMENT_TARGETS, SANITY_TARGETS, MetricVariant, benchmark_features,  # noqa: E402
                                regimes, score_target, zoo_model_ids)
from lead_hub.evaluation import rank_quality, summarise_quality  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402

SHARED = REPOSITORY.parent / "shared" / "data"
RESULTS = REPOSITORY / "benchmarks" / "results"

LEAD_VARIANTS = [
    MetricVariant("lead", "lead", {}, "lead"),
    MetricVariant("lead paper-faithful (ovr_svm in-sample)", "lead",
                  {"classifier": "ovr_svm", "fit": "in_sample"}, "lead"),
    MetricVariant("lead classifier-only (rate 0)", "lead", {"rate_constant": 0.0}, "lead"),
    MetricVariant("lead rate_scale=per_model", "lead", {"rate_scale": "per_model"}, "lead"),
    MetricVariant("lead rate_scale=raw", "lead", {"rate_scale": "raw"}, "lead"),
    *[MetricVariant(f"lead rate_constant=1/{int(1 / c)}", "lead", {"rate_constant": c}, "lead")
      for c in (1 / 65536, 1 / 4096, 1 / 1024, 1 / 256)],
    # Out-of-fold SVM log_init (classifier="ovr_svm"/"cs_svm" with the default fit) is left out of the default run:
    # LinearSVC took 38 s per model in-sample at N=1000 on the busy machine, and out of fold costs five fits.
    # Run it with --with-svm-folds.
    MetricVariant("lead classifier=logistic", "lead", {"classifier": "logistic"}, "lead"),
    # Crammer-Singer SVM, in sample like the paper-faithful one-vs-rest variant (one fit per model).
    MetricVariant("lead classifier=cs_svm in-sample", "lead", {"classifier": "cs_svm", "fit": "in_sample"}, "lead"),
    MetricVariant("lead fit=in_sample", "lead", {"fit": "in_sample"}, "lead"),
    MetricVariant("lead margins=calibrated", "lead", {"margins": "calibrated"}, "lead"),
    MetricVariant("lead regularization=1e-3", "lead", {"regularization": 1e-3}, "lead"),
    MetricVariant("lead regularization=1e-1", "lead", {"regularization": 1e-1}, "lead"),
    MetricVariant("lead ce_form=softmax_ce", "lead", {"ce_form": "softmax_ce"}, "lead"),
    MetricVariant("lead ce_form=prob", "lead", {"ce_form": "prob"}, "lead"),
    MetricVariant("lead ntk_samples_per_class=16", "lead", {"ntk_samples_per_class": 16}, "lead"),
]


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
    # OpenBLAS threads spinning against other processes (measured 6x faster LEAD log_init under load).
    threadpool_limits(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=[*DEVELOPMENT_TARGETS, *SANITY_TARGETS])
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
    arguments = parser.parse_args()
    if not (SHARED / "zoo").is_dir():
        sys.exit(f"the offline benchmark needs the shared data at {SHARED}")

    models, variants, regimes_of = zoo_model_ids(SHARED / "zoo"), LEAD_VARIANTS + peer_variants(), regimes
    if arguments.with_svm_folds:
        variants += SVM_FOLD_VARIANTS
    if arguments.fast:
        arguments.targets = ["eurosat"]
        models = fast_models(models, arguments.ground_truth)
        variants = [LEAD_VARIANTS[0], LEAD_VARIANTS[1], MetricVariant("logme", "logme"), MetricVariant("sfda", "sfda")]
        variants = [v for v in variants if v.metric in metrics.available()]
        regimes_of = fast_regimes
    if arguments.variants:
        unknown = sorted(set(arguments.variants) - {variant.name for variant in variants})
        if unknown:
            sys.exit(f"--variants: unknown {unknown}; known: {[variant.name for variant in variants]}")
        variants = [variant for variant in variants if variant.name in arguments.variants]
    elif arguments.replace:
        sys.exit("--replace needs --variants (it drops those variants' rows before scoring them again)")
    arguments.output.mkdir(parents=True, exist_ok=True)
    scores_csv = arguments.output / ("metric_scores_fast.csv" if arguments.fast else "metric_scores.csv")
    if arguments.replace and scores_csv.is_file():
        kept = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""])
        kept = kept[~kept["variant"].isin(arguments.variants)]
        replacement = scores_csv.with_suffix(".csv.tmp")
        kept.to_csv(replacement, index=False)
        replacement.replace(scores_csv)  # atomic: a reader sees the old or the new file, never half of one
        print(f"dropped the rows of {arguments.variants} from {scores_csv}; scoring them again", flush=True)
    done = set()
    if scores_csv.is_file():
        previous = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""])
        done = set(zip(previous["target"], previous["variant"]))

    for target in arguments.targets:
        todo = [variant for variant in variants if (target, variant.name) not in done]
        if not todo:
            continue
        print(f"[{target}] extracting features of {len(models)} models", flush=True)
        features = benchmark_features(SHARED / "targets" / target, models, cache_dir=arguments.cache_dir)
        features = {model_id.rsplit("/", 1)[-1]: extracted for model_id, extracted in features.items()}
        for variant in todo:
            table = score_target(target, features, [variant], regimes_of=regimes_of)
            table.to_csv(scores_csv, mode="a", header=not scores_csv.is_file() or scores_csv.stat().st_size == 0,
                         index=False)
            full = table[table["regime"] == "full"]
            print(f"[{target}] {variant.name:<45} {full['seconds'].sum():7.1f} s full-data", flush=True)

    if not arguments.ground_truth.is_file():
        print(f"no ground truth at {arguments.ground_truth}: scores written, tables not built")
        return
    scores = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""])
    truth = pd.read_csv(arguments.ground_truth)
    quality = rank_quality(scores, truth)
    suffix = "_fast" if arguments.fast else ""
    quality.to_csv(arguments.output / f"rank_quality{suffix}.csv", index=False)
    summary = summarise_quality(quality)
    summary.to_csv(arguments.output / f"rank_quality_summary{suffix}.csv", index=False)
    print(markdown_table(summary, float_format=".3f"))


if __name__ == "__main__":
    main()
