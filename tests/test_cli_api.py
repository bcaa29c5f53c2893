"""The Python API as a notebook uses it, and the small CLI conveniences: --version, leaderboard show FILE."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import datasets
import pytest
from test_ranking import CLASSES, image_folder, models  # noqa: F401 - pytest fixtures

import lead_hub
from lead_hub.cli import main
from lead_hub.leaderboard import Leaderboard
from lead_hub.ranking import rank

LEAD_OPTIONS = {"lead": {"folds": 2, "head_widths": [16]}}


def _rank(model_ids, dataset, **options):
    return rank(model_ids, dataset, image_size=32, metric_options=LEAD_OPTIONS, progress=False, **options)


def test_version(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out.strip() == f"lead-hub {lead_hub.__version__}"


def test_rank_caches_features_in_the_user_cache_by_default(models, image_folder, tmp_path,  # noqa: F811
                                                            monkeypatch):
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("LEAD_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    first = _rank([models["first"]], image_folder)
    second = _rank([models["first"]], image_folder)
    assert (cache / "features").is_dir() and sorted(path.name for path in tmp_path.iterdir()) == ["user-cache"]
    assert "cache" not in first.table["notes"].iloc[0]
    assert "features read from the cache" in second.table["notes"].iloc[0]
    assert second.table["lead"].iloc[0] == first.table["lead"].iloc[0]
    cached = sorted(cache.rglob("*"))
    _rank([models["second"]], image_folder, cache_dir=None)
    assert sorted(cache.rglob("*")) == cached  # cache_dir=None wrote nothing


def test_user_cache_follows_the_environment(tmp_path, monkeypatch):
    from lead_hub.cache import cache_home

    monkeypatch.delenv("LEAD_HUB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Path(lead_hub.DEFAULT_CACHE_DIR) == tmp_path / "xdg" / "lead_hub" / "features"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_home() == tmp_path / "home" / ".cache" / "lead_hub"
    monkeypatch.setenv("LEAD_HUB_CACHE", str(tmp_path / "chosen"))
    assert Path(lead_hub.DEFAULT_CACHE_DIR) == tmp_path / "chosen" / "features"


def test_a_second_clone_of_the_same_weights_reads_the_cache(models, image_folder, tmp_path):  # noqa: F811
    clone = tmp_path / "another-clone" / "first"
    shutil.copytree(models["first"].removeprefix("local-dir:"), clone)
    cache = tmp_path / "cache"
    first = _rank([models["first"]], image_folder, cache_dir=cache)
    again = _rank([f"local-dir:{clone}"], image_folder, cache_dir=cache)
    assert "features read from the cache" in again.table["notes"].iloc[0]
    assert again.table["lead"].iloc[0] == first.table["lead"].iloc[0]
    (clone / "model.safetensors").write_bytes((clone / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\1")
    changed = _rank([f"local-dir:{clone}"], image_folder, cache_dir=cache)  # other weights: another entry
    assert "cache" not in changed.table["notes"].iloc[0]


def _as_dataset(folder) -> datasets.Dataset:
    """The image folder as an in-memory datasets.Dataset, rows in the folder loader's order (class, then path)."""
    files = [path for name in sorted(CLASSES) for path in sorted((folder / name).iterdir())]
    return datasets.Dataset.from_dict(
        {"picture": [str(path) for path in files], "kind": [sorted(CLASSES).index(path.parent.name) for path in files]},
        features=datasets.Features({"picture": datasets.Image(), "kind": datasets.ClassLabel(names=sorted(CLASSES))}))


def test_rank_accepts_dataset_objects(models, image_folder):  # noqa: F811
    from_folder = _rank([models["first"]], image_folder, cache_dir=None)
    dataset = _as_dataset(image_folder)
    in_memory = _rank([models["first"]], dataset, cache_dir=None)
    assert in_memory.table["lead"].iloc[0] == pytest.approx(from_folder.table["lead"].iloc[0], rel=1e-6)
    assert in_memory.provenance["class_names"] == sorted(CLASSES) and in_memory.provenance["samples"] == 24
    assert in_memory.provenance["dataset"] == f"in-memory:{dataset._fingerprint[:12]}"
    streamed = _rank([models["first"]], dataset.to_iterable_dataset(), cache_dir=None, max_samples=12)
    assert streamed.provenance["samples"] == 12 and math.isfinite(streamed.table["lead"].iloc[0])
    split = _rank([models["first"]], datasets.DatasetDict({"train": dataset}), cache_dir=None)
    assert split.table["lead"].iloc[0] == in_memory.table["lead"].iloc[0]


@pytest.fixture
def saved_board(tmp_path) -> Leaderboard:
    rows = [{"model_id": name, "model_revision": "sha256:0", "lead": score, "feature_dim": 8, "num_params": 10,
             "extract_seconds": 1.0, "score_seconds": 0.1, "notes": ""} for name, score in (("a", -1.0), ("b", -0.5))]
    board = Leaderboard.from_rows(rows, {"dataset": "d", "split": "train", "samples": 20, "metrics": ["lead"]})
    board.save(tmp_path, formats=("csv", "json", "parquet", "md"))
    return board


@pytest.mark.parametrize("extension", ["csv", "json", "parquet", "md"])
def test_leaderboard_show_reads_a_saved_file(saved_board, tmp_path, capsys, extension):
    path = tmp_path / f"leaderboard.{extension}"
    assert main(["leaderboard", "show", str(path)]) == 0
    shown = capsys.readouterr().out  # the console table of `lead-hub rank`, not a markdown table of every column
    title = "lead_hub leaderboard" if extension == "csv" else "lead_hub leaderboard: d [train], 20 samples"
    assert title in shown and "|" not in shown and "sha256" not in shown
    assert re.search(r"^\s*1\s+b\s+-0\.5\b", shown, re.M) and re.search(r"^\s*2\s+a\s+-1\b", shown, re.M)
    assert main(["leaderboard", "show", str(path), "--format", "markdown"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"# leaderboard.{extension}") and shown.index("| 1 | b |") < shown.index("| 2 | a |")
    assert main(["leaderboard", "show", str(path), "--format", "json"]) == 0
    assert [row["model_id"] for row in json.loads(capsys.readouterr().out)] == ["b", "a"]


def test_leaderboard_show_names_a_missing_file(tmp_path, capsys):
    assert main(["leaderboard", "show", str(tmp_path / "nope.parquet")]) == 2
    assert "no leaderboard file" in capsys.readouterr().err


def test_leaderboard_show_prints_the_warnings(tmp_path, capsys):
    rows = [{"model_id": name, "model_revision": "", "hscore": 9.0, "feature_dim": 64, "num_params": 10,
             "extract_seconds": 1.0, "score_seconds": 0.1, "notes": ""} for name in ("a", "b")]
    Leaderboard.from_rows(rows, {"dataset": "d", "samples": 20, "metrics": ["hscore"]}).to_json(tmp_path / "b.json")
    assert main(["leaderboard", "show", str(tmp_path / "b.json")]) == 0
    printed = capsys.readouterr()
    assert "warning" not in printed.out  # stdout holds the table alone; each warning is one line on stderr
    assert printed.err.startswith("lead-hub leaderboard: warning: hscore cannot rank 2 models that all score 9")
    assert printed.err.count("\n") == 1
