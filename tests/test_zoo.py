"""Model zoos: the shipped YAML files, path resolution, validation and the ``lead-hub zoo`` command."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lead_hub.cli import main
from lead_hub.zoo import ZOO_DIR, load_zoo, zoo_names

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_zoo_loads():
    assert set(zoo_names()) >= {"demo", "modern", "offline", "paper_supervised", "paper_ssl"}
    for name in zoo_names():
        zoo = load_zoo(name)
        assert zoo.name == name and zoo.description and zoo.entries


def test_demo_zoo_points_at_the_embedded_models_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    zoo = load_zoo("demo")
    assert len(zoo.loadable) == 6
    for entry in zoo.entries:
        assert entry.model_id.startswith("local-dir:demo/models/")
        folder = Path(entry.load_id.removeprefix("local-dir:"))
        assert folder.is_absolute() and folder.parent == REPOSITORY_ROOT / "demo" / "models"
        assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def test_user_zoo_resolves_relative_folders_against_its_own_folder(tmp_path):
    (tmp_path / "zoos").mkdir()
    path = tmp_path / "zoos" / "mine.yaml"
    path.write_text("name: mine\nmodels:\n  - local-dir:weights/a\n  - id: local-dir:/abs/b\n    revision: v1\n"
                    "  - id: hf-hub:timm/resnet18.a1_in1k\n    params: 11689512\n")
    zoo = load_zoo(path)
    assert [entry.load_id for entry in zoo.entries] == [
        f"local-dir:{tmp_path / 'zoos' / 'weights' / 'a'}", "local-dir:/abs/b", "hf-hub:timm/resnet18.a1_in1k"]
    assert zoo.entries[1].revision == "v1" and zoo.entries[2].params == 11689512


@pytest.mark.parametrize("body, message", [
    ("models:\n  - id: a\n    size: 3\n", "unknown keys"),
    ("models:\n  - id: a\n  - id: a\n", "listed twice"),
    ("models:\n  - id: null\n", "needs a 'note'"),
    ("models:\n  - id: a\n    params: -5\n", "positive integer"),
    ("model: []\n", "'models' list"),
])
def test_invalid_zoo_files_name_the_problem(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_zoo(path)


def test_unknown_zoo_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="shipped zoos: demo"):
        load_zoo("no-such-zoo")


def test_paper_zoos_hold_the_papers_twelve_and_twelve_models(shared_data):
    with open(shared_data.parent / "paper" / "hf_models.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    supervised, ssl = load_zoo("paper_supervised"), load_zoo("paper_ssl")
    assert len(supervised.entries) == sum(row["zoo"] == "sup" for row in rows) == 12
    assert len(ssl.entries) == sum(row["zoo"] == "ssl" for row in rows) == 12
    assert [entry.label for entry in ssl.entries] == [row["paper_name"] for row in rows if row["zoo"] == "ssl"]
    hub_ids = {f"hf-hub:{row['closest_hub_id']}" for row in rows if row["closest_hub_id"].startswith("timm/")}
    assert {entry.model_id for entry in supervised.loadable} == hub_ids
    assert all(entry.note for entry in supervised.unavailable + ssl.unavailable)


def test_offline_zoo_lists_every_folder_of_the_shared_zoo(shared_data):
    folders = {path.parent for path in (shared_data / "zoo").glob("*/config.json")}
    assert {Path(entry.load_id.removeprefix("local-dir:")) for entry in load_zoo("offline").entries} == folders


def test_zoo_command_lists_and_shows(capsys):
    assert main(["zoo", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in zoo_names())
    assert main(["zoo", "show", str(ZOO_DIR / "demo.yaml")]) == 0
    assert "mlperf_vww" in capsys.readouterr().out
