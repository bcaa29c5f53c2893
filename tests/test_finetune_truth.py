"""The ground truth over the learning-rate grid extended below 1e-3, and the runs still needed to settle it."""

from __future__ import annotations

import pandas as pd
import pytest

from lead_hub.finetune_truth import edge_steps, extended_grid_truth, final_runs, grid_table, pairs_in_progress


def _run(model, target, phase, lr, seed, val=0.0, test=0.0):
    return {"model": model, "target": target, "phase": phase, "lr": lr, "seed": seed, "val_acc": val,
            "test_acc": test, "test_mean_class_acc": test}


def _protocol(model, target, best_val_at_edge=0.8, finals=(0.70, 0.72)):
    """Protocol grid where 1e-3 wins, and its final runs of seeds 0-3 (test accuracies ``finals`` repeated)."""
    rows = [_run(model, target, "grid", lr, 0, val) for lr, val in ((0.1, 0.1), (0.01, 0.5), (0.001, best_val_at_edge))]
    rows += [_run(model, target, "final", 0.001, seed, test=finals[seed % 2]) for seed in range(4)]
    return rows


def test_the_truth_takes_the_lower_rate_only_where_the_grid_is_settled_and_its_finals_recorded():
    protocol = pd.DataFrame(_protocol("a", "t") + _protocol("b", "t") + _protocol("c", "t") + _protocol("d", "t")
                            + _protocol("e", "t"))
    low = pd.DataFrame([
        # a: 1e-4 loses → settled at 1e-3
        _run("a", "t", "grid", 0.0001, 0, 0.7),
        # b: 1e-4 wins, 3e-4 not run yet → unsettled, keeps 1e-3
        _run("b", "t", "grid", 0.0001, 0, 0.9), _run("b", "t", "final", 0.0001, 0, test=0.9),
        # c: 1e-4 wins, 3e-4 wins more, finals at 3e-4 for seeds 0-1 → extended to 3e-4
        _run("c", "t", "grid", 0.0001, 0, 0.85), _run("c", "t", "grid", 0.0003, 0, 0.95),
        _run("c", "t", "final", 0.0003, 0, test=0.80), _run("c", "t", "final", 0.0003, 1, test=0.84),
        # d: 1e-4 wins, 3e-4 loses, only seed 0 at 1e-4 → finals missing, keeps 1e-3
        _run("d", "t", "grid", 0.0001, 0, 0.85), _run("d", "t", "grid", 0.0003, 0, 0.81),
        _run("d", "t", "final", 0.0001, 0, test=0.9)])
    table = grid_table(protocol, low).set_index("model")
    assert table["settled"].to_dict() == {"a": True, "b": False, "c": True, "d": True, "e": False}
    assert table.loc["c", "extended_lr"] == 0.0003 and table.loc["d", "extended_lr"] == 0.0001
    truth = extended_grid_truth(protocol, low).set_index("model")
    assert truth["edge"].to_dict() == {"a": "extended", "b": "grid unsettled", "c": "extended",
                                       "d": "finals missing at 0.0001", "e": "grid unsettled"}
    assert truth["best_lr"].to_dict() == {"a": 0.001, "b": 0.001, "c": 0.0003, "d": 0.001, "e": 0.001}
    assert truth.loc["c", "test_acc"] == pytest.approx(0.82) and truth.loc["a", "test_acc"] == pytest.approx(0.71)
    # every recorded seed at the chosen rate comes back (the bootstrap's pool), the truth uses seeds 0-1
    assert sorted(final_runs(protocol, low).query("model == 'a'")["seed"]) == [0, 1, 2, 3]
    steps = edge_steps(protocol, low, development_targets=("t",))
    assert [(step.model, step.learning_rates, step.seeds) for step in steps] == [
        ("b", (0.0003, 0.0001), (0, 1)), ("d", (0.0003, 0.0001), (0, 1)), ("e", (0.0001,), (0,)), ("c", (0.0003, 0.0001), (0, 1, 2, 3))]


def test_a_pair_in_progress_has_no_truth_and_is_listed():
    """A pair whose protocol grid or finals are still running is left out of the truth, not guessed."""
    complete = pd.DataFrame(_protocol("a", "t"))
    no_grid_point = pd.DataFrame(_protocol("b", "t")).query("lr != 0.1 or phase != 'grid'")
    one_final = pd.DataFrame(_protocol("c", "t")).query("phase != 'final' or seed != 1")
    protocol = pd.concat([complete, no_grid_point, one_final], ignore_index=True)
    low = pd.DataFrame(columns=protocol.columns)
    assert grid_table(protocol, low)["model"].tolist() == ["a", "c"]
    assert extended_grid_truth(protocol, low)["model"].tolist() == ["a"]
    assert pairs_in_progress(protocol, low) == [("b", "t"), ("c", "t")]
