"""benchmarks/ground_truth.py shares the grid between workers: exclusive claims, pairs picked up as their inputs
arrive, the stop deadline, and the options a --parallel parent does not forward to its workers."""

from __future__ import annotations

import argparse
import sys
import threading
import time

from conftest import REPOSITORY_ROOT

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
import ground_truth  # noqa: E402


def test_a_pair_is_claimed_by_exactly_one_worker(tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(ground_truth.claim(tmp_path, "eurosat", "m")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert ground_truth.claim(tmp_path, "eurosat", "other")


def _arguments(tmp_path, **overrides) -> argparse.Namespace:
    values = dict(zoo_dir=tmp_path / "zoo", targets_dir=tmp_path / "targets", stop_after=None, wait_for_inputs=0.0,
                  worker="0/1")
    return argparse.Namespace(**{**values, **overrides})


def test_pairs_without_inputs_are_skipped_then_picked_up_when_their_folder_arrives(tmp_path):
    (tmp_path / "targets" / "eurosat").mkdir(parents=True)
    (tmp_path / "zoo" / "ready").mkdir(parents=True)
    pairs = [("eurosat", "ready"), ("eurosat", "late")]
    assert list(ground_truth._pairs_as_inputs_arrive(pairs, _arguments(tmp_path), time.perf_counter())) == [pairs[0]]

    arriving = ground_truth._pairs_as_inputs_arrive(pairs, _arguments(tmp_path, wait_for_inputs=30.0),
                                                    time.perf_counter())
    assert next(arriving) == pairs[0]
    (tmp_path / "zoo" / "late").mkdir()  # copied in while the worker runs
    assert next(arriving) == pairs[1]
    assert list(arriving) == []


def test_no_pair_is_started_after_the_stop_deadline(tmp_path):
    (tmp_path / "targets" / "eurosat").mkdir(parents=True)
    (tmp_path / "zoo" / "m").mkdir(parents=True)
    started = time.perf_counter() - 10
    assert list(ground_truth._pairs_as_inputs_arrive([("eurosat", "m")], _arguments(tmp_path, stop_after=5.0),
                                                     started)) == []


def test_the_parallel_parent_forwards_everything_but_its_own_options():
    argv = ["--parallel", "4", "--claim-dir=/tmp/c", "--worker", "0/2", "--epochs", "1", "--targets", "eurosat"]
    assert ground_truth._without_options(argv, ("--parallel", "--claim-dir", "--worker")) == [
        "--epochs", "1", "--targets", "eurosat"]


def test_the_parallel_grid_edge_never_runs_two_steps_of_one_pair_and_keeps_the_plans_order():
    import lr_grid_edge
    from lead_hub.finetune_truth import EdgeStep

    plan = [EdgeStep("t", "a", (0.0003, 0.0001), (0, 1), "1e-4 won"), EdgeStep("t", "b", (0.0001,), (0,), "missing"),
            EdgeStep("u", "a", (0.0001,), (0,), "missing"), EdgeStep("t", "c", (0.0001,), (0,), "missing")]
    started = lr_grid_edge.steps_to_start(plan, {("t", "b")}, free=2)
    assert [(step.target, step.model) for step in started] == [("t", "a"), ("u", "a")]
    assert lr_grid_edge.steps_to_start(plan, set(), free=0) == []
    command = lr_grid_edge.step_command(plan[0], tmp_summary := REPOSITORY_ROOT / "x.csv")
    assert command[command.index("--runs-csv") + 1] == str(lr_grid_edge.LOW_RATE_RUNS)
    assert command[command.index("--summary-csv") + 1] == str(tmp_summary)
    assert command[command.index("--learning-rates") + 1:command.index("--seeds")] == ["0.0003", "0.0001"]
    assert command[command.index("--seeds") + 1:command.index("--threads")] == ["0", "1"]
