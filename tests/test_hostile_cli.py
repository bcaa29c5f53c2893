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
    assert not seen["allow_remote_image_urls"] and not seen["drop_empty_classes"]
    assert main(["rank", "--models", "a", "--dataset", "x.parquet", "--allow-remote-image-urls",
                 "--drop-empty-classes"]) == 2
    assert seen["allow_remote_image_urls"] and seen["drop_empty_classes"]


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


# -- issue 20: hostile datasets from the Hub; each crash is one line and exit code 2 -------------------------------

DEMO_ZIP = ranking_module.DEMO_DATASET


def write_image_parquet(path: Path, cells: list, labels: list[int]) -> Path:
    """A parquet file whose Image column holds ``cells`` (``{"bytes", "path"}`` or None), written with pyarrow."""
    import json

    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    table = pa.table({"image": pa.array(cells, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array(labels, pa.int64())})
    pq.write_table(table.replace_schema_metadata(
        {"huggingface": json.dumps({"info": {"features": features.to_dict()}})}), path)
    return path


def png_cell(value: int) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (value, 9, 200 - value)).save(buffer, "PNG")
    return {"bytes": buffer.getvalue(), "path": None}


@pytest.fixture
def fresh_datasets_cache(tmp_path, monkeypatch):
    """A new datasets cache: the parquet file is prepared (and its progress bar would show) in this test."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets_cache"))


def test_null_image_cells_are_skipped_listed_and_quiet_means_quiet(tmp_path, capfd, demo_models,
                                                                   fresh_datasets_cache):
    cells = [png_cell(20 * k) for k in range(7)]
    cells[3] = None
    path = write_image_parquet(tmp_path / "nulls.parquet", cells, [k % 2 for k in range(7)])
    code = main(["rank", "--models", demo_models[0], "--dataset", str(path), "--image-size", "32", "--no-cache",
                 "--quiet", "--metrics", "logme", "--output", str(tmp_path / "out")])
    error = capfd.readouterr().err
    assert code == 0 and "Traceback" not in error
    assert "Generating train split" not in error and "%|" not in error, "--quiet silences datasets' bars too"
    board = ranking_module.Leaderboard.load(tmp_path / "out" / "leaderboard.json")
    assert board.provenance["samples"] == 6
    assert board.provenance["skipped_images"] == ["row 3 has no image (an empty cell)"]


def long_path_zip(path: Path) -> Path:
    """Every name part 1 byte, the whole path over 4 KB: it used to fail extraction with ENAMETOOLONG."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("a", "b"):
            for index in range(2):
                archive.writestr(f"{name}/{index}.png", png_cell(index)["bytes"])
        archive.writestr("a/" + "d/" * 2100 + "x.png", png_cell(9)["bytes"])
    return path


def deep_zoo(path: Path) -> Path:
    path.write_text("name: deep\nmodels: " + "[" * 100_000 + "\n")
    return path


def flipped_parquet(path: Path) -> Path:
    write_image_parquet(path, [png_cell(k) for k in range(4)], [0, 1, 0, 1])
    data = bytearray(path.read_bytes())
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little") + 10  # inside the footer's metadata
    data[start:start + 50] = bytes(byte ^ 0x5A for byte in data[start:start + 50])
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("make", "option", "said"), [
    (lambda tmp: write_image_parquet(tmp / "empty.parquet", [], []), "--dataset", "empty.parquet' has no rows"),
    (lambda tmp: flipped_parquet(tmp / "flipped.parquet"), "--dataset", "cannot read split 'train' of"),
    (lambda tmp: long_path_zip(tmp / "deep.zip"), "--dataset", "has a path of 4,207 bytes, more than the 1,024"),
    (lambda tmp: deep_zoo(tmp / "deep.yaml"), "--zoo", "deep.yaml: YAML nested too deeply"),
], ids=["zero_rows", "bit_flipped", "path_over_4kb", "zoo_yaml_nested_100000"])
def test_inputs_that_crashed_are_one_line_naming_them_and_exit_2(tmp_path, capsys, fresh_datasets_cache, make,
                                                                  option, said):
    hostile = make(tmp_path)
    arguments = ["--dataset", str(DEMO_ZIP)] if option == "--zoo" else ["--models", "a"]
    code = main(["rank", *arguments, option, str(hostile), "--image-size", "32", "--no-cache", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and error.startswith("lead-hub rank: error: ")
    assert hostile.name in error and said in error


def test_error_lists_are_bounded(tmp_path):
    """A ClassLabel of 100,000 names with 2 used printed a 1.29 MB line; it names 10 classes and counts the rest
    (20,000 names here: the same path, faster)."""
    import datasets

    from lead_hub.data import DataSourceError, load_images

    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[f"class{k}" for k in range(20_000)])})
    path = tmp_path / "many.parquet"
    datasets.Dataset.from_dict({"image": [png_cell(k) for k in range(4)], "label": [0, 1, 0, 1]},
                               features=features).to_parquet(str(path))
    with pytest.raises(DataSourceError) as refused:
        load_images(path, progress=False)
    message = str(refused.value)
    assert len(message) < 1000 and "19,998 classes with fewer than 2" in message and "and 19,988 more" in message


def test_class_folders_differing_only_in_case_are_warned_about(tmp_path, caplog):
    from lead_hub.data import load_images

    for name in ("Cat", "cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for index in range(2):
            Image.new("RGB", (8, 8), (index, len(name), 3)).save(tmp_path / "pets" / name / f"{index}.png")
    with caplog.at_level(logging.WARNING, logger="lead_hub.data"):
        images = load_images(tmp_path / "pets")
    assert images.class_names == ["Cat", "cat", "dog"]
    assert "differ only in case" in caplog.text and "Cat and cat" in caplog.text


@pytest.mark.parametrize("num_classes", [100_000_000, -5])
def test_an_absurd_num_classes_in_a_config_is_noted(tmp_path, caplog, num_classes):
    import json
    import shutil

    from lead_hub.models import load_backbone

    folder = tmp_path / "model"
    shutil.copytree(ranking_module.DEMO_DATASET.parent / "models" / "mobilenetv1_025.coral_in1k", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_classes": num_classes}))
    with caplog.at_level(logging.WARNING, logger="lead_hub.models"):
        load_backbone(f"local-dir:{folder}", image_size=32)
    assert f"num_classes={num_classes} is not a class count" in caplog.text and "ignored" in caplog.text


def test_a_transformers_model_whose_weights_fail_is_one_warning_line(tmp_path, caplog, capsys,
                                                                    fresh_datasets_cache):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_models import save_tiny_transformers

    folder = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    for weights in folder.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:200])
    with caplog.at_level(logging.WARNING):
        code = main(["rank", "--models", f"local-dir:{folder}", "--dataset", str(DEMO_ZIP), "--samples-per-class",
                     "2", "--image-size", "32", "--no-cache", "--quiet", "--metrics", "logme"])
    said = [record.getMessage() for record in caplog.records if "feature extraction failed" in record.getMessage()]
    assert code == 1 and len(said) == 1 and "\n" not in said[0] and "SafetensorError" in said[0]
