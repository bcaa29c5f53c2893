"""Wall time and peak memory of every registered metric on the same random-but-structured features.

Two problems: N=10,000, D=2,048, K=100 and N=50,000, D=2,048, K=10. Features (float32, like extracted ones):
class means plus Gaussian noise, both with a power-law spectrum (variance of dimension j ∝ j^-1.1), the means
scaled by 0.4 so that they explain about 14% of the variance, and one dimension in eight exactly zero (256 of
2,048, as in the zoo's zero-padded MobileNets). Measured on the zoo's MobileNetV2 / EfficientNet-Lite0 features
of 1,000 CIFAR-10 images: class means explain 10-15% of the variance and 13% of the dimensions hold 80% of it;
here 80% takes about 150 of the 2,048 dimensions. Source logits for LEEP/NCE: a fixed random projection of the features to 1,000
source classes. Each (metric, problem) runs in its own subprocess, which loads the arrays, calls the metric once
with its defaults and reports the call's wall time, the process's peak RSS (``ru_maxrss``) and its RSS before the
call (the loaded inputs). The load average before and after each run is recorded: the machine is shared.

    python benchmarks/bench_metrics.py                  # both problems → benchmarks/results/metric_speed.csv
    python benchmarks/bench_metrics.py --quick          # N=2,000, D=256 smoke run, nothing written
    python benchmarks/bench_metrics.py --metrics sfda gbc --problems 50k
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "metric_speed.csv"
PROBLEMS = {"10k": (10_000, 2_048, 100), "50k": (50_000, 2_048, 10)}
QUICK_PROBLEM = {"quick": (2_000, 256, 10)}
ZERO_FRACTION = 8  # one dimension in 8 is exactly zero: 256 of 2,048
SOURCE_CLASSES = 1_000
SPECTRUM_EXPONENT = 1.1
CLASS_MEAN_SCALE = 0.4
TIME_LIMIT_S = 900
FIELDS = ["metric", "samples", "features", "classes", "seconds", "peak_rss_gb", "input_rss_gb", "status",
          "load_before", "load_after", "threads", "value", "note"]


def write_problem(folder: Path, samples: int, dims: int, classes: int, seed: int = 0) -> None:
    """features.npy (N×D float32), labels.npy, source_logits.npy (N×1000 float32) in ``folder``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(samples) % classes)
    active = dims - dims // ZERO_FRACTION
    scale = (np.arange(1, active + 1, dtype=np.float32) ** (-SPECTRUM_EXPONENT / 2)).astype(np.float32)
    means = rng.standard_normal((classes, active), dtype=np.float32) * scale * np.float32(CLASS_MEAN_SCALE)
    features = np.zeros((samples, dims), dtype=np.float32)
    projection = rng.standard_normal((dims, SOURCE_CLASSES), dtype=np.float32) / np.float32(np.sqrt(active) * 0.1)
    logits = np.empty((samples, SOURCE_CLASSES), dtype=np.float32)
    for start in range(0, samples, 5_000):
        rows = slice(start, start + 5_000)
        noise = rng.standard_normal((len(labels[rows]), active), dtype=np.float32) * scale
        features[rows, :active] = means[labels[rows]] + noise
        logits[rows] = features[rows] @ projection
    np.save(folder / "features.npy", features)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "source_logits.npy", logits)


def run_one(metric: str, folder: Path) -> dict:
    """Inside the subprocess: time one call of ``metric`` on the arrays in ``folder``."""
    import resource
    import warnings

    import numpy as np

    from lead_hub import metrics

    features = np.load(folder / "features.npy")
    labels = np.load(folder / "labels.npy")
    extra = {"source_logits": np.load(folder / "source_logits.npy")} if metrics.info(metric).needs_source_logits else {}
    input_rss = _current_rss_gb()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        value = metrics.get(metric)(features, labels, **extra)
        seconds = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    notes = sorted({f"{type(w.message).__name__}: {str(w.message)[:120]}" for w in caught})
    return {"seconds": seconds, "peak_rss_gb": peak_rss, "input_rss_gb": input_rss, "value": repr(value),
            "note": " | ".join(notes)}


def _current_rss_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def measure(metric: str, folder: Path, shape: tuple[int, int, int], threads: int) -> dict:
    """One subprocess run of ``metric``, as a CSV row."""
    samples, dims, classes = shape
    row = {"metric": metric, "samples": samples, "features": dims, "classes": classes, "threads": threads,
           "load_before": round(os.getloadavg()[0], 2)}
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                   "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--run-one", metric, str(folder)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT_S, env=environment)
    except subprocess.TimeoutExpired:
        return {**row, "status": f"timeout > {TIME_LIMIT_S} s", "load_after": round(os.getloadavg()[0], 2)}
    row["load_after"] = round(os.getloadavg()[0], 2)
    if completed.returncode != 0:
        return {**row, "status": "error", "note": completed.stderr.strip().splitlines()[-1][:200]}
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return {**row, "status": "ok", "seconds": round(result["seconds"], 2),
            "peak_rss_gb": round(result["peak_rss_gb"], 2), "input_rss_gb": round(result["input_rss_gb"], 2),
            "value": result["value"], "note": result["note"]}


def markdown_table(rows: list[dict], problems: dict) -> str:
    """Metrics as rows, one seconds / peak-RSS column pair per problem."""
    header = ["metric"]
    for name, (samples, dims, classes) in problems.items():
        header += [f"N={samples:,} K={classes}: s", "peak RSS GB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in dict.fromkeys(row["metric"] for row in rows):
        cells = [metric]
        for samples, dims, classes in problems.values():
            match = [row for row in rows if row["metric"] == metric and row["samples"] == samples]
            if not match:
                cells += ["", ""]
            elif match[0]["status"] != "ok":
                cells += [match[0]["status"], ""]
            else:
                cells += [f"{match[0]['seconds']:.1f}", f"{match[0]['peak_rss_gb']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke problem; writes no CSV")
    parser.add_argument("--metrics", nargs="+", help="metric names (default: every registered metric)")
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), help="problems (default: both)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads per run (default: 2)")
    parser.add_argument("--run-one", nargs=2, metavar=("METRIC", "FOLDER"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.run_one:
        print(json.dumps(run_one(arguments.run_one[0], Path(arguments.run_one[1]))))
        return

    from lead_hub import metrics

    names = arguments.metrics or metrics.available()
    problems = QUICK_PROBLEM if arguments.quick else {name: PROBLEMS[name] for name in arguments.problems or PROBLEMS}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as scratch:
        for problem, shape in problems.items():
            folder = Path(scratch) / problem
            folder.mkdir()
            write_problem(folder, *shape)
            for name in names:
                rows.append(measure(name, folder, shape, arguments.threads))
                print(json.dumps(rows[-1]), flush=True)
    if not arguments.quick:
        rows = merged_with_previous(rows)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        problems = PROBLEMS
    print(markdown_table(rows, problems))


def merged_with_previous(rows: list[dict]) -> list[dict]:
    """The rows of the CSV already written, with those measured again replaced (a partial rerun keeps the rest)."""
    if not RESULTS.exists():
        return rows
    measured = {(row["metric"], row["samples"]) for row in rows}
    with RESULTS.open(newline="") as handle:
        previous = [row for row in csv.DictReader(handle) if (row["metric"], int(row["samples"])) not in measured]
    for row in previous:
        row["samples"] = int(row["samples"])
        if row["status"] == "ok":
            row["seconds"], row["peak_rss_gb"] = float(row["seconds"]), float(row["peak_rss_gb"])
    return previous + rows


if __name__ == "__main__":
    main()
