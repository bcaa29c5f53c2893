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
    header = next(line for line in lines if line.split()[:2] == ["rank", "model"])
    assert "lead" in header  # the primary score is always shown
    for metric in ("logme", "hscore"):  # a secondary score is shown, or named as not shown
        assert metric in header.split() or re.search(rf"not shown at {columns} columns: .*{metric}", text)
    if columns >= 200:
        assert "extract s" in text and "logme" in text


DEMO_NAMES = ["mobilenetv1_100.coral_in1k_emb", "mobilenetv1_075.coral_in1k", "mobilenetv2_100.coral_inat_bird",
              "mobilenetv1_050.coral_in1k", "mobilenetv1_025.coral_in1k", "mobilenetv1_025.mlperf_vww"]
FIVE_METRICS = ["lead", "logme", "sfda", "hscore", "pactran"]


def _demo_board() -> Leaderboard:
    """The demo zoo's names with five scores of the widths the demo ranking prints (e.g. 0.03904, -0.7163)."""
    rows = [{"model_id": f"local-dir:/abs/path/demo/models/{name}", "model_revision": "sha256:00",
             "lead": -0.8189 - index / 7, "logme": 0.03904 - index / 9, "sfda": 0.2444 + index, "hscore": 8.729,
             "pactran": -0.7163 - index / 3, "feature_dim": 1024, "num_params": 3_206_976, "extract_seconds": 1.5,
             "score_seconds": 0.25, "notes": ""} for index, name in enumerate(DEMO_NAMES)]
    return Leaderboard.from_rows(rows, {**PROVENANCE, "metrics": FIVE_METRICS})


def test_every_requested_score_fits_80_columns_before_any_is_left_out(monkeypatch):
    """Issue: `lead-hub rank ... --metrics lead logme sfda hscore pactran | cat` at 80 columns dropped pactran
    silently. The times and the size go first and the columns pack closer, so the five scores fit."""
    text = _printed(_demo_board(), monkeypatch, 80)
    header = next(line for line in text.splitlines() if line.split()[:2] == ["rank", "model"])
    assert header.split()[2:] == FIVE_METRICS and "not shown" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in DEMO_NAMES:
        assert re.search(rf"\s{re.escape(name)}\s", text)


def test_scores_left_out_of_a_narrow_table_are_named(monkeypatch):
    text = _printed(_demo_board(), monkeypatch, 56)
    header = next(line for line in text.splitlines() if line.split()[:2] == ["rank", "model"])
    shown = header.split()[2:]
    assert shown[0] == "lead" and len(shown) < len(FIVE_METRICS)
    left_out = ", ".join(FIVE_METRICS[len(shown):])
    assert f"not shown at 56 columns: {left_out} (widen the terminal" in " ".join(text.split())


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


def test_rank_prints_the_table_on_stdout_and_each_warning_once_on_stderr(models, image_folder, tmp_path,  # noqa: F811
                                                                          monkeypatch, capsys):
    """Issue 19, point 10: a metric's Python warning (here PARC's subsample warning, raised once per model) is one
    line on stderr, without its class name or the source line that raised it; the ranking's own warnings go to
    stderr too, never into a redirected table; a model that could not be loaded is not told to use more samples."""
    monkeypatch.setenv("COLUMNS", "100")
    code = main(["rank", "--models", models["first"], models["second"], f"local-dir:{tmp_path / 'missing'}",
                 "--dataset", str(image_folder), "--metrics", "lead", "parc", "--metric-option", "lead.folds=2",
                 "--metric-option", "lead.head_widths=[16]", "--metric-option", "parc.max_samples=12",
                 "--image-size", "32", "--no-cache", "--quiet"])
    assert code == 0
    printed = capsys.readouterr()
    assert "warning" not in printed.out.lower() and "first" in printed.out and "missing" in printed.out
    lines = printed.err.splitlines()
    assert all(line.startswith("lead-hub rank: warning: ") for line in lines), printed.err
    assert sum("parc: N=24 > max_samples=12" in line for line in lines) == 1
    assert "Warning:" not in printed.err and "warnings.warn" not in printed.err
    unloaded = [line for line in lines if "missing" in line and "no score" in line]
    assert len(unloaded) == 1 and "could not be loaded or run" in unloaded[0]
    assert "more samples" not in unloaded[0]


def test_a_piped_table_at_80_columns_shows_every_score_and_no_warning(tmp_path):
    """The real console entry point with its stdout into a pipe (`... | cat`) and COLUMNS=80: every requested
    score is a column of the table, and the warnings go to stderr, out of the piped table."""
    import os
    import subprocess
    import sys

    _demo_board().to_json(tmp_path / "board.json")
    command = f"{sys.executable} -m lead_hub.cli leaderboard show {tmp_path / 'board.json'} | cat"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    header = next(line for line in done.stdout.splitlines() if line.split()[:2] == ["rank", "model"])
    assert header.split()[2:] == FIVE_METRICS
    assert max(len(line) for line in done.stdout.splitlines()) <= 80 and "warning" not in done.stdout
    assert done.stderr.startswith("lead-hub leaderboard: warning: hscore cannot rank 6 models")
