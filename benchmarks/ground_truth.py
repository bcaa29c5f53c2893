"""Fine-tuning ground truth of the offline benchmark: every zoo model on every development target, resumably.

Runs ``lead_hub.finetune.run_ground_truth`` (the BENCHMARK.md protocol) for each (model, target) pair and
appends every finished run to ``benchmarks/results/ground_truth_runs.csv``; a restarted job skips finished runs.
Pairs are ordered target by target (eurosat first, cifar10 last as a sanity target) and cheapest model first
within a target, so every target gets complete model coverage early. ``--worker i/n`` takes every n-th pair
starting at i, so n workers split the grid without overlap and share the runs CSV under a file lock.

    setsid nohup nice -n 19 python benchmarks/ground_truth.py --worker 0/2 > /tmp/lead_hub_gt/worker0.log 2>&1 &
    setsid nohup nice -n 19 python benchmarks/ground_truth.py --worker 1/2 > /tmp/lead_hub_gt/worker1.log 2>&1 &
    python benchmarks/ground_truth.py --summarise-only     # rewrite ground_truth.csv from the runs so far
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from lead_hub.data import load_parquet_split
from lead_hub.finetune import decode_images, read_runs, run_ground_truth, summarise_runs, FinetuneProtocol

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAD_HUB_SHARED_DATA", REPOSITORY_ROOT.parent / "shared" / "data"))
RESULTS = REPOSITORY_ROOT / "benchmarks" / "results"
TARGETS = ("eurosat", "pacs_photo", "pacs_sketch", "flowers5", "fashion_mnist", "cifar10")
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


def write_summary(runs_csv: Path, summary_csv: Path) -> None:
    """Rewrite the ground-truth table atomically (several workers may call this at once)."""
    table = summarise_runs(read_runs(runs_csv)).sort_values(["target", "model"])
    with tempfile.NamedTemporaryFile("w", dir=summary_csv.parent, suffix=".tmp", delete=False) as handle:
        table.to_csv(handle, index=False, float_format="%.6g")
    os.replace(handle.name, summary_csv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", default="0/1", help="i/n: run every n-th pair starting at i (default 0/1: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--models", nargs="+", default=list(ZOO), choices=ZOO)
    parser.add_argument("--runs-csv", type=Path, default=RESULTS / "ground_truth_runs.csv")
    parser.add_argument("--summary-csv", type=Path, default=RESULTS / "ground_truth.csv")
    parser.add_argument("--summarise-only", action="store_true", help="only rewrite the summary from the runs CSV")
    arguments = parser.parse_args(argv)
    arguments.summary_csv.parent.mkdir(parents=True, exist_ok=True)
    if arguments.summarise_only:
        write_summary(arguments.runs_csv, arguments.summary_csv)
        return 0
    torch.set_num_threads(arguments.threads)
    protocol = FinetuneProtocol()
    pairs = worker_share(work_order(arguments.targets, arguments.models), arguments.worker)
    decoded: dict[str, tuple] = {}
    for target, model in pairs:
        if target not in decoded:
            decoded.clear()  # one target's images in memory at a time
            folder = SHARED_DATA / "targets" / target
            train, test = load_parquet_split(folder, "train"), load_parquet_split(folder, "test")
            decoded[target] = (train, test, decode_images(train, protocol.image_size),
                               decode_images(test, protocol.image_size))
        train, test, train_cache, test_cache = decoded[target]
        started = time.perf_counter()
        run_ground_truth(f"local-dir:{SHARED_DATA / 'zoo' / model}", train, test, arguments.runs_csv,
                         model_name=model, target_name=target, protocol=protocol,
                         train_cache=train_cache, test_cache=test_cache, log=lambda line: print(line, flush=True))
        print(f"[worker {arguments.worker}] done {model} on {target} in {time.perf_counter() - started:.0f} s",
              flush=True)
        write_summary(arguments.runs_csv, arguments.summary_csv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
