"""Fine-tuning ground truth of the offline benchmark: every zoo model on every development target, resumably.

Runs ``lead_hub.finetune.run_ground_truth`` (the BENCHMARK.md protocol) for each (model, target) pair and
appends every finished run to ``benchmarks/results/ground_truth_runs.csv``; a restarted job skips finished runs.
Pairs are ordered target by target (the first five development targets, then the six added ones, cifar10
last as a sanity target) and cheapest model first
within a target, so every target gets complete model coverage early. ``--worker i/n`` takes every n-th pair
starting at i, so n workers split the grid without overlap and share the runs CSV under a file lock.
``--parallel n`` shares the grid dynamically instead: it starts n worker processes that each take the next pair
nobody has claimed yet (a claim is a file created exclusively in ``--claim-dir``), which balances pairs of very
different cost; that is the way to fill a GPU with many small fine-tunings at once.

    setsid nohup nice -n 19 python benchmarks/ground_truth.py --worker 0/2 > /tmp/lead_hub_gt/worker0.log 2>&1 &
    setsid nohup nice -n 19 python benchmarks/ground_truth.py --worker 1/2 > /tmp/lead_hub_gt/worker1.log 2>&1 &
    python benchmarks/ground_truth.py --parallel 12        # on a GPU machine: 12 fine-tunings at a time
    python benchmarks/ground_truth.py --summarise-only     # rewrite ground_truth.csv from the runs so far

The summary ``ground_truth.csv`` is the truth by the extended grid's rule (``lead_hub.finetune_truth``), of the
pairs whose runs are complete; pairs still running are left out of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmark import ADDED_DEVELOPMENT_TARGETS, DEVELOPMENT_TARGETS, SANITY_TARGETS
from lead_hub.data import load_parquet_split
from lead_hub.finetune import decode_images, read_runs, run_ground_truth, summarise_runs, FinetuneProtocol
from lead_hub.finetune_truth import extended_grid_truth

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAD_HUB_SHARED_DATA", REPOSITORY_ROOT.parent / "shared" / "data"))
RESULTS = REPOSITORY_ROOT / "benchmarks" / "results"
#: The grid-edge runs (rates below the protocol's grid: ``benchmarks/lr_grid_edge.py``).
LOW_RATE_RUNS = RESULTS / "ground_truth_runs_lr1e-4.csv"
TARGETS = (*DEVELOPMENT_TARGETS, *ADDED_DEVELOPMENT_TARGETS, *SANITY_TARGETS)
# Cheapest first (training throughput at 64 px on one core): the zero-padded MobileNetV1s all cost width 1.0.
ZOO = (
    "mobilenetv1_025.mlperf_vww",
    "mobilenetv1_025.coral_in1k",
    "mobilenetv1_050.coral_in1k",
    "mobilenetv1_075.coral_in1k",
    "mobilenetv1_100.coral_in1k_emb",
    "mobilenetv2_100.coral_in1k",
    "mobilenetv2_100.coral_tf2_in1k",
    "mobilenetv2_100.coral_inat_bird",
    "mobilenetv2_100.coral_inat_insect",
    "tf_efficientnet_lite0.in1k",
    "tf_efficientnet_lite1.in1k",
    "tf_efficientnet_lite2.in1k",
)


def work_order(targets=TARGETS, models=ZOO) -> list[tuple[str, str]]:
    """(target, model) pairs: target by target, models in cost order within each."""
    return [(target, model) for target in targets for model in models]


def worker_share(pairs: list, worker: str) -> list:
    """The pairs of worker ``"i/n"``: positions i, i+n, i+2n, ... of ``pairs``."""
    index, count = (int(part) for part in worker.split("/"))
    if not 0 <= index < count:
        raise ValueError(f"--worker must be i/n with 0 <= i < n, got {worker!r}")
    return pairs[index::count]


def claim(claim_dir: Path, target: str, model: str) -> bool:
    """True for exactly one of the workers that call this with the same pair (exclusive file creation)."""
    try:
        os.close(os.open(claim_dir / f"{target}__{model}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def missing_inputs(zoo_dir: Path, targets_dir: Path, target: str, model: str) -> list[Path]:
    """The model and target folders of a pair that do not exist (a worker skips such a pair without claiming it)."""
    return [folder for folder in (zoo_dir / model, targets_dir / target) if not folder.is_dir()]


def run_parallel(count: int, forwarded: list[str], claim_dir: Path | None) -> int:
    """Start ``count`` workers sharing the grid through claim files, wait for all; non-zero if any failed."""
    with tempfile.TemporaryDirectory(prefix="lead_hub_gt_claims_") as fresh:
        claims = claim_dir or Path(fresh)
        claims.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, __file__, *forwarded, "--claim-dir", str(claims)]
        workers = [subprocess.Popen([*command, "--worker", f"{index}/{count}"]) for index in range(count)]
        codes = [worker.wait() for worker in workers]
    failed = [index for index, code in enumerate(codes) if code != 0]
    if failed:
        print(f"workers {failed} failed (exit codes {[codes[index] for index in failed]})", file=sys.stderr)
    return 1 if failed else 0


def write_summary(runs_csv: Path, summary_csv: Path, low_rate_runs_csv: Path | None = None) -> None:
    """Rewrite the ground-truth table atomically (several workers may call this at once): accuracies and rates by
    the extended grid's rule (:func:`lead_hub.finetune_truth.extended_grid_truth`, column ``edge`` says which pairs
    took the extended grid; pairs still running are left out), timing columns of the protocol's runs
    (``summarise_runs``). ``low_rate_runs_csv``: the grid-edge runs (default ``LOW_RATE_RUNS``)."""
    protocol_runs = read_runs(runs_csv)
    truth = extended_grid_truth(protocol_runs, read_runs(low_rate_runs_csv or LOW_RATE_RUNS))
    timing = summarise_runs(protocol_runs)[["model", "target", "seconds", "cpu_seconds", "train_images_per_cpu_second"]]
    table = truth.merge(timing, on=["model", "target"], how="left").sort_values(["target", "model"])
    with tempfile.NamedTemporaryFile("w", dir=summary_csv.parent, suffix=".tmp", delete=False) as handle:
        table.to_csv(handle, index=False, float_format="%.6g")
    os.replace(handle.name, summary_csv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", default="0/1", help="i/n: run every n-th pair starting at i (default 0/1: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO)
    parser.add_argument("--parallel", type=int, default=0,
                        help="start this many workers that share the grid dynamically through claim files")
    parser.add_argument("--claim-dir", type=Path, default=None,
                        help="folder of claim files: each pair runs in the worker that claims it first (default "
                             "with --parallel: a fresh temporary folder); without it --worker splits statically")
    parser.add_argument("--stop-after", type=float, default=None,
                        help="seconds after which a worker starts no new pair (finished runs are kept; rerun resumes)")
    parser.add_argument("--wait-for-inputs", type=float, default=0.0,
                        help="seconds to keep looking for pairs whose model or target folder is not there yet")
    parser.add_argument("--zoo-dir", type=Path, default=SHARED_DATA / "zoo")
    parser.add_argument("--targets-dir", type=Path, default=SHARED_DATA / "targets")
    parser.add_argument("--runs-csv", type=Path, default=RESULTS / "ground_truth_runs.csv")
    parser.add_argument("--summary-csv", type=Path, default=RESULTS / "ground_truth.csv")
    parser.add_argument("--epochs", type=int, default=FinetuneProtocol().epochs,
                        help="epochs per run (default: the protocol's; fewer only for a quick check of the pipeline)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(FinetuneProtocol().seeds),
                        help="final-run seeds (the grid uses the first); more seeds than the protocol's two measure "
                             "how much the ground truth moves between seeds")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=list(FinetuneProtocol().learning_rates),
                        help="learning-rate grid (default: the protocol's)")
    parser.add_argument("--summarise-only", action="store_true", help="only rewrite the summary from the runs CSV")
    arguments = parser.parse_args(argv)
    arguments.summary_csv.parent.mkdir(parents=True, exist_ok=True)
    protocol = dataclasses.replace(FinetuneProtocol(), epochs=arguments.epochs, seeds=tuple(arguments.seeds),
                                   learning_rates=tuple(arguments.learning_rates))
    if arguments.summarise_only:
        write_summary(arguments.runs_csv, arguments.summary_csv)
        return 0
    if arguments.parallel:
        forwarded = _without_options(sys.argv[1:] if argv is None else argv, ("--parallel", "--claim-dir", "--worker"))
        return run_parallel(arguments.parallel, forwarded, arguments.claim_dir)
    torch.set_num_threads(arguments.threads)
    pairs = work_order(arguments.targets, arguments.models)
    if arguments.claim_dir is None:
        pairs = worker_share(pairs, arguments.worker)
    started_at = time.perf_counter()
    decoded: dict[str, tuple] = {}
    for target, model in _pairs_as_inputs_arrive(pairs, arguments, started_at):
        if arguments.claim_dir is not None and not claim(arguments.claim_dir, target, model):
            continue
        if target not in decoded:
            decoded.clear()  # one target's images in memory at a time
            folder = arguments.targets_dir / target
            train, test = load_parquet_split(folder, "train"), load_parquet_split(folder, "test")
            decoded[target] = (train, test, decode_images(train, protocol.image_size),
                               decode_images(test, protocol.image_size))
        train, test, train_cache, test_cache = decoded[target]
        started = time.perf_counter()
        run_ground_truth(f"local-dir:{arguments.zoo_dir / model}", train, test, arguments.runs_csv,
                         model_name=model, target_name=target, protocol=protocol,
                         train_cache=train_cache, test_cache=test_cache, log=lambda line: print(line, flush=True))
        print(f"[worker {arguments.worker}] done {model} on {target} in {time.perf_counter() - started:.0f} s",
              flush=True)
        write_summary(arguments.runs_csv, arguments.summary_csv)
    return 0


def _pairs_as_inputs_arrive(pairs, arguments, started_at: float):
    """Yield each pair once, when its model and target folders exist. With ``--wait-for-inputs S``, pass over the
    pairs again every 5 s while some still lack inputs and fewer than S seconds have passed (for data copied in
    while the workers run). Yields nothing more once ``--stop-after`` seconds have passed."""
    remaining, reported = list(pairs), set()
    while True:
        lacking = []
        for target, model in remaining:
            if arguments.stop_after is not None and time.perf_counter() - started_at > arguments.stop_after:
                print(f"[worker {arguments.worker}] --stop-after {arguments.stop_after:g} s reached", flush=True)
                return
            missing = missing_inputs(arguments.zoo_dir, arguments.targets_dir, target, model)
            if not missing:
                yield target, model
                continue
            lacking.append((target, model))
            if (target, model) not in reported:
                reported.add((target, model))
                print(f"[worker {arguments.worker}] {model} on {target}: missing {[str(m) for m in missing]}",
                      flush=True)
        remaining = lacking
        if not remaining or time.perf_counter() - started_at > arguments.wait_for_inputs:
            return
        time.sleep(5)


def _without_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` minus each of ``options`` and its value (both ``--opt value`` and ``--opt=value`` forms)."""
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument in options:
            skip = True
        elif not argument.startswith(tuple(f"{option}=" for option in options)):
            kept.append(argument)
    return kept


if __name__ == "__main__":
    raise SystemExit(main())
