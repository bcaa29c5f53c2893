"""Wall time and peak memory of LEAD on random-but-structured features, beside scikit-learn's LinearSVC.

Every measurement runs in its own subprocess (clean peak RSS, a hard time limit). Features: K class means in a
64-dimensional latent space mapped to D dimensions, unit noise, and 10% of the dimensions constant zero (as in
real zoo models). Usage:

    python benchmarks/bench_lead.py                 # the full grid of issue 2 → benchmarks/results/lead_speed.csv
    python benchmarks/bench_lead.py --quick         # N = 1k only, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "lead_speed.csv"
VARIANTS = {
    "lead default (ridge, out-of-fold)": {},
    "lead ridge in-sample": {"classifier": "ridge", "fit": "in_sample"},
    "lead ridge leave-one-out": {"classifier": "ridge", "fit": "leave_one_out"},
    "lead ovr_svm in-sample (paper)": {"classifier": "ovr_svm", "fit": "in_sample"},
    "lead ovr_svm out-of-fold": {"classifier": "ovr_svm", "fit": "out_of_fold"},
    "lead cs_svm in-sample": {"classifier": "cs_svm", "fit": "in_sample"},
    "lead cs_svm out-of-fold": {"classifier": "cs_svm", "fit": "out_of_fold"},
    "lead logistic in-sample": {"classifier": "logistic", "fit": "in_sample"},
    "lead logistic out-of-fold": {"classifier": "logistic", "fit": "out_of_fold"},
    "sklearn LinearSVC fit+decision_function": None,
}


def structured_features(samples: int, dims: int, classes: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.arange(samples) % classes
    latent_means = rng.standard_normal((classes, 64)) * 0.6
    mixing = rng.standard_normal((64, dims)).astype(np.float32) / 8.0
    latent = latent_means[labels] + rng.standard_normal((samples, 64))
    features = (latent.astype(np.float32) @ mixing) + rng.standard_normal((samples, dims), dtype=np.float32)
    features[:, : dims // 10] = 0.0
    return features, labels


def measure_one(samples: int, dims: int, classes: int, variant: str) -> dict:
    """Run in a child process: time one variant on freshly generated features; report peak RSS."""
    import resource

    features, labels = structured_features(samples, dims, classes)
    options = VARIANTS[variant]
    started = time.perf_counter()
    if options is None:
        from sklearn.svm import LinearSVC

        model = LinearSVC(random_state=0).fit(features, labels)
        model.decision_function(features)
    else:
        from lead_hub import metrics

        metrics.get("lead")(features, labels, **options)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_grid(sizes, dims_list, classes_list, time_limit: float, variants) -> list[dict]:
    rows, too_slow = [], set()
    for dims in dims_list:
        for classes in classes_list:
            for samples in sizes:
                for variant in variants:
                    row = {"N": samples, "D": dims, "K": classes, "variant": variant}
                    if (dims, classes, variant) in too_slow:
                        row.update(seconds=float("nan"), peak_rss_mib=float("nan"),
                                   status=f"skipped: exceeded {time_limit:.0f} s at a smaller N")
                    else:
                        row.update(_measure_in_subprocess(samples, dims, classes, variant, time_limit))
                        if row["status"] != "ok":
                            too_slow.add((dims, classes, variant))
                    rows.append(row)
                    print(f"N={samples:>6} D={dims:>5} K={classes:>4} {variant:<42} "
                          f"{row['seconds']:>8.2f} s {row['peak_rss_mib']:>8.0f} MiB  {row['status']}", flush=True)
    return rows


def _measure_in_subprocess(samples, dims, classes, variant, time_limit) -> dict:
    code = ("import json, sys; sys.path.insert(0, %r); import bench_lead; "
            "print(json.dumps(bench_lead.measure_one(%d, %d, %d, %r)))"
            % (str(Path(__file__).resolve().parent), samples, dims, classes, variant))
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=time_limit,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"seconds": float("nan"), "peak_rss_mib": float("nan"), "status": f"> {time_limit:.0f} s (stopped)"}
    if done.returncode != 0:
        return {"seconds": float("nan"), "peak_rss_mib": float("nan"), "status": "error: " + done.stderr[-200:]}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1000 only")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per measurement before giving up")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="VARIANT",
                        help="measure only these (default: all)")
    parser.add_argument("--sizes", nargs="+", type=int, help="override the N values")
    parser.add_argument("--dims", nargs="+", type=int, default=[512, 2048], help="the D values")
    parser.add_argument("--classes", nargs="+", type=int, default=[10, 100], help="the K values")
    arguments = parser.parse_args()
    sizes = arguments.sizes or ([1000] if arguments.quick else [1000, 10000, 50000])
    rows = run_grid(sizes, arguments.dims, arguments.classes, arguments.time_limit, arguments.variants)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(arguments.output, index=False)
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
