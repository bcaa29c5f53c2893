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
