"""load_images on every source kind, built on the fly: columns, labels, sampling, streaming, folders and zips.

Each synthetic image encodes its row in its pixels (red = row % 256, green = row // 256), so a test can tell
which source row it received, independently of the loader's own bookkeeping.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
from PIL import Image

from lead_hub.archive import ArchiveError
from lead_hub.data import DataSourceError, LabeledImages, load_images, load_parquet_split
from lead_hub.decoding import to_rgb
from lead_hub.sampling import stratified_indices

CLASS_NAMES = ["cat", "dog", "fox"]


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path_factory, monkeypatch):
    """Prepared Arrow files of the tiny test datasets go to a temporary cache, not the user's."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets_cache")))


def row_image(row: int) -> Image.Image:
    return Image.new("RGB", (4, 4), (row % 256, row // 256, 7))


def row_of(image: Image.Image) -> int:
    red, green, _ = image.getpixel((0, 0))
    return red + 256 * green


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_parquet(path: Path, labels: list, *, label_feature=None, columns: dict | None = None) -> Path:
    """Rows 0..N-1 with an Image column ``image`` (pixels encode the row) and a ``label`` column."""
    label_feature = label_feature or datasets.ClassLabel(names=CLASS_NAMES)
    data = {"image": [{"bytes": png(row_image(row)), "path": None} for row in range(len(labels))], "label": labels}
    features = {"image": datasets.Image(), "label": label_feature}
    for name, (feature, values) in (columns or {}).items():
        data[name], features[name] = values, feature
    datasets.Dataset.from_dict(data, features=datasets.Features(features)).to_parquet(str(path))
    return path


def interleaved_labels(count: int) -> list[int]:
    return [row % len(CLASS_NAMES) for row in range(count)]


def assert_rows_match_source(images: LabeledImages, class_of_row: list[str]) -> None:
    """Every kept row is the source row its ``row_indices`` entry names, under that row's class."""
    rows = [row_of(images.image(position)) for position in range(len(images))]
    assert rows == images.row_indices.tolist()
    assert [images.class_names[label] for label in images.labels] == [class_of_row[row] for row in rows]


def names_of(labels: list[int]) -> list[str]:
    return [CLASS_NAMES[label] for label in labels]


# -- parquet ------------------------------------------------------------------------------------------------------


def test_parquet_folder_picks_the_split_and_lists_the_available_ones(tmp_path):
    write_parquet(tmp_path / "train.parquet", interleaved_labels(12))
    write_parquet(tmp_path / "test.parquet", [2, 2, 1, 1, 0, 0])
    test = load_images(tmp_path, split="test")
    assert test.labels.tolist() == [2, 2, 1, 1, 0, 0]
    assert test.class_names == CLASS_NAMES
    assert (test.image_column, test.label_column, test.split, test.streamed) == ("image", "label", "test", False)
    assert test.row_indices.tolist() == list(range(6)) and test.rows_read == 6
    with pytest.raises(DataSourceError, match=r"no parquet file for split 'validation'.*\['test', 'train'\]"):
        load_images(tmp_path, split="validation")


def test_parquet_file_and_sharded_folder(tmp_path):
    single = write_parquet(tmp_path / "one.parquet", interleaved_labels(9))
    assert len(load_images(single)) == 9
    shards = tmp_path / "repo" / "data"
    shards.mkdir(parents=True)
    write_parquet(shards / "train-00000-of-00002.parquet", interleaved_labels(6))
    write_parquet(shards / "train-00001-of-00002.parquet", interleaved_labels(6))
    assert len(load_images(tmp_path / "repo", split="train")) == 12


def test_load_parquet_split_keeps_every_row(tmp_path):
    write_parquet(tmp_path / "train.parquet", interleaved_labels(10))
    images = load_parquet_split(tmp_path, "train")
    assert len(images) == 10 and images.labels.tolist() == interleaved_labels(10)
    assert images.image(4).mode == "RGB" and row_of(images.image(4)) == 4


# -- columns and labels -------------------------------------------------------------------------------------------


def test_string_labels_are_encoded_in_sorted_order(tmp_path):
    names = ["zebra", "ant", "moth", "ant", "zebra", "moth", "ant", "zebra", "moth"]
    path = write_parquet(tmp_path / "train.parquet", names, label_feature=datasets.Value("string"))
    images = load_images(path)
    assert images.class_names == ["ant", "moth", "zebra"]
    assert images.labels.tolist() == [2, 0, 1, 0, 2, 1, 0, 2, 1]


def test_integer_labels_without_classlabel_are_remapped(tmp_path):
    values = [10, 3, 7, 3, 10, 7]
    images = load_images(write_parquet(tmp_path / "train.parquet", values, label_feature=datasets.Value("int64")))
    assert images.class_names == ["3", "7", "10"]
    assert images.labels.tolist() == [2, 0, 1, 0, 2, 1]


def test_ambiguous_columns_are_refused_and_overrides_choose(tmp_path):
    labels = interleaved_labels(6)
    path = write_parquet(tmp_path / "train.parquet", labels, columns={
        "thumbnail": (datasets.Image(), [{"bytes": png(row_image(255)), "path": None}] * 6),
        "coarse": (datasets.ClassLabel(names=["animal", "plant"]), [0, 1] * 3),
    })
    with pytest.raises(DataSourceError, match=r"several image columns \['image', 'thumbnail'\].*image_column="):
        load_images(path)
    with pytest.raises(DataSourceError, match=r"several label columns \['label', 'coarse'\].*label_column="):
        load_images(path, image_column="image")
    coarse = load_images(path, image_column="thumbnail", label_column="coarse")
    assert coarse.class_names == ["animal", "plant"] and coarse.labels.tolist() == [0, 1] * 3
    assert row_of(coarse.image(0)) == 255
    with pytest.raises(DataSourceError, match=r"no column 'nope'.*columns: \['image', 'label', 'thumbnail'"):
        load_images(path, image_column="nope")


def test_missing_image_column_names_the_fix_and_a_bytes_column_can_be_named(tmp_path):
    labels = interleaved_labels(6)
    data = {"pixels": [png(row_image(row)) for row in range(6)], "label": labels}
    features = datasets.Features({"pixels": datasets.Value("binary"), "label": datasets.ClassLabel(names=CLASS_NAMES)})
    path = tmp_path / "train.parquet"
    datasets.Dataset.from_dict(data, features=features).to_parquet(str(path))
    with pytest.raises(DataSourceError, match=r"no image column .*\['pixels', 'label'\].*image_column="):
        load_images(path)
    images = load_images(path, image_column="pixels")
    assert [row_of(images.image(row)) for row in range(6)] == list(range(6))


def test_label_column_must_hold_classes(tmp_path):
    path = write_parquet(tmp_path / "train.parquet", interleaved_labels(6),
                         columns={"score": (datasets.Value("float32"), [0.5] * 6)})
    with pytest.raises(DataSourceError, match="label_column 'score'.*ClassLabel, integers or strings"):
        load_images(path, label_column="score")
    unlabelled = write_parquet(tmp_path / "unlabelled.parquet", [-1, -1, 0, 1, 2, 0])
    with pytest.raises(DataSourceError, match="2 rows labelled -1"):
        load_images(unlabelled)


# -- sampling -----------------------------------------------------------------------------------------------------


def test_samples_per_class_counts_and_determinism(tmp_path):
    labels = [0] * 20 + [1] * 7 + [2] * 3
    path = write_parquet(tmp_path / "train.parquet", labels)
    first = load_images(path, samples_per_class=5, seed=11)
    assert np.bincount(first.labels).tolist() == [5, 5, 3]
    assert_rows_match_source(first, names_of(labels))
    again = load_images(path, samples_per_class=5, seed=11)
    assert again.row_indices.tolist() == first.row_indices.tolist()
    other = load_images(path, samples_per_class=5, seed=12)
    assert other.row_indices.tolist() != first.row_indices.tolist()
    assert (first.seed, first.samples_per_class, first.max_samples) == (11, 5, None)


def test_max_samples_is_the_shared_stratified_draw(tmp_path):
    labels = [0] * 30 + [1] * 20 + [2] * 10
    path = write_parquet(tmp_path / "train.parquet", labels)
    images = load_images(path, max_samples=12, seed=4)
    assert np.bincount(images.labels).tolist() == [6, 4, 2]
    expected = stratified_indices(np.array(labels), max_samples=12, seed=4)
    assert images.row_indices.tolist() == expected.tolist()
    assert_rows_match_source(images, names_of(labels))


def test_a_class_left_with_one_sample_is_refused(tmp_path):
    path = write_parquet(tmp_path / "train.parquet", [0, 0, 0, 1, 1, 2])
    with pytest.raises(DataSourceError, match=r"1 classes with fewer than 2 samples after sampling \(fox: 1\)"):
        load_images(path)
    kept = load_images(path, drop_empty_classes=True)
    assert kept.class_names == CLASS_NAMES[:2] and kept.labels.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(DataSourceError, match="samples_per_class or max_samples, not both"):
        load_images(path, samples_per_class=2, max_samples=4)


def test_select_keeps_provenance_aligned(tmp_path):
    images = load_images(write_parquet(tmp_path / "train.parquet", interleaved_labels(12)), samples_per_class=3)
    subset = images.select(np.array([5, 0, 2]))
    assert subset.row_indices.tolist() == images.row_indices[[5, 0, 2]].tolist()
    assert [row_of(subset.image(position)) for position in range(3)] == subset.row_indices.tolist()
    assert subset.provenance()["num_samples"] == 3 and subset.provenance()["samples_per_class"] == 3


# -- streaming (the Hub code path, on a local parquet) ------------------------------------------------------------


def test_stream_fills_quotas_and_stops_reading(tmp_path):
    labels = interleaved_labels(300)
    path = write_parquet(tmp_path / "train.parquet", labels)
    images = load_images(path, samples_per_class=4, streaming=True, stream_buffer_size=10, seed=5)
    assert images.streamed and np.bincount(images.labels).tolist() == [4, 4, 4]
    assert images.rows_read < 40, "the stream should stop once every class has its 4 rows"
    assert_rows_match_source(images, names_of(labels))
    again = load_images(path, samples_per_class=4, streaming=True, stream_buffer_size=10, seed=5)
    assert again.row_indices.tolist() == images.row_indices.tolist()
    other = load_images(path, samples_per_class=4, streaming=True, stream_buffer_size=10, seed=6)
    assert other.row_indices.tolist() != images.row_indices.tolist()


def test_stream_max_samples_gives_equal_quotas_even_when_sorted_by_class(tmp_path):
    labels = [0] * 100 + [1] * 100 + [2] * 100
    path = write_parquet(tmp_path / "train.parquet", labels)
    images = load_images(path, max_samples=20, streaming=True, stream_buffer_size=8)
    assert np.bincount(images.labels).tolist() == [6, 6, 6]
    assert images.rows_read < 300 and images.max_samples == 20
    assert_rows_match_source(images, names_of(labels))
    with pytest.raises(DataSourceError, match="gives 1 rows to each of the 3 classes.*at least 6"):
        load_images(path, max_samples=5, streaming=True)


def test_stream_without_classlabel_reads_to_the_end(tmp_path):
    names = ["b", "a", "c"] * 20
    path = write_parquet(tmp_path / "train.parquet", names, label_feature=datasets.Value("string"))
    images = load_images(path, samples_per_class=2, streaming=True, stream_buffer_size=4)
    assert images.rows_read == 60 and images.class_names == ["a", "b", "c"]
    assert np.bincount(images.labels).tolist() == [2, 2, 2]
    assert_rows_match_source(images, names)
    with pytest.raises(DataSourceError, match="max_samples on a stream needs a ClassLabel"):
        load_images(path, max_samples=6, streaming=True)


def test_stream_refuses_an_unknown_split_listing_the_available_ones(tmp_path):
    write_parquet(tmp_path / "train.parquet", interleaved_labels(6))
    with pytest.raises(DataSourceError, match=r"no parquet file for split 'test'.*\['train'\]"):
        load_images(tmp_path, split="test", streaming=True)


# -- image folders and zips ---------------------------------------------------------------------------------------


def write_class_folders(root: Path, counts: dict[str, int]) -> list[tuple[str, int]]:
    """PNG files ``root/<class>/<i>.png``; returns (class, row) in the sorted listing order of the loader."""
    listing, row = [], 0
    for name in sorted(counts):
        (root / name).mkdir(parents=True)
        for index in range(counts[name]):
            row_image(row).save(root / name / f"{index:03d}.png")
            listing.append((name, row))
            row += 1
    return listing


def test_image_folder_labels_are_the_sorted_folder_names(tmp_path):
    listing = write_class_folders(tmp_path / "pets", {"dog": 4, "Cat": 3, "emu": 5})
    (tmp_path / "pets" / "dog" / ".DS_Store").write_bytes(b"finder")
    (tmp_path / "pets" / "README.md").write_text("not part of any class")
    images = load_images(tmp_path / "pets", samples_per_class=3, seed=2)
    assert images.class_names == ["Cat", "dog", "emu"]
    assert np.bincount(images.labels).tolist() == [3, 3, 3]
    for position in range(len(images)):
        name, row = listing[images.row_indices[position]]
        assert row_of(images.image(position)) == row and images.class_names[images.labels[position]] == name


def test_image_modes_become_rgb(tmp_path):
    root = tmp_path / "modes"
    for name in ("gray", "alpha", "palette", "deep"):
        (root / name).mkdir(parents=True)
    for index in range(2):
        Image.new("L", (5, 5), 90).save(root / "gray" / f"{index}.png")
        Image.new("RGBA", (5, 5), (10, 20, 30, 0)).save(root / "alpha" / f"{index}.png")
        palette = Image.new("P", (5, 5), 1)
        palette.putpalette([0, 0, 0, 200, 40, 60] + [0] * 762)
        palette.save(root / "palette" / f"{index}.png")
        deep = Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16))
        assert deep.mode == "I;16"
        deep.save(root / "deep" / f"{index}.png")
    images = load_images(root)
    expected = {"gray": (90, 90, 90), "alpha": (255, 255, 255), "palette": (200, 40, 60), "deep": (0, 0, 0)}
    for position in range(len(images)):
        image = images.image(position)
        name = images.class_names[images.labels[position]]
        assert image.mode == "RGB" and image.getpixel((0, 0)) == expected[name], name
        if name == "deep":
            assert image.getpixel((1, 1)) == (255, 255, 255) and image.getpixel((1, 0)) == (64, 64, 64)  # 1000/4000


def test_image_folder_wrappers_split_folders_and_layout_errors(tmp_path):
    write_class_folders(tmp_path / "wrapped" / "only" / "set", {"a": 2, "b": 2})
    assert load_images(tmp_path / "wrapped").class_names == ["a", "b"]
    write_class_folders(tmp_path / "splits" / "train", {"a": 2, "b": 3})
    write_class_folders(tmp_path / "splits" / "test", {"a": 2, "b": 2})
    assert len(load_images(tmp_path / "splits", split="train")) == 5
    assert len(load_images(tmp_path / "splits", split="test")) == 4
    with pytest.raises(DataSourceError, match=r"split folders \['test', 'train'\] but none named 'validation'"):
        load_images(tmp_path / "splits", split="validation")
    write_class_folders(tmp_path / "stray", {"a": 2, "b": 2})
    row_image(0).save(tmp_path / "stray" / "loose.png")
    with pytest.raises(DataSourceError, match="images outside any class folder"):
        load_images(tmp_path / "stray")
    write_class_folders(tmp_path / "mixed", {"a": 2, "b": 2})
    (tmp_path / "mixed" / "a" / "labels.csv").write_text("x")
    with pytest.raises(DataSourceError, match=r"a/labels.csv is not an image; accepted: .*\.png"):
        load_images(tmp_path / "mixed")


def write_zip_of_folders(path: Path, counts: dict[str, int]) -> list[tuple[str, int]]:
    listing, row = [], 0
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(counts):
            for index in range(counts[name]):
                archive.writestr(f"upload/{name}/{index:03d}.png", png(row_image(row)))
                listing.append((name, row))
                row += 1
        archive.writestr("__MACOSX/upload/._a", b"metadata")
    return listing


def test_zip_is_extracted_safely_and_loaded(tmp_path):
    listing = write_zip_of_folders(tmp_path / "upload.zip", {"a": 3, "b": 4})
    images = load_images(tmp_path / "upload.zip", samples_per_class=2, seed=1)
    assert images.class_names == ["a", "b"] and len(images) == 4 and images.source == str(tmp_path / "upload.zip")
    for position in range(len(images)):
        name, row = listing[images.row_indices[position]]
        assert row_of(images.image(position)) == row and images.class_names[images.labels[position]] == name
    kept = load_images(tmp_path / "upload.zip", extract_dir=tmp_path / "extracted")
    assert len(kept) == 7 and (tmp_path / "extracted" / "upload" / "b" / "003.png").is_file()


def test_a_hostile_zip_is_refused_before_loading(tmp_path):
    with zipfile.ZipFile(tmp_path / "upload.zip", "w") as archive:
        archive.writestr("upload/a/0.png", png(row_image(0)))
        archive.writestr("../../outside.png", png(row_image(1)))
    with pytest.raises(ArchiveError, match="outside the archive"):
        load_images(tmp_path / "upload.zip")


# -- source errors ------------------------------------------------------------------------------------------------


def test_unusable_sources_and_options_are_named(tmp_path):
    with pytest.raises(DataSourceError, match="no such file or folder: .*and it is not a Hub dataset id"):
        load_images(str(tmp_path / "missing" / "x.parquet"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataSourceError, match="neither a .parquet nor a .zip"):
        load_images(tmp_path / "notes.txt")
    write_class_folders(tmp_path / "pets", {"a": 2, "b": 2})
    with pytest.raises(DataSourceError, match="config and revision apply to Hub dataset ids"):
        load_images(tmp_path / "pets", config="full")
    with pytest.raises(DataSourceError, match="streaming applies to Hub datasets and parquet"):
        load_images(tmp_path / "pets", streaming=True)
    with pytest.raises(DataSourceError, match="extract_dir and archive_limits apply to .zip sources"):
        load_images(tmp_path / "pets", extract_dir=tmp_path / "unused")


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    # The offline switch is read when datasets and huggingface_hub are imported, before conftest's fixture runs.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataSourceError, match="cannot open dataset 'someone/absent'.*network"):
        load_images("someone/absent", streaming=False)


def test_to_rgb_composites_alpha_on_white():
    half = Image.new("LA", (1, 1), (0, 128))
    assert to_rgb(half).getpixel((0, 0)) == (127, 127, 127)
    rgb = Image.new("RGB", (1, 1), (1, 2, 3))
    assert to_rgb(rgb) is rgb


# -- the Hub code path through the loopback Hub -------------------------------------------------------------------

_HUB_CLIENT = """
import json, sys
import datasets.config
datasets.config.USE_PARQUET_EXPORT = False  # no lookup of datasets-server.<loopback host>: traffic stays on loopback
from lead_hub.data import load_images
answers = []
for request in json.loads(sys.argv[1]):
    images = load_images(request.pop("source"), **request)
    answers.append({**images.provenance(), "row_indices": images.row_indices.tolist(),
                    "labels": images.labels.tolist(), "class_names": images.class_names})
print(json.dumps(answers))
"""


def test_hub_dataset_streams_through_the_loopback_hub(tmp_path):
    """A parquet dataset repo on the loopback Hub, read by datasets' real Hub client in a fresh process (HF_ENDPOINT
    and the offline switch are read when datasets and huggingface_hub are imported)."""
    hub_server = pytest.importorskip("hub_server", reason="needs tests/hub_server.py (the loopback Hub)")
    labels = interleaved_labels(90)
    first = write_parquet(tmp_path / "first.parquet", labels)
    second = write_parquet(tmp_path / "second.parquet", [2 - label for label in labels])
    with hub_server.LoopbackHub() as hub:
        hub.store.create_repo("dataset", "alice/pets")
        old, _ = hub.store.commit("dataset", "alice/pets",
                                  add={"data/train-00000-of-00001.parquet": first.read_bytes()})
        new, _ = hub.store.commit("dataset", "alice/pets",
                                  add={"data/train-00000-of-00001.parquet": second.read_bytes()})
        # client_environment keeps every request on loopback (no telemetry, no download-count ping).
        environment = {**os.environ, **hub_server.client_environment(hub.endpoint, str(tmp_path / "hf_home")),
                       "USE_TORCH": "0"}  # datasets would import torch, for nothing here
        requests = [{"source": "alice/pets", "samples_per_class": 3, "seed": 2, "stream_buffer_size": 6},
                    {"source": "alice/pets", "revision": old.oid, "samples_per_class": 3, "seed": 2,
                     "stream_buffer_size": 6},
                    {"source": "alice/pets", "streaming": False, "max_samples": 30, "seed": 2}]
        answer = subprocess.run([sys.executable, "-c", _HUB_CLIENT, json.dumps(requests)], env=environment,
                                capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr[-3000:]
    latest, pinned, whole = json.loads(answer.stdout.strip().splitlines()[-1])
    assert latest["revision"] == new.oid and pinned["revision"] == old.oid
    assert latest["streamed"] and latest["rows_read"] < 90
    assert latest["class_names"] == CLASS_NAMES and np.bincount(latest["labels"]).tolist() == [3, 3, 3]
    assert pinned["row_indices"] == latest["row_indices"], "same seed, same rows: only the labels changed"
    assert pinned["labels"] == [labels[row] for row in pinned["row_indices"]]
    assert latest["labels"] == [2 - labels[row] for row in latest["row_indices"]]
    assert whole["revision"] == new.oid and not whole["streamed"] and whole["rows_read"] == 90
    new_labels = np.array([2 - label for label in labels])
    assert whole["row_indices"] == stratified_indices(new_labels, max_samples=30, seed=2).tolist()


# -- real data ----------------------------------------------------------------------------------------------------


def test_demo_zip_matches_the_demo_parquet(shared_data, tmp_path):
    """The 300-image EuroSAT zip and its parquet twin: same classes, and every image under the same label."""
    from_zip = load_images(shared_data / "demo" / "eurosat_mini.zip")
    from_parquet = load_images(shared_data / "demo" / "eurosat_mini.parquet")
    assert from_zip.class_names == from_parquet.class_names and len(from_zip.class_names) == 10
    assert np.bincount(from_zip.labels).tolist() == [30] * 10

    def labelled_pixels(images: LabeledImages) -> set[tuple[bytes, str]]:
        return {(np.asarray(images.image(row)).tobytes(), images.class_names[images.labels[row]])
                for row in range(len(images))}

    assert labelled_pixels(from_zip) == labelled_pixels(from_parquet)
    sampled = load_images(shared_data / "demo" / "eurosat_mini.zip", samples_per_class=5, seed=0)
    assert np.bincount(sampled.labels).tolist() == [5] * 10


def test_real_target_parquet_in_memory_and_streamed(shared_data):
    targets = json.loads((shared_data / "targets" / "targets.json").read_text())
    pacs = shared_data / "targets" / "pacs_photo"
    whole = load_images(pacs, split="train")
    recorded = targets["pacs_photo"]["splits"]["train"]["per_class"]
    assert whole.class_names == targets["pacs_photo"]["class_names"]
    assert dict(zip(whole.class_names, np.bincount(whole.labels).tolist())) == recorded
    sampled = load_images(pacs, split="train", max_samples=100, seed=0)
    assert sampled.row_indices.tolist() == stratified_indices(whole.labels, max_samples=100, seed=0).tolist()
    assert np.bincount(sampled.labels).tolist() == np.bincount(whole.labels[sampled.row_indices]).tolist()
    streamed = load_images(pacs, split="test", samples_per_class=5, streaming=True, seed=0, stream_buffer_size=50)
    assert np.bincount(streamed.labels).tolist() == [5] * 7 and streamed.rows_read < 555
    assert streamed.image(0).size == (128, 128)
    gray = load_images(shared_data / "targets" / "fashion_mnist", split="test", samples_per_class=2)
    assert gray.dataset[0]["image"].mode == "L" and gray.image(0).mode == "RGB"


# -- issue 13: bad images, memory, names and labels that lie ------------------------------------------------------


def test_zip_images_stay_files_in_a_folder_that_lives_with_the_sample(tmp_path):
    write_zip_of_folders(tmp_path / "upload.zip", {"a": 3, "b": 3})
    images = load_images(tmp_path / "upload.zip")
    cells = images.encoded[:][images.image_column]
    assert all(cell["bytes"] is None and Path(cell["path"]).is_file() for cell in cells)  # nothing read into memory
    folder = images.workspace.path
    subset = images.select(np.array([0, 3]))
    del images
    assert folder.is_dir() and row_of(subset.image(1)) == subset.row_indices[1]  # the copy keeps the folder alive
    del subset
    import gc
    gc.collect()
    assert not folder.exists()


def write_bad_folder(root: Path) -> None:
    """Classes a and b of three good PNGs each, plus in a: a truncated JPEG, a zero-byte and a text '.jpg'."""
    write_class_folders(root, {"a": 3, "b": 3})
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, "JPEG")
    (root / "a" / "truncated.jpg").write_bytes(buffer.getvalue()[:300])
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "a" / "notes.jpg").write_text("not an image")


def test_unusable_images_are_named_and_skipped_or_stop_a_strict_load(tmp_path, caplog):
    write_bad_folder(tmp_path / "pets")
    with caplog.at_level("WARNING", logger="lead_hub.data"):
        images = load_images(tmp_path / "pets")
    assert len(images) == 6 and images.provenance()["skipped_images"] == 3
    assert sorted(name for name, _ in images.skipped) == ["a/empty.jpg", "a/notes.jpg", "a/truncated.jpg"]
    assert all("\n" not in reason and "Traceback" not in reason for _, reason in images.skipped)
    assert "skipping 3 of 9 sampled images" in caplog.text and "a/truncated.jpg" in caplog.text
    with pytest.raises(DataSourceError, match=r"3 of 9 sampled images are unusable \(a/empty.jpg .*a/truncated.jpg"):
        load_images(tmp_path / "pets", strict=True)


def test_an_image_over_the_pixel_budget_is_skipped_from_its_header_alone(tmp_path):
    from lead_hub.decoding import DecodeLimits

    write_class_folders(tmp_path / "pets", {"a": 2, "b": 2})
    Image.new("L", (2000, 1500)).save(tmp_path / "pets" / "a" / "huge.png")
    images = load_images(tmp_path / "pets", decode_limits=DecodeLimits(max_image_pixels=2_000_000))
    assert images.skipped == (("a/huge.png", "is 2000×1500 pixels, more than the 2,000,000 one image may decode "
                                             "to (DecodeLimits.max_image_pixels); downscale it"),)


def test_garbage_image_bytes_in_parquet_are_named_by_row(tmp_path):
    path = write_parquet(tmp_path / "train.parquet", interleaved_labels(9))
    table = datasets.Dataset.from_parquet(str(path)).cast_column("image", datasets.Image(decode=False))
    garbage = table.map(lambda row, index: {"image": {"bytes": b"\x89PNG garbage" if index == 4 else
                                                      row["image"]["bytes"], "path": None}}, with_indices=True)
    garbage.cast_column("image", datasets.Image()).to_parquet(str(tmp_path / "garbage.parquet"))
    images = load_images(tmp_path / "garbage.parquet")
    assert len(images) == 8 and [name for name, _ in images.skipped] == ["row 4"]
    assert "does not decode as an image" in images.skipped[0][1]
    with pytest.raises(DataSourceError, match="row 4 does not decode"):
        load_images(tmp_path / "garbage.parquet", strict=True)


def test_skipping_that_leaves_a_class_too_small_says_the_images_were_unusable_and_can_drop_it(tmp_path):
    write_class_folders(tmp_path / "pets", {"a": 1, "b": 2, "c": 2})
    (tmp_path / "pets" / "a" / "empty.png").write_bytes(b"")
    with pytest.raises(DataSourceError, match=r"fewer than 2 usable images once the unusable ones were skipped: "
                                              r"a \(1 usable, 1 unusable\).*--drop-empty-classes"):
        load_images(tmp_path / "pets")
    kept = load_images(tmp_path / "pets", drop_empty_classes=True)
    assert kept.class_names == ["b", "c"] and kept.labels.tolist() == [0, 0, 1, 1] and len(kept.skipped) == 1


def test_nfc_and_nfd_spellings_of_a_class_folder_are_refused_and_names_are_nfc(tmp_path):
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    write_class_folders(tmp_path / "one", {nfd: 2, "tea": 2})
    assert load_images(tmp_path / "one").class_names == [nfc, "tea"]
    write_class_folders(tmp_path / "two", {nfc: 2, nfd: 2})
    with pytest.raises(DataSourceError, match="same name 'café' in different Unicode normalisations"):
        load_images(tmp_path / "two")


def test_a_float_label_column_is_rejected_saying_why(tmp_path):
    path = write_parquet(tmp_path / "train.parquet", [0.0, 1.0] * 3, label_feature=datasets.Value("float64"))
    with pytest.raises(DataSourceError, match="column 'label' is .*float64.*not a label type.*--label-column"):
        load_images(path)


def test_an_elongated_strip_is_caught_by_the_check_not_later_inside_a_model(tmp_path):
    from lead_hub.decoding import DecodeLimits

    write_class_folders(tmp_path / "pets", {"a": 2, "b": 2})
    Image.new("RGB", (3000, 3)).save(tmp_path / "pets" / "a" / "strip.png")  # 9,000 pixels, under the budget
    images = load_images(tmp_path / "pets", decode_limits=DecodeLimits(max_image_pixels=2_000_000))
    assert [name for name, _ in images.skipped] == ["a/strip.png"]
    assert "resizing its short side to 1024 would exceed" in images.skipped[0][1]
