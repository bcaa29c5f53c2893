"""The command line on hostile and broken inputs (issue 13): one clear line, exit code 2 for usage and 1 for
runtime, checks made before the slow work."""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import lead_hub.ranking as ranking_module
from lead_hub.cli import main


def fail_if_ranked(*args, **kwargs):
    raise AssertionError("rank() must not run: the check belongs before the ranking")


@pytest.mark.parametrize("make", [lambda tmp: tmp / "board.csv", lambda tmp: tmp / "board.csv" / "sub"])
def test_output_that_is_an_existing_file_is_refused_before_ranking(tmp_path, capsys, monkeypatch, make):
    (tmp_path / "board.csv").write_text("mine")
    monkeypatch.setattr(ranking_module, "rank", fail_if_ranked)
    code = main(["rank", "--models", "a", "--dataset", "demo", "--output", str(make(tmp_path))])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "board.csv is" in error and "file" in error
    assert (tmp_path / "board.csv").read_text() == "mine"


def test_push_of_a_folder_names_the_file_to_pass(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "leaderboard.parquet").write_bytes(b"")
    code = main(["push", str(tmp_path / "results"), "owner/board"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert f"is a folder; pass the saved leaderboard file inside it (e.g. {tmp_path / 'results'}" in error


def test_rank_passes_strict_and_the_column_names_through(monkeypatch):
    seen = {}

    def record(models, dataset, **options):
        seen.update(options)
        raise ValueError("recorded")

    monkeypatch.setattr(ranking_module, "rank", record)
    assert main(["rank", "--models", "a", "--dataset", "x.parquet", "--strict", "--image-column", "pixels",
                 "--label-column", "fine_label"]) == 2
    assert (seen["strict"], seen["image_column"], seen["label_column"]) == (True, "pixels", "fine_label")


def test_demo_alias_beside_a_demo_folder_says_which_was_used(tmp_path, monkeypatch, caplog):
    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="lead_hub.ranking"):
        source = ranking_module.resolve_dataset("demo")
    assert source == ranking_module.DEMO_DATASET
    assert "means the built-in sample eurosat_mini.zip" in caplog.text and "pass ./demo to rank it" in caplog.text
    caplog.clear()
    monkeypatch.chdir(ranking_module.DEMO_DATASET.parents[1])  # the repository's own demo folder: no warning
    with caplog.at_level(logging.WARNING, logger="lead_hub.ranking"):
        ranking_module.resolve_dataset("demo")
    assert caplog.text == ""


def test_a_ranking_with_one_bad_image_names_it_and_scores_every_model(tmp_path, capsys, caplog, demo_models):
    """A truncated JPEG used to fail inside the DataLoader for every model, with tracebacks in the notes."""
    with zipfile.ZipFile(ranking_module.DEMO_DATASET) as archive:  # two of its classes: 60 images
        for name in archive.namelist():
            if "/SeaLake/" in name or "/Forest/" in name:
                archive.extract(name, tmp_path / "data")
    folders = sorted((tmp_path / "data").rglob("SeaLake"))
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (4, 5, 6)).save(buffer, "JPEG")
    (folders[0] / "truncated.jpg").write_bytes(buffer.getvalue()[:300])
    with caplog.at_level(logging.WARNING, logger="lead_hub.data"):
        code = main(["rank", "--models", demo_models[0], "--dataset", str(tmp_path / "data"), "--samples-per-class",
                     "40", "--image-size", "32", "--no-cache", "--quiet", "--output", str(tmp_path / "out")])
    assert code == 0 and "Traceback" not in capsys.readouterr().err
    assert "skipping 1 of 61 sampled images" in caplog.text and "SeaLake/truncated.jpg" in caplog.text
    board = ranking_module.Leaderboard.load(tmp_path / "out" / "leaderboard.json")
    assert len(board.provenance["skipped_images"]) == 1 and "truncated.jpg" in board.provenance["skipped_images"][0]
    assert main(["rank", "--models", demo_models[0], "--dataset", str(tmp_path / "data"), "--samples-per-class",
                 "40", "--image-size", "32", "--no-cache", "--quiet", "--strict"]) == 2
    assert "truncated.jpg" in capsys.readouterr().err


@pytest.fixture
def demo_models() -> list[str]:
    folder = ranking_module.DEMO_DATASET.parent / "models"
    models = sorted(path for path in folder.iterdir() if path.is_dir())
    if not models:
        pytest.skip("the embedded demo models are absent")
    return [f"local-dir:{models[0]}"]
