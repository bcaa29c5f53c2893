"""Hostile Hub-style datasets (issue 20): image cells that give a path instead of bytes, null cells, empty and
corrupt parquet files, through ``load_images``, ``lead_hub.rank`` and the Space's job.

A dataset's image must come from the dataset itself. Each hostile cell points somewhere a visitor must not reach
through a server: a real image elsewhere on the machine (absolute, and as ``../`` from the dataset), a device
(``/dev/zero`` would be read until memory runs out), a FIFO (opening it would block forever), a URL, a missing file
and a symbolic link out of the dataset. Every one is refused for its row, named by its row index and never by its
path, with one message for missing and refused files alike; the images inside the dataset are ranked.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import sys
import threading
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_server import LoopbackHub, point_client_at
from PIL import Image

from lead_hub.data import DataSourceError, load_images
from lead_hub.image_locations import OUTSIDE, ImageLocations, ImageRefused
from lead_hub.ranking import rank
from conftest import REPOSITORY_ROOT

SPACE_DIR = REPOSITORY_ROOT / "space"
if str(SPACE_DIR) not in sys.path:
    sys.path.insert(0, str(SPACE_DIR))  # the Space imports its helpers as top-level modules, as on a real Space

import visitor_messages  # noqa: E402
from ranking_job import DATASET_FROM_HUB, RankingRequest, stream_ranking  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FEATURES = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
GOOD_PER_CLASS = 3
QUICK = dict(metrics=["logme"], image_size=32, cache_dir=None, progress=False, num_workers=0)
ONE_DEMO_MODEL = f"local-dir:{REPOSITORY_ROOT / 'demo' / 'models' / 'mobilenetv1_025.coral_in1k'}"
"""rank() gets one model of the demo zoo (the dataset is what is tested); the Space's job ranks the whole zoo."""


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets_cache"))


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (value, 255 - value, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def write_cells(path: Path, cells: list, labels: list[int]) -> Path:
    """A parquet file of ``cells`` (``{"bytes", "path"}`` or None) as a ``datasets`` Image column, written with
    pyarrow: ``datasets`` itself would open the paths while writing."""
    table = pa.table({"image": pa.array(cells, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array(labels, pa.int64())})
    pq.write_table(table.replace_schema_metadata(
        {"huggingface": json.dumps({"info": {"features": FEATURES.to_dict()}})}), path)
    return path


def server_files(tmp_path: Path) -> dict[str, Path]:
    """What an attacker points at: an image elsewhere on the server, and a FIFO."""
    secrets = tmp_path / "server" / "private"
    secrets.mkdir(parents=True)
    (secrets / "photo.png").write_bytes(png(250))
    os.mkfifo(secrets / "pipe.png")
    return {"image": secrets / "photo.png", "fifo": secrets / "pipe.png"}


def hostile_paths(server: dict[str, Path], depth: int) -> dict[str, str]:
    return {"absolute": str(server["image"]),
            "relative": "../" * depth + str(server["image"]).lstrip("/"),
            "device": "/dev/zero",
            "fifo": str(server["fifo"]),
            "url": "http://127.0.0.1:9/photo.png",
            "missing": "images/missing.png"}


def good_and_hostile(hostile: dict[str, str], good_path) -> tuple[list, list[int], dict[str, int]]:
    """Cells: ``GOOD_PER_CLASS`` good images a class (paths from ``good_path(k)``), then one cell per hostile path;
    the row index of each hostile case."""
    cells = [{"bytes": None, "path": good_path(k)} for k in range(2 * GOOD_PER_CLASS)]
    labels = [k % 2 for k in range(2 * GOOD_PER_CLASS)]
    rows = {}
    for name, path in hostile.items():
        rows[name] = len(cells)
        cells.append({"bytes": None, "path": path})
        labels.append(len(cells) % 2)
    return cells, labels, rows


def assert_refused_by_row(skipped: list[str], hostile: dict[str, str], rows: dict[str, int],
                          secrets: list[str]) -> None:
    """Each hostile row is skipped, named ``row N``; a path (missing or refused alike) with one message, a URL
    with another; no message holds a server path or file name."""
    by_row = {int(text.split(" ", 2)[1]): text.split(" ", 2)[2] for text in skipped}
    assert sorted(by_row) == sorted(rows.values())
    for text in skipped:
        assert not any(secret in text for secret in secrets), text
        assert "\n" not in text
    for name, row in rows.items():
        if "://" in hostile[name]:
            assert by_row[row].startswith("image URL refused"), name
        else:
            assert by_row[row] == OUTSIDE, name


# -- a local dataset folder: parquet with paths --------------------------------------------------------------------


def test_path_cells_of_a_local_parquet_are_read_only_inside_its_folder(tmp_path, caplog):
    server = server_files(tmp_path)
    folder = tmp_path / "mine"
    (folder / "images").mkdir(parents=True)
    for k in range(2 * GOOD_PER_CLASS):
        (folder / "images" / f"{k}.png").write_bytes(png(20 * k))
    (folder / "images" / "link.png").symlink_to(server["image"])
    hostile = {**hostile_paths(server, depth=len(folder.parts)), "symlink_out": "images/link.png"}
    # the good rows: relative to the dataset folder, and one absolute path inside it
    cells, labels, rows = good_and_hostile(hostile, lambda k: f"images/{k}.png" if k else
                                           str(folder / "images" / "0.png"))
    write_cells(folder / "train.parquet", cells, labels)
    board = rank(ONE_DEMO_MODEL, folder, **QUICK)
    assert board.provenance["samples"] == 2 * GOOD_PER_CLASS and board.best_model is not None
    assert_refused_by_row(board.provenance["skipped_images"], hostile, rows,
                          [str(tmp_path), "photo", "pipe", "/dev"])


def test_remote_image_urls_are_fetched_only_when_allowed(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the fetch goes through huggingface_hub's client
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    picture = png(77)

    class Images(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Length", str(len(picture)))
            self.end_headers()
            self.wfile.write(picture)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/picture.png"
        cells = [{"bytes": png(10 * k), "path": None} for k in range(4)] + [{"bytes": None, "path": url}]
        path = write_cells(tmp_path / "remote.parquet", cells, [0, 1, 0, 1, 0])
        refused = load_images(path, progress=False)
        fetched = load_images(path, progress=False, allow_remote_image_urls=True)
    finally:
        server.shutdown()
    assert len(refused) == 4 and refused.skipped[0][1].startswith("image URL refused")
    assert len(fetched) == 5 and not fetched.skipped and fetched.encoded[4]["image"]["bytes"] == picture


def test_every_read_shares_the_zip_byte_budget_and_stops_at_it(tmp_path):
    (tmp_path / "a.png").write_bytes(png(1))
    (tmp_path / "big.png").write_bytes(os.urandom(5000))
    locations = ImageLocations(folder=tmp_path, byte_budget=3000)
    assert locations.read("a.png") == png(1)
    with pytest.raises(ImageRefused, match="exceed the 3,000-byte budget"):
        locations.read("big.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")  # inside the folder, but a device: never opened
    with pytest.raises(ImageRefused, match=OUTSIDE):
        ImageLocations(folder=tmp_path).read("zero.png")


def test_null_image_cells_are_skipped_and_listed_and_the_other_rows_ranked(tmp_path):
    cells = [{"bytes": png(30 * k), "path": None} for k in range(6)]
    cells[2] = cells[5] = None
    path = write_cells(tmp_path / "nulls.parquet", cells + [{"bytes": png(9), "path": None}], [0, 1, 0, 1, 0, 1, 1])
    board = rank(ONE_DEMO_MODEL, path, **QUICK)
    assert board.provenance["samples"] == 5
    assert board.provenance["skipped_images"] == ["row 2 has no image (an empty cell)",
                                                  "row 5 has no image (an empty cell)"]


@pytest.mark.parametrize("damage", ["no_rows", "bit_flipped_footer"])
def test_an_empty_or_corrupt_parquet_is_one_error_naming_it(tmp_path, damage):
    path = write_cells(tmp_path / "broken.parquet", [{"bytes": png(k), "path": None} for k in range(4)],
                       [0, 1, 0, 1])
    if damage == "no_rows":
        write_cells(path, [], [])
    else:
        data = bytearray(path.read_bytes())
        footer = int.from_bytes(data[-8:-4], "little")
        start = len(data) - 8 - footer + 10
        data[start:start + 50] = bytes(byte ^ 0x5A for byte in data[start:start + 50])
        path.write_bytes(bytes(data))
    with pytest.raises(DataSourceError) as refused:
        load_images(path, progress=False)
    message = str(refused.value)
    assert "broken.parquet" in message and "\n" not in message
    assert ("has no rows" if damage == "no_rows" else "cannot read split 'train'") in message


# -- the same through a Hub dataset repository: rank() and the Space's job -----------------------------------------


def test_a_hub_dataset_reads_images_only_from_its_own_repository(tmp_path, monkeypatch):
    server = server_files(tmp_path)
    other = {"other_repository": "hf://datasets/eve/private/photo.png",
             "repository_escape": "hf://datasets/eve/hostile@main/../private/photo.png"}
    hostile = {**hostile_paths(server, depth=8), **other}
    cells, labels, rows = good_and_hostile(hostile, lambda k: f"images/{k}.png")
    null_row = len(cells)  # and a row with no image at all
    write_cells(tmp_path / "train.parquet", [*cells, None], [*labels, 0])
    files = {f"images/{k}.png": png(20 * k) for k in range(2 * GOOD_PER_CLASS)}
    with LoopbackHub() as hub:
        hub.store.create_repo("dataset", "eve/hostile")
        hub.store.commit("dataset", "eve/hostile",
                         add={"data/train-00000-of-00001.parquet": (tmp_path / "train.parquet").read_bytes(), **files})
        hub.store.create_repo("dataset", "eve/private")
        hub.store.commit("dataset", "eve/private", add={"photo.png": png(250)})
        point_client_at(monkeypatch, hub.endpoint, str(tmp_path / "hf_home"))
        board = rank(ONE_DEMO_MODEL, "eve/hostile", samples_per_class=20, **QUICK)
        updates = list(stream_ranking(RankingRequest(dataset_from=DATASET_FROM_HUB, hub_dataset="eve/hostile",
                                                     zoo="demo", primary_metric="logme", samples_per_class=20,
                                                     image_size=32), results_dir=tmp_path / "results"))
    secrets = [str(tmp_path), "photo", "pipe", "/dev", "private"]
    assert board.provenance["samples"] == 2 * GOOD_PER_CLASS and board.best_model is not None
    skipped = board.provenance["skipped_images"]
    assert f"row {null_row} has no image (an empty cell)" in skipped
    assert_refused_by_row([text for text in skipped if not text.startswith(f"row {null_row} ")], hostile, rows,
                          secrets)
    final = updates[-1]
    assert final.final and final.board.provenance["samples"] == 2 * GOOD_PER_CLASS
    assert final.board.provenance["skipped_images"] == skipped
    assert f"Skipped {len(rows) + 1} unreadable image(s)" in final.status
    assert not any(secret in final.status for secret in secrets)


def test_the_space_job_shows_a_hub_dataset_without_rows_in_one_line(tmp_path, monkeypatch):
    write_cells(tmp_path / "train.parquet", [], [])
    with LoopbackHub() as hub:
        hub.store.create_repo("dataset", "eve/broken")
        hub.store.commit("dataset", "eve/broken",
                         add={"data/train-00000-of-00001.parquet": (tmp_path / "train.parquet").read_bytes()})
        point_client_at(monkeypatch, hub.endpoint, str(tmp_path / "hf_home"))
        request = RankingRequest(dataset_from=DATASET_FROM_HUB, hub_dataset="eve/broken", zoo="demo",
                                 primary_metric="logme", samples_per_class=3, image_size=32)
        with pytest.raises(DataSourceError) as refused:
            list(stream_ranking(request, results_dir=tmp_path / "results"))
    shown = visitor_messages.plain_sentence(str(refused.value))
    assert "of 'eve/broken'" in shown and "\n" not in shown.strip()


@pytest.mark.parametrize("streaming", [True, False])
def test_a_hub_image_folder_dataset_still_reads_its_own_files(tmp_path, monkeypatch, streaming):
    """The images of a Hub image-folder repository are paths (hf:// when streamed, the local Hub cache when
    downloaded): inside the dataset, so they are read."""
    files = {f"train/{name}/{index}.png": png(40 * index + (100 if name == "b" else 0))
             for name in ("a", "b") for index in range(3)}
    with LoopbackHub() as hub:
        hub.store.create_repo("dataset", "eve/folders")
        hub.store.commit("dataset", "eve/folders", add=files)
        point_client_at(monkeypatch, hub.endpoint, str(tmp_path / "hf_home"))
        images = load_images("eve/folders", streaming=streaming, progress=False)
    assert len(images) == 6 and not images.skipped and images.class_names == ["a", "b"]


def test_which_urls_each_kind_of_dataset_may_read():
    """A Hub dataset reads its own repository only; a caller's dataset object any Hub dataset; http(s) needs the
    opt-in. Nothing is opened here: a refusal happens before any read."""
    own = ImageLocations(repository="hf://datasets/eve/pets@abc123")
    assert own._allowed_url("hf://datasets/eve/pets@main/a.png") == "hf://datasets/eve/pets@main/a.png"
    assert own._allowed_url("images/a.png") == "hf://datasets/eve/pets@abc123/images/a.png"
    for refused in ("hf://datasets/eve/pets-other/a.png", "hf://datasets/eve/pets@main/../x/a.png",
                    "https://example.com/a.png", "file:///etc/hostname", "../a.png", "/etc/hostname"):
        with pytest.raises(ImageRefused):
            own._allowed_url(refused)
    caller_object = ImageLocations(folder=Path("/"), repository="hf://datasets/")
    assert caller_object._allowed_url("zip://a.png::hf://datasets/x/y@v1/data.zip").startswith("zip://")
    with pytest.raises(ImageRefused, match="--allow-remote-image-urls"):
        caller_object._allowed_url("https://example.com/a.png")
    assert ImageLocations(allow_remote_urls=True)._allowed_url("https://example.com/a.png")
