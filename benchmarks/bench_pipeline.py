"""Throughput of the feature pipeline against the model's raw forward pass, on real zoo models and a real target.

Pipeline: :func:`lead_hub.features.extract_features` (decode in DataLoader workers + transform + forward), no
cache. Raw: the same network on tensors decoded and transformed beforehand, in batches of the same size. Both at
64 px on the first ``--images`` rows of a target's train split; runs alternate (raw, pipeline, raw, ...) and the
median of ``--repeats`` is kept, because this machine is shared. Peak memory is the largest resident set size of
the process during a run (sampled every 10 ms), and separately that of the DataLoader workers. CPU time per image
(this process plus its workers) shows the pipeline's own cost whatever the load of the machine.

    python benchmarks/bench_pipeline.py                      # writes benchmarks/results/pipeline_speed.csv
    python benchmarks/bench_pipeline.py --threads 2 --workers 1 --images 1000
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from lead_hub.data import load_parquet_split
from lead_hub.features import extract_features
from lead_hub.models import load_backbone

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAD_HUB_SHARED_DATA", REPOSITORY_ROOT.parent / "shared" / "data"))
RESULT_CSV = REPOSITORY_ROOT / "benchmarks" / "results" / "pipeline_speed.csv"
MODELS = ("mobilenetv1_025.coral_in1k", "mobilenetv2_100.coral_in1k", "tf_efficientnet_lite0.in1k")


class PeakMemory:
    """Largest resident set size (bytes) of this process while the context is open, sampled every ``interval`` s.

    Only this process is sampled (listing child processes scans /proc and would slow the runs it measures); the
    DataLoader workers' peak comes from ``worker_peak_rss`` after they exit.
    """

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, me.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def worker_peak_rss() -> int:
    """Largest resident set size (bytes) reached by any finished child process (the DataLoader workers)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def cpu_seconds() -> float:
    """CPU time (user + system) used so far by this process and its finished children (the DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def raw_forward(backbone, pixels: torch.Tensor, batch_size: int) -> float:
    """Seconds for the network alone on pre-decoded, pre-transformed pixels."""
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            backbone(pixels[start:start + batch_size])
    return time.perf_counter() - started


def benchmark_model(slug: str, images, args) -> dict:
    backbone = load_backbone(f"local-dir:{SHARED_DATA / 'zoo' / slug}", image_size=args.image_size)
    pixels = torch.stack([backbone.transform(images.image(i)) for i in range(len(images))])
    raw_forward(backbone, pixels[:args.batch_size], args.batch_size)  # warm-up: first-call allocations
    raw_rates, pipeline_rates, raw_peaks, pipeline_peaks, raw_cpu, pipeline_cpu = [], [], [], [], [], []
    for _ in range(args.repeats):
        cpu_before = cpu_seconds()
        with PeakMemory() as memory:
            seconds = raw_forward(backbone, pixels, args.batch_size)
        raw_cpu.append(cpu_seconds() - cpu_before)
        raw_rates.append(len(images) / seconds)
        raw_peaks.append(memory.peak)
        cpu_before = cpu_seconds()
        with PeakMemory() as memory:
            started = time.perf_counter()
            result = extract_features(backbone, images, batch_size=args.batch_size, num_workers=args.workers,
                                      progress=False)
            seconds = time.perf_counter() - started
        pipeline_cpu.append(cpu_seconds() - cpu_before)
        pipeline_rates.append(len(images) / seconds)
        pipeline_peaks.append(memory.peak)
    raw, pipeline = statistics.median(raw_rates), statistics.median(pipeline_rates)
    per_image_ms = 1000 / len(images)
    return {
        "model": slug,
        "target": args.target,
        "image_size": args.image_size,
        "images": len(images),
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "torch_threads": torch.get_num_threads(),
        "device": result.device,
        "raw_images_per_second": round(raw, 1),
        "pipeline_images_per_second": round(pipeline, 1),
        "pipeline_over_raw": round(pipeline / raw, 3),
        "raw_cpu_ms_per_image": round(statistics.median(raw_cpu) * per_image_ms, 2),
        "pipeline_cpu_ms_per_image": round(statistics.median(pipeline_cpu) * per_image_ms, 2),
        "raw_peak_rss_mb": round(max(raw_peaks) / 2**20),
        "pipeline_peak_rss_mb": round(max(pipeline_peaks) / 2**20),
        "worker_peak_rss_mb": round(worker_peak_rss() / 2**20),
        "repeats": args.repeats,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="eurosat")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the pipeline")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--output", type=Path, default=RESULT_CSV)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = load_parquet_split(SHARED_DATA / "targets" / args.target, "train")
    images = train.select(np.arange(min(args.images, len(train))))
    rows = []
    for slug in args.models:
        rows.append(benchmark_model(slug, images, args))
        print(rows[-1], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
