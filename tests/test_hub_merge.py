"""Merging rankings into a published leaderboard table: key, replacement, kept rows, re-ranking."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lead_hub.hub_merge import MERGE_KEY, canonical_value, merge_leaderboards, published_rows, row_keys, run_id
from lead_hub.leaderboard import Leaderboard


def ranking(dataset: str, scores: dict[str, float], *, seed: int = 0, metrics=("lead", "logme"),
            created: str = "2024-01-01T00:00:00+00:00") -> Leaderboard:
    """A leaderboard as lead_hub.ranking.rank builds it: the run's settings live in the provenance."""
    provenance = {
        "dataset": dataset, "split": "train", "dataset_revision": "0123abcd", "samples_per_class": 10,
        "max_samples": None, "seed": seed, "metrics": list(metrics),
        "metric_options": {name: {} for name in metrics}, "image_size": 224,
        "versions": {"lead-hub": "0.1.0"}, "created_utc": created,
    }
    rows = [{"model_id": model, "model_revision": f"rev-{model}", "lead": score, "logme": -score,
             "feature_dim": 64, "num_params": 1000 + index, "extract_seconds": 0.5, "score_seconds": 0.1, "notes": ""}
            for index, (model, score) in enumerate(scores.items())]
    return Leaderboard.from_rows(rows, provenance)


def published(board: Leaderboard) -> pd.DataFrame:
    return published_rows(board.table, board.provenance)


def test_published_rows_copy_the_run_settings_from_the_provenance():
    board = ranking("eurosat", {"a": 1.0, "b": 2.0})
    rows = published(board)
    assert set(rows["dataset"]) == {"eurosat"} and set(rows["dataset_revision"]) == {"0123abcd"}
    assert set(rows["samples_per_class"]) == {10} and set(rows["image_size"]) == {224}
    assert rows["max_samples"].isna().all()
    assert json.loads(rows["metric_settings"].iloc[0]) == {"metrics": ["lead", "logme"],
                                                           "options": {"lead": {}, "logme": {}}}
    assert set(rows["lead_hub_version"]) == {"0.1.0"}
    assert set(rows["run_id"]) == {run_id(board.provenance)}
    assert list(board.table.columns) == [c for c in rows.columns if c in board.table.columns]  # input untouched


def test_published_rows_name_what_a_provenance_less_table_lacks():
    board = ranking("eurosat", {"a": 1.0})
    with pytest.raises(ValueError, match="dataset, dataset_revision, split.*CSV does not"):
        published_rows(board.table, {"metrics": ["lead"]})
    with pytest.raises(ValueError, match="no rows"):
        published_rows(board.table.iloc[:0], board.provenance)


def test_run_id_depends_on_the_provenance_only():
    first = ranking("eurosat", {"a": 1.0}).provenance
    assert run_id(first) == run_id(dict(reversed(list(first.items()))))
    assert run_id(first) != run_id({**first, "seed": 1})
    assert len(run_id(first)) == 12


def test_canonical_values_make_parquet_round_trips_compare_equal():
    assert canonical_value(float("nan")) is None and canonical_value(None) is None and canonical_value(pd.NA) is None
    assert canonical_value(np.int64(10)) == canonical_value(10.0) == 10
    assert canonical_value('{"b": 1, "a": [1, 2]}') == canonical_value('{"a":[1,2],"b":1}')
    assert canonical_value(0.5) == 0.5 and canonical_value("train") == "train"


def test_merging_into_nothing_keeps_every_incoming_row():
    rows = published(ranking("eurosat", {"a": 1.0, "b": 2.0}))
    result = merge_leaderboards(None, rows)
    assert (result.added, result.replaced, result.kept) == (2, 0, 0)
    assert list(result.table["model_id"]) == ["b", "a"]


def test_other_datasets_and_settings_are_kept_and_same_keys_replaced():
    eurosat = published(ranking("eurosat", {"a": 1.0, "b": 2.0}))
    cifar = published(ranking("cifar", {"a": 5.0}))
    other_seed = published(ranking("eurosat", {"a": 7.0}, seed=1))
    table = merge_leaderboards(merge_leaderboards(eurosat, cifar).table, other_seed).table
    assert len(table) == 4

    rerun = published(ranking("eurosat", {"a": 3.0, "b": 4.0}, created="2024-02-01T00:00:00+00:00"))
    result = merge_leaderboards(table, rerun)
    assert (result.added, result.replaced, result.kept) == (0, 2, 2)
    merged = result.table
    assert len(merged) == 4
    seed0 = merged[(merged["dataset"] == "eurosat") & (merged["seed"] == 0)].set_index("model_id")
    assert seed0.loc["a", "lead"] == 3.0 and seed0.loc["b", "lead"] == 4.0
    assert merged.loc[merged["dataset"] == "cifar", "lead"].tolist() == [5.0]
    assert merged.loc[(merged["dataset"] == "eurosat") & (merged["seed"] == 1), "lead"].tolist() == [7.0]


def test_other_metric_sets_do_not_replace_rows():
    both = published(ranking("eurosat", {"a": 1.0}, metrics=("lead", "logme")))
    lead_only = published(ranking("eurosat", {"a": 9.0}, metrics=("lead",)))
    result = merge_leaderboards(both, lead_only)
    assert (result.added, result.replaced, result.kept) == (1, 0, 1)
    assert sorted(result.table["lead"]) == [1.0, 9.0]


def test_a_partial_rerun_is_reranked_over_the_whole_ranking():
    first = published(ranking("eurosat", {"a": 1.0, "b": 2.0, "c": 3.0}))
    partial = published(ranking("eurosat", {"a": 10.0}, created="2024-03-01T00:00:00+00:00"))
    merged = merge_leaderboards(first, partial).table.set_index("model_id")
    assert merged.loc["a", "rank"] == 1 and merged.loc["c", "rank"] == 2 and merged.loc["b", "rank"] == 3
    # a: best score, cheapest; b and c are dominated by a (larger, worse)
    assert merged["pareto"].to_dict() == {"a": True, "c": False, "b": False}
    assert merged.loc["a", "run_id"] != merged.loc["b", "run_id"]


def test_key_matching_survives_a_parquet_round_trip(tmp_path):
    rows = published(ranking("eurosat", {"a": 1.0, "b": 2.0}))
    path = tmp_path / "board.parquet"
    rows.to_parquet(path, index=False)
    result = merge_leaderboards(pd.read_parquet(path), rows)
    assert (result.added, result.replaced, result.kept) == (0, 2, 0)
    assert row_keys(result.table).is_unique


def test_duplicated_keys_and_missing_key_columns_are_refused():
    rows = published(ranking("eurosat", {"a": 1.0}))
    with pytest.raises(ValueError, match="more than once"):
        merge_leaderboards(None, pd.concat([rows, rows], ignore_index=True))
    with pytest.raises(ValueError, match="lacks the merge-key column\\(s\\) seed"):
        merge_leaderboards(None, rows.drop(columns="seed"))
    assert MERGE_KEY[-1] == "model_id"
