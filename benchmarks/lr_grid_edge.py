"""The learning-rate grid's lower edge: extend the ground truth's grid below 1e-3 where 1e-3 won, resumably.

The protocol's grid is (0.1, 0.01, 0.001). Where 0.001 wins a pair, the best rate may lie below the grid, so the
pair gets a 1e-4 grid point and, where 1e-4 beats 1e-3 on validation, a 3e-4 grid point and the final runs at
the better of the two. Every run goes through ``benchmarks/ground_truth.py`` into ``ground_truth_runs_lr1e-4.csv``
(the low-rate runs; the protocol's runs stay in ``ground_truth_runs.csv``), so a rerun of this command skips what
is finished and goes on where it stopped. Steps run most informative first: final seeds 0-1 of development pairs
where the low rate won, then missing 1e-4 grid points of development pairs, then seeds 2-3 (the four-seed truth),
then the sanity target cifar10. The development pairs are those of all eleven development targets.

    nohup nice -n 15 python benchmarks/lr_grid_edge.py --stop-at 02:40 > /tmp/lr_grid_edge.log 2>&1 &
    python benchmarks/lr_grid_edge.py --plan      # print the steps still to run, run nothing
    python benchmarks/lr_grid_edge.py --write-truth   # rewrite ground_truth.csv by the extended grid's rule

The truth's rule over the extended grid is :func:`lead_hub.finetune_truth.extended_grid_truth`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ground_truth  # noqa: E402

from benchmark import ADDED_DEVELOPMENT_TARGETS, DEVELOPMENT_TARGETS  # noqa: E402
from lead_hub.finetune import read_runs  # noqa: E402
from lead_hub.finetune_truth import edge_steps  # noqa: E402

LOW_RATE_RUNS = ground_truth.LOW_RATE_RUNS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stop-at", default=None, help="HH:MM (machine clock): start no new step after it")
    parser.add_argument("--plan", action="store_true", help="print the steps still to run and exit")
    parser.add_argument("--write-truth", action="store_true",
                        help="rewrite ground_truth.csv from all runs by the extended grid's rule and exit")
    arguments = parser.parse_args(argv)
    if arguments.write_truth:
        write_truth(ground_truth.RESULTS / "ground_truth.csv")
        return 0
    deadline = _deadline(arguments.stop_at)
    while True:
        runs = read_runs(ground_truth.RESULTS / "ground_truth_runs.csv")
        low = read_runs(LOW_RATE_RUNS)
        steps = edge_steps(runs, low, (*DEVELOPMENT_TARGETS, *ADDED_DEVELOPMENT_TARGETS), ground_truth.TARGETS,
                           ground_truth.ZOO)
        if arguments.plan:
            for step in steps:
                print(step)
            return 0
        if not steps:
            print("grid edge settled: no step left", flush=True)
            return 0
        if deadline is not None and dt.datetime.now() > deadline:
            print(f"--stop-at {arguments.stop_at} reached with {len(steps)} steps left; rerun this command to resume",
                  flush=True)
            return 0
        step = steps[0]
        print(f"step: {step}", flush=True)
        code = ground_truth.main([
            "--targets", step.target, "--models", step.model, "--runs-csv", str(LOW_RATE_RUNS),
            "--summary-csv", str(Path("/tmp") / "lead_hub_lr_grid_edge_summary.csv"),
            "--learning-rates", *(f"{rate:g}" for rate in step.learning_rates),
            "--seeds", *(str(seed) for seed in step.seeds), "--threads", "1"])
        if code:
            return code


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
