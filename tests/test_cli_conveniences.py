"""The command line's smaller conveniences (issue 19, point 11): --help says every default, --dataset-config,
--per-class on screen, and a hint where an install lacks the repository's zoos and demo."""

from __future__ import annotations

import argparse
import re

import pytest
from test_ranking import image_folder, models  # noqa: F401 - pytest fixtures

from lead_hub import ranking, zoo
from lead_hub.cli import build_parser, main
from lead_hub.data import DataSourceError


def _options(parser: argparse.ArgumentParser, command: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*command, name))
        elif action.option_strings and action.dest not in ("help", "version"):
            yield " ".join(command), action


def test_every_option_has_help_that_states_its_default():
    for command, action in _options(build_parser()):
        where = f"lead-hub {command} {action.option_strings[0]}"
        assert action.help, f"{where} has no help"
        if action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in action.help, f"{where}: the help does not say the default {action.default!r}"
    metrics = next(action for command, action in _options(build_parser())
                   if command == "rank" and "--metrics" in action.option_strings)
    assert "lead-hub metrics" in metrics.help and "lead_hub.metrics" not in metrics.help


def test_the_dataset_config_reaches_the_dataset_loader(models, image_folder, capsys):  # noqa: F811
    with pytest.raises(DataSourceError, match="config and revision apply to Hub dataset ids"):
        ranking.rank([models["first"]], image_folder, config="cropped", progress=False, cache_dir=None)
    assert main(["rank", "--models", models["first"], "--dataset", str(image_folder), "--dataset-config", "cropped",
                 "--quiet", "--no-cache"]) == 2
    assert "config and revision apply to Hub dataset ids" in capsys.readouterr().err


def test_per_class_diagnostics_are_shown_under_the_table(models, image_folder, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["rank", "--models", models["first"], models["second"], "--dataset", str(image_folder),
                 "--metric-option", "lead.folds=2", "--metric-option", "lead.head_widths=[16]", "--image-size", "32",
                 "--no-cache", "--quiet", "--per-class"]) == 0
    out = capsys.readouterr().out
    assert "lead_rates per class (models by rank)" in out
    for name in ("red", "green", "blue"):  # one row per class: its name, 8 images, one rate per model
        assert re.search(rf"^\s*{name}\s+8\s+\S+\s+\S+\s*$", out, re.M), out
    assert "--output DIR" in out


def test_an_install_without_the_repository_folders_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "model_zoos")
    monkeypatch.setattr(ranking, "DATASET_ALIASES", {"demo": tmp_path / "demo" / "eurosat_mini.zip"})
    assert main(["zoo", "list"]) == 1
    assert "come with a clone of the repository" in capsys.readouterr().err
    assert main(["rank", "--zoo", "demo", "--dataset", "demo", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pip install -e ." in error and "--models" in error
    with pytest.raises(FileNotFoundError, match="dataset 'demo' is eurosat_mini.zip: the shipped zoos and the demo "
                                                "come with a clone"):
        ranking.resolve_dataset("demo")


def test_the_readme_command_in_another_clone_does_not_warn_about_its_demo_folder(tmp_path, monkeypatch, caplog):
    """Issue 19: `lead-hub rank --zoo demo --dataset demo` from a second clone (running the first clone's code)
    warned that the clone's own demo/ folder "also exists here"."""
    import logging
    import shutil

    clone = tmp_path / "lead-hub"
    (clone / "demo").mkdir(parents=True)
    shutil.copy(ranking.DEMO_DATASET, clone / "demo" / ranking.DEMO_DATASET.name)
    monkeypatch.chdir(clone)
    with caplog.at_level(logging.WARNING, logger="lead_hub.ranking"):
        assert ranking.resolve_dataset("demo") == ranking.DEMO_DATASET
    assert caplog.text == ""
    (clone / "demo" / ranking.DEMO_DATASET.name).write_bytes(b"my own zip")  # a different demo: still warned
    with caplog.at_level(logging.WARNING, logger="lead_hub.ranking"):
        ranking.resolve_dataset("demo")
    assert "also exists here" in caplog.text


def test_the_rank_command_names_the_defaults_it_took_and_why():
    from lead_hub.cli import build_parser
    from lead_hub.cli.rank import defaults_used

    parser = build_parser()
    taken = defaults_used(parser.parse_args(["rank", "--zoo", "demo", "--dataset", "demo"]))
    assert "metrics lead, pactran (LEAD, and the offline benchmark's best peer at full data and in low data among " \
           "those that rank" in taken
    assert "30 images per class at most" in taken
    given = parser.parse_args(["rank", "--zoo", "demo", "--dataset", "demo", "--metrics", "lead", "--all-samples"])
    assert defaults_used(given) == ""
