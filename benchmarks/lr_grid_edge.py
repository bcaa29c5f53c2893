"""The learning-rate grid's lower edge: extend the ground truth's grid below 1e-3 where 1e-3 won, resumably.

The protocol's grid is (0.1, 0.01, 0.001). Where 0.001 wins a pair, the best rate may lie below the grid, so the
pair gets a 1e-4 grid point and, where 1e-4 beats 1e-3 on validation, a 3e-4 grid point and the final runs at
the better of the two. Every run goes through ``benchmarks/ground_truth.py`` into ``ground_truth_runs_lr1e-4.csv``
(the low-rate runs; the protocol's runs stay in ``ground_truth_runs.csv``), so a rerun of this command skips what
is finished and goes on where it stopped. Steps run most informative first: final seeds 0-1 of development pairs
where the low rate won, then missing 1e-4 grid points of development pairs, then seeds 2-3 (the four-seed truth),
then the sanity target cifar10. The development pairs are those of all eleven development targets.

    nohup nice -n 15 python benchmarks/lr_grid_edge.py --stop-at 02:40 > /tmp/lr_grid_edge.log 2>&1 &
    python benchmarks/lr_grid_edge.py --parallel 14   # on a GPU machine: up to 14 pairs' steps at a time
    python benchmarks/lr_grid_edge.py --plan      # print the steps still to run, run nothing
    python benchmarks/lr_grid_edge.py --write-truth   # rewrite ground_truth.csv by the extended grid's rule

The truth's rule over the extended grid is :func:`lead_hub.finetune_truth.extended_grid_truth`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ground_truth  # noqa: E402

from benchmark import ADDED_DEVELOPMENT_TARGETS, DEVELOPMENT_TARGETS  # noqa: E402
from lead_hub.finetune import read_runs  # noqa: E402
from lead_hub.finetune_truth import EdgeStep, edge_steps  # noqa: E402

LOW_RATE_RUNS = ground_truth.LOW_RATE_RUNS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stop-at", default=None, help="HH:MM (machine clock): start no new step after it")
    parser.add_argument("--parallel", type=int, default=1,
                        help="run the steps of up to this many pairs at once, each in its own process (default 1)")
    parser.add_argument("--plan", action="store_true", help="print the steps still to run and exit")
    parser.add_argument("--write-truth", action="store_true",
                        help="rewrite ground_truth.csv from all runs by the extended grid's rule and exit")
    arguments = parser.parse_args(argv)
    if arguments.write_truth:
        write_truth(ground_truth.RESULTS / "ground_truth.csv")
        return 0
    if arguments.parallel < 1:
        parser.error("--parallel must be at least 1")
    deadline = _deadline(arguments.stop_at)
    running: dict[tuple[str, str], subprocess.Popen] = {}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="lead_hub_lr_grid_edge_") as scratch:
        while True:
            for pair, process in list(running.items()):
                if process.poll() is not None:
                    failed += process.returncode != 0
                    del running[pair]
            steps = planned_steps()
            if arguments.plan:
                for step in steps:
                    print(step)
                return 0
            past_deadline = deadline is not None and dt.datetime.now() > deadline
            if not failed and not past_deadline:
                for step in steps_to_start(steps, set(running), arguments.parallel - len(running)):
                    print(f"step: {step}", flush=True)
                    summary = Path(scratch) / f"{step.target}_{step.model}.csv"
                    running[(step.target, step.model)] = subprocess.Popen(step_command(step, summary))
            if running:
                _wait_any(running.values())
                continue
            if failed:
                print(f"{failed} step(s) failed (their output is above); rerun this command to resume", flush=True)
                return 1
            if steps:
                print(f"--stop-at {arguments.stop_at} reached with {len(steps)} steps left; rerun this command to "
                      "resume", flush=True)
            else:
                print("grid edge settled: no step left", flush=True)
            return 0


def planned_steps() -> list[EdgeStep]:
    """The steps still needed, most informative first (:func:`lead_hub.finetune_truth.edge_steps`)."""
    runs = read_runs(ground_truth.RESULTS / "ground_truth_runs.csv")
    low = read_runs(LOW_RATE_RUNS)
    return edge_steps(runs, low, (*DEVELOPMENT_TARGETS, *ADDED_DEVELOPMENT_TARGETS), ground_truth.TARGETS,
                      ground_truth.ZOO)


def steps_to_start(steps: list[EdgeStep], running_pairs: set[tuple[str, str]], free: int) -> list[EdgeStep]:
    """The first ``free`` steps of the plan whose (target, model) pair has no step running: a pair's next step
    depends on its last one's validation accuracy, so a pair never runs two steps at once."""
    chosen, pairs = [], set(running_pairs)
    for step in steps:
        if len(chosen) >= free:
            break
        if (step.target, step.model) not in pairs:
            chosen.append(step)
            pairs.add((step.target, step.model))
    return chosen


def step_command(step: EdgeStep, summary_csv: Path) -> list[str]:
    """The ``ground_truth.py`` call of one step; its runs go to the low-rate runs CSV (shared under a file lock)."""
    return [sys.executable, ground_truth.__file__, "--targets", step.target, "--models", step.model,
            "--runs-csv", str(LOW_RATE_RUNS), "--summary-csv", str(summary_csv),
            "--learning-rates", *(f"{rate:g}" for rate in step.learning_rates),
            "--seeds", *(str(seed) for seed in step.seeds), "--threads", "1"]


def _wait_any(processes, poll_seconds: float = 2.0) -> None:
    """Block until one of ``processes`` ends."""
    processes = list(processes)
    while all(process.poll() is None for process in processes):
        time.sleep(poll_seconds)


def write_truth(summary_csv: Path) -> None:
    """The committed ground truth (``ground_truth.write_summary``: the extended grid's rule), with a count of edges."""
    ground_truth.write_summary(ground_truth.RESULTS / "ground_truth_runs.csv", summary_csv, LOW_RATE_RUNS)
    print(f"wrote {summary_csv}: {pd.read_csv(summary_csv)['edge'].value_counts().to_dict()}")


def _deadline(clock: str | None) -> dt.datetime | None:
    if clock is None:
        return None
    hours, minutes = (int(part) for part in clock.split(":"))
    now = dt.datetime.now()
    deadline = now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    return deadline if deadline > now else deadline + dt.timedelta(days=1)


if __name__ == "__main__":
    raise SystemExit(main())
