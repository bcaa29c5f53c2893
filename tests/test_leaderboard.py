"""Leaderboard: ranking order, the Pareto flag, and round trips through every file format."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from lead_hub.leaderboard import Leaderboard, pareto_front

PROVENANCE = {
    "dataset": "hand-made",
    "split": "train",
    "samples": 40,
    "seed": 3,
    "metrics": ["lead", "logme"],
    "metric_options": {"lead": {"rate_scale": "standardize"}, "logme": {}},
    "versions": {"lead_hub": "0.1.0"},
}


def _row(model_id, lead, logme, params, notes=""):
    return {"model_id": model_id, "model_revision": f"sha256:{model_id * 4}", "lead": lead, "logme": logme,
            "feature_dim": 16, "num_params": params, "extract_seconds": 1.25, "score_seconds": 0.5, "notes": notes}


@pytest.fixture
def leaderboard() -> Leaderboard:
    rows = [
        _row("small", -1.2, 0.3, 1_000),
        _row("medium", -0.8, np.nan, 5_000, "logme: not applicable (no head)"),
        _row("large-worse", -1.0, 0.9, 9_000),
        _row("broken", np.nan, 0.1, 500, "lead failed: RuntimeError('out of memory')"),
        _row("large-best", -0.4, 0.2, 20_000),
    ]
    per_class = pd.DataFrame({"model_id": ["small", "small"], "class_index": [0, 1], "class_name": ["a", "b"],
                              "samples": [20, 20], "lead_class_eigenvalues": [3.5, 4.25]})
    return Leaderboard.from_rows(rows, PROVENANCE, per_class)


def test_sorted_by_primary_metric_with_missing_scores_last(leaderboard):
    assert leaderboard.table["model_id"].tolist() == ["large-best", "medium", "large-worse", "small", "broken"]
    assert leaderboard.table["rank"].tolist()[:4] == [1, 2, 3, 4]
    assert leaderboard.table["rank"].isna().tolist() == [False] * 4 + [True]
    assert leaderboard.best_model == "large-best"
    assert list(leaderboard.table.columns) == ["rank", "model_id", "model_revision", "lead", "logme", "feature_dim",
                                               "num_params", "extract_seconds", "score_seconds", "process", "pareto",
                                               "notes"]


def test_equal_scores_share_a_rank():
    rows = [_row("a", -1.0, 0.0, 10), _row("b", -1.0, 0.0, 20), _row("c", -2.0, 0.0, 5)]
    table = Leaderboard.from_rows(rows, PROVENANCE).table
    assert table["rank"].tolist() == [1, 1, 3]


def test_pareto_flag_on_the_score_versus_size_front(leaderboard):
    flags = dict(zip(leaderboard.table["model_id"], leaderboard.table["pareto"]))
    # small (1k) is the smallest scored model; medium beats it with 5k; large-worse (9k) is beaten by the smaller
    # medium; large-best has the best score; broken has no primary score.
    assert flags == {"small": True, "medium": True, "large-worse": False, "large-best": True, "broken": False}


def test_pareto_front_ties_and_missing_values():
    scores = np.array([1.0, 1.0, 2.0, np.nan, 2.0])
    sizes = np.array([10.0, 20.0, 30.0, 1.0, np.nan])
    # model 1 is as good as model 0 but larger; model 2 is better than both; 3 and 4 lack a value.
    assert pareto_front(scores, sizes).tolist() == [True, False, True, False, False]


@pytest.mark.parametrize("extension", ["json", "parquet", "md"])
def test_round_trip_keeps_table_and_provenance(leaderboard, tmp_path, extension):
    path, = leaderboard.save(tmp_path, formats=(extension,))
    loaded = Leaderboard.load(path)
    pd.testing.assert_frame_equal(loaded.table, leaderboard.table, check_exact=False, rtol=1e-5)
    assert loaded.provenance == leaderboard.provenance


def test_csv_round_trip_keeps_the_table(leaderboard, tmp_path):
    path, = leaderboard.save(tmp_path, formats=("csv",))
    loaded = Leaderboard.load(path)
    pd.testing.assert_frame_equal(loaded.table, leaderboard.table)
    assert loaded.metrics == ["lead", "logme"]


def test_json_keeps_per_class_diagnostics_and_writes_null_for_nan(leaderboard, tmp_path):
    path, = leaderboard.save(tmp_path, formats=("json",))
    document = json.loads(path.read_text())
    assert document["table"][-1]["lead"] is None
    loaded = Leaderboard.load(path)
    pd.testing.assert_frame_equal(loaded.per_class, leaderboard.per_class)


def test_parquet_holds_provenance_in_schema_metadata(leaderboard, tmp_path):
    import pyarrow.parquet as pq

    path, = leaderboard.save(tmp_path, formats=("parquet",))
    metadata = pq.read_schema(path).metadata
    assert json.loads(metadata[b"lead_hub.provenance"])["seed"] == 3


def test_png_chart_is_written(leaderboard, tmp_path):
    path, = leaderboard.save(tmp_path, formats=("png",))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5_000


def test_markdown_shows_missing_scores_as_empty_cells(leaderboard):
    text = leaderboard.to_markdown()
    broken_line = next(line for line in text.splitlines() if "| broken |" in line)
    assert "|  | broken |" in broken_line and "lead failed" in broken_line


def test_rich_table_lists_every_model(leaderboard):
    console = Console(record=True, width=200)
    console.print(leaderboard)
    text = console.export_text()
    for model_id in leaderboard.table["model_id"]:
        assert model_id in text
    assert "n/a" in text
    assert "broken: lead failed: RuntimeError('out of memory')" in text  # the notes, as a caption


def test_load_rejects_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="expected one of"):
        Leaderboard.load(tmp_path / "board.xlsx")
    with pytest.raises(ValueError, match="unknown leaderboard formats"):
        Leaderboard.from_rows([_row("a", 1.0, 1.0, 1)], PROVENANCE).save(tmp_path, formats=("xlsx",))
