"""Wall time of the README's demo ranking on this machine's cores, idle and with one core taken by another process,
with lead_hub's thread choice (:mod:`lead_hub.threads`) against the old default (one thread per core).

Each run is the command ``lead-hub rank --zoo demo --dataset demo --image-size 64 --no-cache --quiet`` in a fresh
process. "one core busy" starts a pure-Python busy loop (``while True: pass``, nice 0) two seconds before the run
and stops it after; "idle" starts nothing (other users of a shared machine are not controlled: the 1-minute load
average and the busy CPUs measured just before each run are recorded beside its time). ``auto`` is lead_hub's
choice; ``2`` sets ``LEAD_HUB_THREADS=2``, which is what torch and OpenBLAS use on their own on 2 cores. The
settings alternate within each repeat so that a change of the machine's load hits all of them alike.

    python benchmarks/bench_threads.py --repeats 3        # writes benchmarks/results/threads_demo.csv
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from lead_hub import threads

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
RESULT_CSV = REPOSITORY_ROOT / "benchmarks" / "results" / "threads_demo.csv"
COMMAND = [sys.executable, "-m", "lead_hub.cli", "rank", "--zoo", "demo", "--dataset", "demo", "--image-size", "64",
           "--no-cache", "--quiet"]
SETTINGS = ("auto", "2")
CONDITIONS = ("one core busy", "idle")
BUSY_LOOP = [sys.executable, "-c", "while True: pass"]


def run_once(condition: str, setting: str) -> dict:
    """One timed demo ranking under ``condition`` with thread ``setting``."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in (*threads.USER_SETTINGS, threads.OVERRIDE)}
    if setting != "auto":
        environment[threads.OVERRIDE] = setting
    loop = subprocess.Popen(BUSY_LOOP) if condition == "one core busy" else None
    try:
        if loop is not None:
            time.sleep(2.0)
        busy = threads.busy_cpus(0.5)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        finished = subprocess.run(COMMAND, cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    finally:
        if loop is not None:
            loop.terminate()
            loop.wait()
    if finished.returncode != 0:
        raise RuntimeError(f"the demo command failed ({finished.returncode}): {finished.stderr[-2000:]}")
    return {"condition": condition, "threads": setting, "seconds": round(seconds, 2),
            "busy_cpus_before": round(busy, 2), "load_average_1min": round(load, 2),
            "allowed_cpus": threads.allowed_cpus()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--output", type=Path, default=RESULT_CSV)
    arguments = parser.parse_args()
    rows = []
    for repeat in range(arguments.repeats):
        for condition in arguments.conditions:
            for setting in SETTINGS if repeat % 2 == 0 else SETTINGS[::-1]:
                row = {"repeat": repeat, **run_once(condition, setting)}
                print(row, flush=True)
                rows.append(row)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(arguments.output, index=False)
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
