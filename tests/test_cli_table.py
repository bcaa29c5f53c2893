"""The console table at any terminal width, the warnings under it, and a leaderboard as a notebook shows it."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from rich.console import Console
from test_ranking import image_folder, models  # noqa: F401 - pytest fixtures

from lead_hub.cli import main
from lead_hub.leaderboard import Leaderboard, display_names, ranking_warnings

LONG_IDS = [
    "local-dir:/home/someone/projects/vision/checkpoints/vit_base_patch16_224.augreg2_in21k_ft_in1k",
    "hf-hub:timm/convnext_tiny.fb_in22k_ft_in1k",
    "local-dir:/tmp/pytest-of-someone/pytest-12/models0/first",
    "timm/resnet18.a1_in1k",
    "other-owner/resnet18.a1_in1k",
]
PROVENANCE = {"dataset": "eurosat", "split": "train", "samples": 40, "metrics": ["lead", "logme", "hscore"]}


def _board(scores: dict[str, tuple[float, float, float]], feature_dim: int = 16) -> Leaderboard:
    rows = [{"model_id": model_id, "model_revision": "sha256:00", "lead": lead, "logme": logme, "hscore": hscore,
             "feature_dim": feature_dim, "num_params": 1_000_000 * (index + 1), "extract_seconds": 12.5,
             "score_seconds": 0.25, "notes": ""}
            for index, (model_id, (lead, logme, hscore)) in enumerate(scores.items())]
    return Leaderboard.from_rows(rows, PROVENANCE)


def _printed(board: Leaderboard, monkeypatch, columns: int) -> str:
    """What ``lead-hub rank`` prints for ``board`` with COLUMNS set and no terminal (its Console, on a file)."""
    monkeypatch.setenv("COLUMNS", str(columns))
    stream = io.StringIO()
    Console(file=stream).print(board)
    return stream.getvalue()


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_table_shows_whole_short_names_within_the_width(monkeypatch, columns):
    board = _board({model_id: (-float(index), 0.1 * index, 2.0 + index) for index, model_id in enumerate(LONG_IDS)})
    text = _printed(board, monkeypatch, columns)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= columns
    names = display_names(LONG_IDS)
    assert names[LONG_IDS[0]] == "vit_base_patch16_224.augreg2_in21k_ft_in1k"
    assert names[LONG_IDS[3]] == "timm/resnet18.a1_in1k" and names[LONG_IDS[4]] == "other-owner/resnet18.a1_in1k"
    for name in names.values():  # each name whole on one line, between spaces: never cut or folded
        assert any(re.search(rf"(^|\s){re.escape(name)}(\s|$)", line) for line in lines), (name, text)
    assert "local-dir:" not in text and "/home/someone" not in text
    assert "lead" in lines[2] and "rank" in lines[2]  # the primary score is always shown
    if columns >= 200:
        assert "extract s" in text and "logme" in text


def test_saturated_ties_and_missing_scores_are_warned_under_the_table(monkeypatch):
    # Three 64-dim models on 40 samples: H-score's K−1 ceiling (here 9) for all of them.
    board = _board({"a/wide": (-1.0, 0.5, 9.0), "b/wide": (-2.0, np.nan, 9.0), "c/wide": (-3.0, 0.2, 9.0)},
                   feature_dim=64)
    warnings = board.warnings
    assert len(warnings) == 2
    missing, tie = warnings
    assert tie.startswith("hscore cannot rank 3 models that all score 9 (a/wide, b/wide, c/wide): their features "
                          "have at least N − 1 dimensions for N = 40 samples, where hscore saturates")
    assert "saturates" in tie and "more samples per class" in tie and "another metric" in tie
    assert missing.startswith("logme has no score for 1 of 3 models (b/wide)")
    text = _printed(board, monkeypatch, 80)
    assert text.index("warning: hscore cannot rank") > text.index("rank")
    assert "warning: logme has no score" in text


def test_equal_scores_of_narrow_features_are_warned_without_the_saturation_advice():
    board = _board({"a": (-1.0, 0.5, 2.0), "b": (-1.0, 0.25, 1.0)}, feature_dim=4)
    assert ranking_warnings(board.table, board.metrics, samples=40) == [
        "lead cannot rank 2 models that all score -1 (a, b): equal scores do not order them. Compare them with "
        "another metric."]
    assert _board({"a": (-1.0, 0.5, 2.0), "b": (-1.5, 0.25, 1.0)}).warnings == []


def test_repr_and_html_show_the_ranked_table():
    board = _board({"hf-hub:timm/x<script>": (-2.0, 0.1, 1.0), "timm/best": (-1.0, 0.2, 2.0)})
    text = repr(board)
    assert text == str(board)
    assert "Leaderboard(table=" not in text
    assert text.index("best") < text.index("x<script>")  # ranked order, best first
    html = board._repr_html_()
    assert html.startswith("<table>") and "<script>" not in html and "x&lt;script&gt;" in html
    assert html.index("best") < html.index("x&lt;script&gt;")


def test_rank_command_at_60_columns_prints_whole_names(models, image_folder, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("COLUMNS", "60")
    code = main(["rank", "--models", models["first"], models["headless"], "--dataset", str(image_folder),
                 "--metric-option", "lead.folds=2", "--metric-option", "lead.head_widths=[16]", "--image-size",
                 "32", "--no-cache", "--quiet"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 60
    for name in ("first", "headless"):
        assert any(re.search(rf"(^|\s){name}(\s|$)", line) for line in lines)
