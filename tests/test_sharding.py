"""lead_hub.sharding: the cost-balanced plan, the hand-over files and the report of a stopped ranking, in one process
(the two-process launch itself is tested in test_ranking)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest

from lead_hub import features, sharding
from lead_hub.ranking import rank


def test_longest_processing_time_balances_the_estimated_cost():
    costs = {"a": 7, "b": 5, "c": 4, "d": 3, "e": 3, "f": 2}
    shares = sharding.assign_by_cost(costs, 2)
    assert sorted(model for share in shares for model in share) == sorted(costs)
    assert [sum(costs[model] for model in share) for share in shares] == [12, 12]
    assert shares == [["a", "d", "f"], ["b", "c", "e"]]  # each share in the candidates' order
    assert sharding.assign_by_cost(costs, 1) == [list(costs)]
    assert sharding.assign_by_cost({"a": 1}, 3) == [["a"], [], []]


def test_an_unknown_cost_counts_as_the_median_of_the_known_ones():
    shares = sharding.assign_by_cost({"big": 10, "unknown": None, "small": 2, "medium": 6}, 2)
    assert shares == [["big", "small"], ["unknown", "medium"]]  # unknown = 6: 10 + 2 against 6 + 6
    assert sharding.assign_by_cost({"x": None, "y": None}, 2) == [["x"], ["y"]]
    with pytest.raises(ValueError, match="processes must be at least 1"):
        sharding.assign_by_cost({"a": 1}, 0)


def test_model_size_comes_from_the_weight_files_of_a_folder_else_the_stated_count(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(bytes(4000))
    assert sharding.estimated_parameters(f"local-dir:{tmp_path}", stated=5) == 1000
    assert sharding.estimated_parameters(f"local-dir:{tmp_path / 'missing'}", stated=5) == 5
    assert sharding.estimated_parameters("owner/model", stated=None) is None


def test_a_record_reads_back_exactly(tmp_path):
    run = sharding.RunFolder(tmp_path / "runs" / "one")
    norms = np.random.default_rng(0).standard_normal(7)
    norms[3] = np.nan
    record = sharding.ModelRecord(4, 1, {"model_id": "m", "lead": float("nan"), "num_params": None, "process": 1},
                                  ["a note"], "/cache/m-0123", {"sample_ids": np.arange(7), "ntk_sq_norms": norms})
    run.write_record(record)
    (back,) = run.finished_records(skip=set())
    assert (back.index, back.process, back.notes, back.features_folder) == (4, 1, ["a note"], "/cache/m-0123")
    assert back.row["model_id"] == "m" and np.isnan(back.row["lead"]) and back.row["num_params"] is None
    np.testing.assert_array_equal(back.sample_arrays["ntk_sq_norms"], norms)
    assert back.sample_arrays["sample_ids"].dtype == np.arange(7).dtype
    assert run.finished_records(skip={4}) == []


def test_a_process_that_never_shows_up_is_named_with_the_fix(tmp_path):
    run = sharding.RunFolder(tmp_path / "run")
    run.mark_ready(0)
    with pytest.raises(ValueError, match=r"process\(es\) \[1\] did not appear .* filesystem they share"):
        run.wait_until_ready(2, timeout=0.2)


def test_sigterm_stops_the_main_process_with_the_models_left_undone():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(sharding.RankingStopped) as stopped:
        with sharding.sigterm_raises(lambda: sharding.unfinished_report([["a", "b"], ["c", "d"]], {"a"})):
            os.kill(os.getpid(), signal.SIGTERM)
    assert str(stopped.value).endswith("models not ranked: process 0: b; process 1: c, d; every finished model is "
                                       "in the cache: rerun the same command to resume")
    assert signal.getsignal(signal.SIGTERM) is before
    assert not issubclass(sharding.RankingStopped, Exception)  # a model's `except Exception` must not swallow it


def test_rank_under_several_processes_needs_the_shared_cache(monkeypatch):
    monkeypatch.setattr(features, "_process_state",
                        lambda: SimpleNamespace(num_processes=2, process_index=0, is_main_process=True))
    with pytest.raises(ValueError, match="2 processes.*pass cache_dir"):
        rank(["owner/model"], "demo", metrics=["logme"], cache_dir=None)
