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


# -- issue 13: zoo files that lie ---------------------------------------------------------------------------------

ALIAS_BOMB = """name: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
models: [*c]
"""


@pytest.mark.parametrize("body, message", [
    ("name: demo\nmodels:\n  - id: a\n  label: [unclosed\n", r"bad.yaml:4: YAML syntax error: "),
    ("name: demo\nmodels:\n\t- id: a\n", r"bad.yaml:3: YAML syntax error: .*tabs cannot indent YAML; use spaces"),
    (ALIAS_BOMB, r"bad.yaml:2: YAML aliases \(\*name\) are not accepted"),
    ("name: [1, 2]\nmodels: []\n", "'name' must be a string, got list"),
    ("name: " + "n" * 201 + "\nmodels: []\n", "'name' is 201 characters, more than 200"),
    ("models:\n  - id: a\n    label: {x: 1}\n", "model 0: 'label' must be a string, got dict"),
    ("models:\n  - id: a\n    note: " + "n" * 2001 + "\n", "'note' is 2,001 characters"),
    ("models:\n  - id: a\n    params: 100000000000000000\n", "'params' must be a positive integer up to"),
    ("models:\n  - id: a\n    revision: [main]\n", "'revision' must be a string, got list"),
    ("models:\n" + "  - id: m\n" * 1001, "1001 models, more than 1000"),
])
def test_hostile_or_broken_zoo_files_get_one_line(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message) as error:
        load_zoo(path)
    assert "\n" not in str(error.value)


def test_a_numeric_revision_is_read_as_its_text_and_an_oversized_file_is_refused(tmp_path):
    path = tmp_path / "zoo.yaml"
    path.write_text("models:\n  - id: timm/resnet18.a1_in1k\n    revision: 2\n")
    assert load_zoo(path).entries[0].revision == "2"
    path.write_text("models: []\n" + "#" * (1024**2))
    with pytest.raises(ValueError, match="more than 1,048,576; a zoo lists models"):
        load_zoo(path)


def test_zoo_yaml_errors_reach_the_cli_as_one_line(tmp_path, capsys):
    from lead_hub.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("models:\n\t- id: a\n")
    assert main(["zoo", "show", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "bad.yaml:2: YAML syntax error" in error
