"""The Gradio Space (space/): form checks, hostile and over-limit uploads, the streamed demo ranking, publishing
with the visitor's token, and the launched app driven through gradio_client."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import socket
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hub_server import LoopbackHub, point_client_at
from PIL import Image

from lead_hub.archive import ArchiveError, ArchiveLimits
from lead_hub.data import DataSourceError
from lead_hub.leaderboard import Leaderboard
from lead_hub.ranking import DEFAULT_METRICS, DEFAULT_METRICS_RULE, DEFAULT_SAMPLES_PER_CLASS, DEMO_DATASET, rank
from lead_hub.zoo import load_zoo

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SPACE_DIR = REPOSITORY_ROOT / "space"
if str(SPACE_DIR) not in sys.path:
    sys.path.insert(0, str(SPACE_DIR))  # the Space imports its helpers as top-level modules, as on a real Space

import app  # noqa: E402
import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from hub_publish import PublishError, choose_token, publish  # noqa: E402
from ranking_job import (  # noqa: E402
    DATASET_FROM_HUB,
    MODELS_FROM_IDS,
    RESULT_FILES,
    RankingRequest,
    SpaceInputError,
    SpaceLimits,
    defaults_taken,
    offered_zoos,
    parse_model_ids,
    stream_ranking,
)
from visitor_messages import ranking_failure  # noqa: E402

QUICK_SAMPLES_PER_CLASS = 6
"""Samples per class of the test rankings: 60 demo images keep a ranking of the six demo models to seconds."""
DEMO_MODEL_IDS = sorted(entry.model_id for entry in load_zoo("demo").loadable)
DEMO_MODEL_NAMES = sorted(model_id.rsplit("/", 1)[-1] for model_id in DEMO_MODEL_IDS)
TOKEN = "hf_spaceTestToken1234567890"


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    """One feature cache for every Space test of the session: each demo model's features are extracted once."""
    return tmp_path_factory.getbasetemp() / "space_feature_cache"


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def quick_request(**fields) -> RankingRequest:
    fields.setdefault("upload", str(DEMO_DATASET))
    return RankingRequest(samples_per_class=QUICK_SAMPLES_PER_CLASS, **fields)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def launched_app(limits: SpaceLimits, cache_dir: Path, in_space: bool | None = False) -> Iterator[str]:
    """The Space served on 127.0.0.1 (a free port) in this process, as ``python space/app.py`` serves it; yields
    its URL and closes it afterwards. ``in_space=None`` lets the app tell from the environment."""
    demo = app.build_demo(limits, cache_dir=cache_dir, in_space=in_space)
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.launch_options(limits))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        # A stopped ranking's thread finishes its current model first; the process must not exit under it (torch
        # aborts with "terminate called without an active exception" when it is torn down mid-computation).
        for worker in [thread for thread in threading.enumerate() if thread.name == "lead-hub-space-ranking"]:
            worker.join(timeout=600)


# ---- the form: hostile and over-limit input ------------------------------------------------------------------


def test_a_zip_reaching_outside_its_folder_is_refused_naming_the_member(tmp_path):
    hostile = write_zip(tmp_path / "hostile.zip", {"cats/ok.png": png_bytes((9, 9, 9)),
                                                    "../escaped.png": png_bytes((0, 0, 0))})
    with pytest.raises(ArchiveError, match=r"'\.\./escaped\.png' points outside the archive") as refused:
        list(stream_ranking(quick_request(upload=str(hostile)), results_dir=tmp_path / "results"))
    assert not (tmp_path / "escaped.png").exists()
    # The page names the upload by its file name, never by where the server keeps it.
    shown = ranking_failure(refused.value)
    assert shown.startswith("hostile.zip: member '../escaped.png' points outside the archive") and "/" not in \
        shown.replace("../", "")


def test_a_zip_holding_something_other_than_images_is_refused(tmp_path):
    hostile = write_zip(tmp_path / "script.zip", {"cats/a.png": png_bytes((1, 2, 3)), "cats/run.sh": b"rm -rf /"})
    with pytest.raises(ArchiveError, match="'cats/run.sh' is not an image file"):
        list(stream_ranking(quick_request(upload=str(hostile)), results_dir=tmp_path / "results"))


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"this is not a zip archive")
    with pytest.raises(ArchiveError, match="not a readable zip archive"):
        list(stream_ranking(quick_request(upload=str(fake)), results_dir=tmp_path / "results"))


def test_an_upload_over_the_size_limit_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    import ranking_job

    def never(*arguments, **options):
        raise AssertionError("an over-limit upload was unpacked")

    monkeypatch.setattr(ranking_job, "extract_image_archive", never)
    limits = SpaceLimits(max_upload_bytes=1000)
    with pytest.raises(SpaceInputError, match=r"eurosat_mini\.zip is 467,264 bytes, more than the 1,000 bytes"):
        list(stream_ranking(quick_request(), results_dir=tmp_path / "results", limits=limits))


def test_an_archive_over_the_image_count_limit_is_refused(tmp_path):
    members = {f"{name}/{index}.png": png_bytes((index, 0, 0)) for name in ("a", "b") for index in range(3)}
    archive = write_zip(tmp_path / "six.zip", members)
    limits = SpaceLimits(archive=ArchiveLimits(max_files=5))
    with pytest.raises(ArchiveError, match=r"holds more than 5 entries .*ArchiveLimits.max_files\)"):
        list(stream_ranking(quick_request(upload=str(archive)), results_dir=tmp_path / "results", limits=limits))


def test_a_missing_upload_asks_for_one(tmp_path):
    with pytest.raises(SpaceInputError, match="no zip uploaded"):
        list(stream_ranking(quick_request(upload=None), results_dir=tmp_path / "results"))


@pytest.mark.parametrize("dataset_id", ["../etc", "/etc/passwd", "demo/models", "owner/name/extra", "no-owner", ""])
def test_hub_dataset_ids_that_are_not_ids_or_are_server_paths_are_refused(dataset_id, tmp_path, monkeypatch):
    monkeypatch.chdir(REPOSITORY_ROOT)  # where demo/models exists
    request = quick_request(dataset_from=DATASET_FROM_HUB, hub_dataset=dataset_id)
    with pytest.raises(SpaceInputError, match="Hub dataset"):
        list(stream_ranking(request, results_dir=tmp_path / "results"))


def test_a_hub_dataset_that_cannot_be_reached_is_named_in_the_error(tmp_path):
    request = quick_request(dataset_from=DATASET_FROM_HUB, hub_dataset="someone/no-such-dataset")
    with pytest.raises(DataSourceError, match="someone/no-such-dataset") as failed:
        list(stream_ranking(request, results_dir=tmp_path / "results"))
    assert "someone/no-such-dataset" in ranking_failure(failed.value)


@pytest.mark.parametrize(("text", "refusal"), [
    ("local-dir:/etc", "not a Hub or timm model id"),
    ("timm/resnet18\n../secret", "not a Hub or timm model id"),
    ("/root/model", "not a Hub or timm model id"),
    ("timm/a, timm/a", "listed twice"),
    (" \n ", "the list is empty"),
    (",".join(f"timm/model{index}" for index in range(21)), "more than the 20"),
])
def test_model_id_lists_are_limited_to_hub_and_timm_ids(text, refusal):
    with pytest.raises(SpaceInputError, match=refusal):
        parse_model_ids(text, SpaceLimits())


def test_model_ids_are_split_on_commas_spaces_and_new_lines():
    text = "hf-hub:timm/resnet18.a1_in1k, facebook/dinov2-small\nresnet50.a1_in1k  timm/vit@v1.0"
    assert parse_model_ids(text, SpaceLimits()) == ["hf-hub:timm/resnet18.a1_in1k", "facebook/dinov2-small",
                                                    "resnet50.a1_in1k", "timm/vit@v1.0"]


@pytest.mark.parametrize(("fields", "refusal"), [
    ({"samples_per_class": 1}, "Samples per class: 1; choose 2 to 200"),
    ({"samples_per_class": 201}, "Samples per class: 201"),
    ({"image_size": 4096}, "Image size: 4096 px"),
    ({"split": "../train"}, "Split"),
    ({"zoo": "paper_ssl"}, "not one of the zoos offered here"),
    ({"models_from": MODELS_FROM_IDS, "model_ids": "local-dir:demo/models/x"}, "not a Hub or timm model id"),
])
def test_out_of_range_settings_are_refused_naming_the_field(fields, refusal, tmp_path):
    request = RankingRequest(upload=str(DEMO_DATASET), **{"samples_per_class": 6, **fields})
    with pytest.raises(SpaceInputError, match=refusal):
        list(stream_ranking(request, results_dir=tmp_path / "results"))


def test_the_offered_zoos_are_those_with_models_to_load():
    offered = offered_zoos()
    assert "demo" in offered and "modern" in offered
    assert "paper_ssl" not in offered  # no model of that zoo has a loadable copy


def test_an_abandoned_ranking_stops_after_its_current_model(tmp_path, monkeypatch):
    import time

    import ranking_job

    scored = []

    def slow_rank(models, dataset, *, on_model_done, **options):
        for index in range(50):
            time.sleep(0.1)
            scored.append(index)
            row = {"model_id": f"model-{index}", "lead": -float(index), "num_params": 1}
            on_model_done(f"model-{index}", Leaderboard.from_rows([row], {"metrics": ["lead"]}))
        raise AssertionError("the abandoned ranking ran to its end")

    monkeypatch.setattr(ranking_job, "rank", slow_rank)
    ranking = stream_ranking(quick_request(), results_dir=tmp_path / "results")
    assert next(ranking).status.startswith("Scored 1 of 6 models (latest: model-0)")
    ranking.close()  # the visitor leaves the page
    for worker in [thread for thread in threading.enumerate() if thread.name == "lead-hub-space-ranking"]:
        worker.join(timeout=30)
        assert not worker.is_alive()
    assert len(scored) < 50


# ---- the demo ranking ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, feature_cache):
    """The default request (demo zoo, demo zip, 64 px) at 6 samples per class: every update, and what the final
    update's files held while they existed."""
    from lead_hub import features

    results_dir = tmp_path_factory.mktemp("space_results")
    stages = []
    updates = []
    worker_counts = []
    real_extract_by_id = features.extract_by_id

    def recording_extract_by_id(*arguments, **options):
        worker_counts.append(options.get("num_workers"))
        return real_extract_by_id(*arguments, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features, "extract_by_id", recording_extract_by_id)
        for update in stream_ranking(quick_request(), results_dir=results_dir, cache_dir=feature_cache,
                                     progress=lambda fraction, text: stages.append((fraction, text))):
            updates.append(update)
    final = updates[-1]
    return {"updates": updates, "stages": stages, "csv": pd.read_csv(final.files[0]),
            "parquet": Leaderboard.load(final.files[1]), "per_class": pd.read_parquet(final.files[2]),
            "chart_header": final.chart.read_bytes()[:8], "worker_counts": worker_counts}


def test_the_demo_ranking_streams_one_update_per_model_then_the_result(demo_run):
    updates = demo_run["updates"]
    partial, final = updates[:-1], updates[-1]
    assert [len(update.board.table) for update in partial] == list(range(1, len(DEMO_MODEL_IDS) + 1))
    assert not any(update.final for update in partial) and final.final
    assert all(update.chart is None and update.files == () for update in partial)
    assert [fraction for fraction, _ in demo_run["stages"] if fraction > 0] == \
        [done / len(DEMO_MODEL_IDS) for done in range(1, len(DEMO_MODEL_IDS) + 1)]
    assert any("unpacking eurosat_mini.zip" in text for _, text in demo_run["stages"])


def test_the_space_decodes_images_in_its_own_thread_never_in_forked_workers(demo_run):
    # A web server is multi-threaded, and a DataLoader worker forked while another thread holds a lock can wait
    # for it forever: the Space asks rank() for no worker processes.
    assert demo_run["worker_counts"] == [0] * len(DEMO_MODEL_IDS)


def test_the_demo_ranking_ranks_every_demo_model(demo_run):
    board = demo_run["updates"][-1].board
    assert sorted(board.table["model_id"]) == DEMO_MODEL_IDS
    assert np.isfinite(board.table["lead"].to_numpy(float)).all()
    assert board.table["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert board.provenance["samples"] == 10 * QUICK_SAMPLES_PER_CLASS and board.provenance["image_size"] == 64
    # The control trained only for person / no person must not win on land-use tiles.
    assert board.best_model != "local-dir:demo/models/mobilenetv1_025.mlperf_vww"
    status = demo_run["updates"][-1].status
    assert status.startswith("Ranked 6 models on eurosat_mini.zip [train], 60 images in 10 classes")


def test_the_demo_ranking_writes_the_csv_the_parquet_to_publish_and_the_chart(demo_run):
    board = demo_run["updates"][-1].board
    assert [path.name for path in demo_run["updates"][-1].files] == list(RESULT_FILES)
    assert demo_run["csv"]["model_id"].tolist() == board.table["model_id"].tolist()
    assert np.allclose(demo_run["csv"]["lead"], board.table["lead"])
    assert demo_run["chart_header"] == b"\x89PNG\r\n\x1a\n"
    # The parquet keeps the provenance `lead-hub push` publishes (the CSV cannot), the per-class rows their own.
    published = demo_run["parquet"]
    assert published.table["model_id"].tolist() == board.table["model_id"].tolist()
    assert published.provenance["dataset"] == "eurosat_mini.zip"
    assert published.provenance["metrics"] == list(DEFAULT_METRICS)  # the page's defaults, those of the CLI
    per_class = demo_run["per_class"]
    assert len(per_class) == len(DEMO_MODEL_IDS) * 10 and set(per_class["model_id"]) == set(DEMO_MODEL_IDS)
    assert per_class.groupby("model_id")["samples"].sum().eq(10 * QUICK_SAMPLES_PER_CLASS).all()


def test_a_stopped_ranking_keeps_the_model_in_progress_writes_its_files_and_ends_its_thread(tmp_path,
                                                                                             monkeypatch):
    import time

    import ranking_job

    scored = []
    stop = threading.Event()

    def slow_rank(models, dataset, *, on_model_done, per_class, **options):
        for index in range(50):
            if index == 1:
                stop.set()  # Stop is pressed while the second model is being scored
            time.sleep(0.05)
            scored.append(index)
            rows = [{"model_id": f"model-{done}", "lead": -float(done), "num_params": 1} for done in range(index + 1)]
            classes = pd.DataFrame([{"model_id": f"model-{done}", "metric": "lead", "class_name": "cats",
                                     "samples": 6} for done in range(index + 1)]) if per_class else None
            provenance = {"metrics": ["lead"], "dataset": "d", "split": "train", "samples": 60, "num_classes": 10}
            on_model_done(f"model-{index}", Leaderboard.from_rows(rows, provenance, classes))
        raise AssertionError("the stopped ranking ran to its end")

    monkeypatch.setattr(ranking_job, "rank", slow_rank)
    updates = list(stream_ranking(quick_request(), results_dir=tmp_path, stop=stop))
    final = updates[-1]
    assert scored == [0, 1]  # the model in progress when Stop came was finished, and no other was started
    assert final.final and final.status.startswith("Stopped after 2 of 6 models on eurosat_mini.zip [train]")
    assert sorted(final.board.table["model_id"]) == ["model-0", "model-1"]
    assert [path.name for path in final.files] == list(RESULT_FILES) and final.chart.is_file()
    assert Leaderboard.load(final.files[1]).table["model_id"].tolist() == ["model-0", "model-1"]
    assert len(pd.read_parquet(final.files[2])) == 2
    # The worker has ended by the time the final update is out: nothing of the stopped ranking keeps running.
    assert not [thread for thread in threading.enumerate() if thread.name == "lead-hub-space-ranking"]


def test_a_ranking_stopped_before_its_first_model_says_so(tmp_path):
    stop = threading.Event()
    stop.set()
    updates = list(stream_ranking(quick_request(), results_dir=tmp_path, stop=stop))
    assert [update.status for update in updates] == ["Stopped before any model was scored; press Rank models to "
                                                     "start again."]
    assert updates[0].board is None and updates[0].files == () and updates[0].chart is None


def test_an_upload_is_recorded_by_name_and_content_hash(demo_run):
    provenance = demo_run["updates"][-1].board.provenance
    assert provenance["dataset"] == "eurosat_mini.zip"
    assert provenance["dataset_revision"] == "sha256:" + hashlib.sha256(DEMO_DATASET.read_bytes()).hexdigest()
    assert "lead_hub_space_" not in str(provenance)  # no temporary folder of the server leaks into a leaderboard


def test_the_space_scores_are_those_of_rank_as_the_cli_calls_it(demo_run, feature_cache):
    direct = rank("demo", "demo", samples_per_class=QUICK_SAMPLES_PER_CLASS, image_size=64, cache_dir=feature_cache,
                  progress=False)
    space = demo_run["updates"][-1].board.table.set_index("model_id")["lead"]
    assert space.to_dict() == direct.table.set_index("model_id")["lead"].to_dict()


def test_the_page_table_shows_scores_to_4_digits_and_missing_values_as_na():
    rows = [{"model_id": "good", "lead": -0.123456, "num_params": 10, "notes": ""},
            {"model_id": "broken", "lead": np.nan, "num_params": None, "notes": "feature extraction failed"}]
    shown = app.display_table(Leaderboard.from_rows(rows, {"metrics": ["lead"]}))
    assert shown.columns.tolist() == ["rank", "model", "lead", "parameters", "pareto", "notes"]
    assert shown.iloc[0].tolist() == ["1", "good", "-0.1235", "10", "yes", ""]
    assert shown.iloc[1].tolist() == ["", "broken", "n/a", "n/a", "", "feature extraction failed"]


def test_the_page_table_names_models_by_their_short_name_and_sizes_in_millions(demo_run):
    shown = app.display_table(demo_run["updates"][-1].board).set_index("model")
    assert sorted(shown.index) == DEMO_MODEL_NAMES
    assert shown.loc["mobilenetv1_100.coral_in1k_emb", "parameters"] == "3.21 M"


def test_page_text_shows_hostile_names_as_typed_and_no_server_path():
    shown = app.as_markdown("'cats/<b>x</b>[a](b)*.png' in /tmp/gradio/0a1b/upload.zip, local-dir:/srv/app/demo/m")
    assert shown == r"'cats/&lt;b&gt;x&lt;/b&gt;\[a\]\(b\)\*.png' in upload.zip, local-dir:m"
    archive_error = ArchiveError("/tmp/gradio/0a1b/upload.zip: member '<img src=x>.txt' is not an image file")
    assert ranking_failure(archive_error) == "upload.zip: member '<img src=x>.txt' is not an image file."
    assert ranking_failure(RuntimeError("cannot read /home/someone/weights")).startswith(
        "The ranking failed on the server (cannot read weights); press Rank models to try again")


def test_the_metric_ranked_by_is_described_and_not_offered_again():
    assert "hscore" not in app._other_metric_choices("hscore") and "lead" in app._other_metric_choices("hscore")
    assert app.metric_description("lead").startswith("**lead**: How well the model's outputs would fit your labels")
    assert "Needs features + source logits" in app.metric_description("leep")


def test_a_metric_that_ties_every_model_is_flagged_in_the_final_status(tmp_path, feature_cache, demo_run):
    # 60 images and features of 256 to 1,024 dimensions: H-score is K − 1 = 9 for every model, so it cannot rank.
    updates = list(stream_ranking(quick_request(primary_metric="hscore"), results_dir=tmp_path,
                                  cache_dir=feature_cache))
    ranked_by_hscore = updates[-1].status.split("\n\n")
    tie = next(paragraph for paragraph in ranked_by_hscore if paragraph.startswith("Warning: hscore"))
    assert re.match(r"Warning: hscore cannot rank [2-6] models that all score 9 \(", tie), tie
    assert "use more samples per class" in tie and "not affected" not in tie  # the ranking itself is in doubt
    assert_one_plain_sentence(tie)
    # Ranked by LEAD with hscore ticked beside it, the same tie is only the hscore column's: LEAD orders the models.
    beside = list(stream_ranking(quick_request(other_metrics=("hscore",)), results_dir=tmp_path / "beside",
                                 cache_dir=feature_cache))
    by_lead = beside[-1].status.split("\n\n")
    warnings = [paragraph for paragraph in by_lead if paragraph.startswith("Warning:")]
    assert warnings and all(paragraph.startswith("Warning: hscore cannot rank") for paragraph in warnings), by_lead
    assert warnings[0].endswith("; the ranking by lead is not affected.")
    assert_one_plain_sentence(warnings[0])
    # The defaults (LEAD, with PACTran beside it) rank the demo without a tie.
    default_status = demo_run["updates"][-1].status
    assert not [paragraph for paragraph in default_status.split("\n\n") if paragraph.startswith("Warning:")]


def test_the_page_and_the_request_default_to_the_command_lines_metrics_and_sample():
    assert (RankingRequest().primary_metric, *RankingRequest().other_metrics) == DEFAULT_METRICS
    assert RankingRequest().samples_per_class == DEFAULT_SAMPLES_PER_CLASS
    fields = {block.elem_id: block for block in app.build_demo().blocks.values() if getattr(block, "elem_id", None)}
    assert fields["primary-metric"].value == DEFAULT_METRICS[0]
    assert fields["other-metrics"].value == list(DEFAULT_METRICS[1:])  # ticked; a visitor can untick them
    assert fields["samples-per-class"].value == DEFAULT_SAMPLES_PER_CLASS


def test_the_defaults_taken_are_named_with_the_rule_that_chose_them_as_the_cli_names_them():
    from lead_hub.cli import build_parser
    from lead_hub.cli.rank import defaults_used

    both = defaults_taken(list(DEFAULT_METRICS), DEFAULT_SAMPLES_PER_CLASS)
    cli = defaults_used(build_parser().parse_args(["rank", "--zoo", "demo", "--dataset", "demo"]))
    rule = f"metrics {', '.join(DEFAULT_METRICS)} ({DEFAULT_METRICS_RULE}; "
    assert both.startswith(rule) and cli.startswith(rule)  # one wording, with each front end's way to change it
    assert "'Also score with' under More settings" in both and "--" not in both
    assert f"{DEFAULT_SAMPLES_PER_CLASS} images per class at most, as in the command line" in both
    # Only what the visitor left as it was is named as a default.
    assert defaults_taken(list(DEFAULT_METRICS), 6) == both.split("; 30 images")[0]
    assert defaults_taken(["lead"], DEFAULT_SAMPLES_PER_CLASS).startswith(f"{DEFAULT_SAMPLES_PER_CLASS} images")
    assert defaults_taken(["lead", "hscore"], 6) == defaults_taken(["lead", "pactran", "hscore"], 6) == ""
    assert defaults_taken(["pactran", "lead"], 6) == ""  # ranked by another metric


def test_the_final_and_the_stopped_status_name_the_defaults_taken_only(tmp_path):
    import ranking_job

    provenance = {"metrics": ["lead"], "dataset": "pets.zip", "split": "train", "samples": 40, "num_classes": 2}
    board = Leaderboard.from_rows([{"model_id": "a", "lead": -1.0, "num_params": 1},
                                   {"model_id": "b", "lead": -2.0, "num_params": 2}], provenance)
    defaults = defaults_taken(list(DEFAULT_METRICS), DEFAULT_SAMPLES_PER_CLASS)
    final = ranking_job._final_update(board, tmp_path, 3.0, defaults)
    stopped = ranking_job._stopped_update((1, 2, board), tmp_path, 3.0, defaults)
    for status in (final.status, stopped.status):
        assert status.split("\n\n")[1] == f"Defaults: {defaults}."
    assert "Defaults" not in ranking_job._final_update(board, tmp_path, 3.0, "").status


def test_error_messages_keep_lead_hub_wording_and_name_unexpected_errors():
    assert ranking_failure(KeyError("unknown metric 'x'")) == "Unknown metric 'x'."
    assert ranking_failure(SpaceInputError("Split: bad")) == "Split: bad."
    assert ranking_failure(RuntimeError("out of memory")).startswith("The ranking failed on the server (out of memory)")


_CLASS_NAME = re.compile(r"\b(?:[A-Z][a-z0-9]+){1,}(?:Error|Exception|Limits)\b|\b[A-Z]\w+\.\w+\b")
_ENVIRONMENT_VARIABLE = re.compile(r"\bHF_[A-Z_]+\b")


def assert_one_plain_sentence(sentence: str) -> None:
    """What every message of the page must be: one sentence (a capital or a name first, a full stop last, no full
    stop inside), naming no Python class, no folder of the server, no environment variable, no command to rerun."""
    assert sentence.endswith(".") and ". " not in sentence.replace("e.g. ", "").rstrip("."), sentence
    assert not _CLASS_NAME.search(sentence), sentence
    assert not _ENVIRONMENT_VARIABLE.search(sentence), sentence
    assert "command" not in sentence and "`" not in sentence and "--" not in sentence, sentence
    assert str(Path.cwd()) not in sentence and "/srv" not in sentence and "/tmp" not in sentence, sentence


def test_real_lead_hub_errors_become_one_plain_sentence_a_visitor_can_act_on(tmp_path, monkeypatch):
    """lead_hub's messages as they are raised (the command line's wording: classes, folders, environment variables,
    "run the same command again"), each turned into the page's sentence."""
    from lead_hub.archive import extract_image_archive
    from lead_hub.data import load_images
    from lead_hub.hub import HubAuthError, HubError, HubNetworkError
    from lead_hub.network import HubUnreachableError
    from visitor_messages import publishing_failure

    monkeypatch.chdir(tmp_path)
    too_many = write_zip(tmp_path / "six.zip", {f"a/{index}.png": png_bytes((index, 0, 0)) for index in range(6)})
    with pytest.raises(ArchiveError) as archive_refusal:
        extract_image_archive(too_many, tmp_path / "out", ArchiveLimits(max_files=5))
    assert "ArchiveLimits.max_files" in str(archive_refusal.value)  # the CLI's wording, which the page rewrites
    shown = ranking_failure(archive_refusal.value)
    assert shown.startswith("six.zip holds more than 5 entries") and "sample fewer images per class" in shown, shown
    assert "ArchiveLimits" not in shown, shown
    with pytest.raises(DataSourceError) as missing_dataset:
        load_images(str(tmp_path / "no_such_folder"), samples_per_class=2)
    hub_dataset = DataSourceError(f"cannot open dataset 'someone/gated' (config=None, revision=None): there is no "
                                  f"local file or folder 'someone/gated' (in {tmp_path}), and not found. Check the "
                                  "path, or the id, config and revision, the network and HF_TOKEN for a private or "
                                  "gated dataset")
    unreachable = HubUnreachableError("cannot open dataset 'someone/x': the Hub timed out. Check the network (and "
                                      "HF_ENDPOINT); with HF_HUB_OFFLINE=1 Hub datasets come from the local cache")
    ranking_errors = [archive_refusal.value, missing_dataset.value, hub_dataset, unreachable,
                      SpaceInputError("Samples per class: 1; choose 2 to 200"), RuntimeError("CUDA error: boom"),
                      KeyError("unknown metric 'x'; lead-hub metrics lists them")]
    for error in ranking_errors:
        assert_one_plain_sentence(ranking_failure(error))
    assert "someone/gated" in ranking_failure(hub_dataset) and "public" in ranking_failure(hub_dataset)
    retry = HubNetworkError("publishing to alice/b: timed out; publishing the same leaderboard again is safe. Check "
                            "your network connection (and HF_ENDPOINT), then run the same command again")
    server = HubError("publishing to alice/b: the Hub answered HTTP 503 (busy)")
    server.retryable = True
    publishing_errors = [retry, server, HubAuthError("publishing to alice/b: the Hub rejected your token (HTTP 401). "
                                                     "Set HF_TOKEN to a valid token or run `hf auth login`"),
                         ValueError("'a b' is not a repository id: expected OWNER/NAME, e.g. my-user/my-leaderboard"),
                         OSError("disk full at /srv/app/cache")]
    for error in publishing_errors:
        assert_one_plain_sentence(publishing_failure(error, "alice/b"))
    assert "press Publish again" in publishing_failure(retry, "alice/b")
    assert "sign in" in publishing_failure(publishing_errors[2], "alice/b")


# ---- publishing ------------------------------------------------------------------------------------------------


@pytest.fixture
def space_environment(monkeypatch):
    """The environment of a Space with ``hf_oauth: true`` (Gradio reads the OAuth settings once, at import, so
    those are patched in its module); the Space owner's own token is in HF_TOKEN, as a Space secret would be."""
    pytest.importorskip("authlib", reason="Gradio's Space sign-in needs gradio[oauth] (authlib, itsdangerous), "
                                          "as space/requirements.txt installs it")
    import gradio.oauth

    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "alice/lead-hub")
    monkeypatch.setenv("HF_TOKEN", "hf_theSpaceOwnersSecret")
    settings = {"OAUTH_CLIENT_ID": "test-client", "OAUTH_CLIENT_SECRET": "test-secret",
                "OAUTH_SCOPES": "openid profile contribute-repos", "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}
    for name, value in settings.items():
        monkeypatch.setattr(gradio.oauth, name, value)


def fields_of(demo: gr.Blocks) -> tuple[bool, int]:
    """(whether the page has a sign-in button, how many password fields it has)."""
    components = list(demo.blocks.values())
    password_fields = [block for block in components if isinstance(block, gr.Textbox) and block.type == "password"]
    return any(isinstance(block, gr.LoginButton) for block in components), len(password_fields)


def test_run_locally_the_page_asks_for_a_token_in_a_password_field():
    assert fields_of(app.build_demo()) == (False, 1)


def test_in_a_space_the_page_offers_sign_in_and_no_token_field(space_environment):
    assert fields_of(app.build_demo()) == (True, 0)


def test_in_a_space_publishing_takes_the_visitors_oauth_token_never_the_owners(space_environment, feature_cache,
                                                                                 monkeypatch):
    import gradio.http_server

    # In a Space, Gradio's server also starts a hot reloader from the `spaces` package (absent here, unrelated to
    # the app): the server is started as outside a Space, the app itself built and routed as in one.
    monkeypatch.setattr(gradio.http_server, "get_space", lambda: None)
    with launched_app(SpaceLimits(), feature_cache, in_space=None) as url:
        with pytest.raises(AppError, match="click 'Sign in with Hugging Face'"):
            Client(url, verbose=False).predict("alice/board", "hf_typedButIgnored", api_name="/publish")
        # Signed in (the client hands over the visitor's token), the push goes on: to a refusal of an empty board.
        with pytest.raises(AppError, match="Nothing to publish yet"):
            Client(url, verbose=False, oauth_token=TOKEN).predict("alice/board", "", api_name="/publish")


def test_in_a_space_only_the_visitors_oauth_token_publishes(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_theSpaceOwnersSecret")
    with pytest.raises(PublishError, match="Sign in with Hugging Face"):
        choose_token(in_space=True, oauth_token=None, typed_token="hf_typed")
    assert choose_token(in_space=True, oauth_token="hf_oauth", typed_token="hf_typed") == "hf_oauth"


def test_run_locally_the_typed_token_publishes_else_the_machines_login():
    assert choose_token(in_space=False, oauth_token=None, typed_token="  hf_typed ") == "hf_typed"
    assert choose_token(in_space=False, oauth_token=None, typed_token="") is None


def test_nothing_is_published_before_a_ranking():
    with pytest.raises(PublishError, match="Nothing to publish yet"):
        publish(None, "alice/board", TOKEN)


@pytest.fixture
def loopback_hub(tmp_path, monkeypatch):
    """A loopback Hub with user alice (token TOKEN), the in-process client pointed at it, no token in the env."""
    with LoopbackHub() as hub:
        hub.store.add_user("alice", TOKEN)
        point_client_at(monkeypatch, hub.endpoint, str(tmp_path / "hf_home"))
        yield hub


def test_publishing_merges_the_board_into_the_visitors_repo_and_never_shows_the_token(demo_run, loopback_hub,
                                                                                        capfd):
    board = demo_run["updates"][-1].board
    message = publish(board, "alice/space-board", TOKEN)
    assert message.startswith("Published to [alice/space-board](") and "6 rows added" in message
    files = loopback_hub.store.files("dataset", "alice/space-board")
    published = pd.read_parquet(io.BytesIO(files["data/leaderboard.parquet"]))
    assert sorted(published["model_id"]) == DEMO_MODEL_IDS and set(published["dataset"]) == {"eurosat_mini.zip"}
    assert not any(TOKEN.encode() in content for content in files.values())
    with pytest.raises(PublishError) as refused:
        publish(board, "alice/space-board", "hf_notAValidToken999")
    assert "hf_notAValidToken999" not in str(refused.value)
    captured = capfd.readouterr()
    assert TOKEN not in captured.out + captured.err and "hf_notAValidToken999" not in captured.out + captured.err


# ---- the Space's files -----------------------------------------------------------------------------------------


def space_card() -> dict:
    text = (SPACE_DIR / "README.md").read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_space_card_declares_the_installed_gradio_and_an_existing_app_file():
    card = space_card()
    assert card["sdk"] == "gradio" and card["sdk_version"] == gr.__version__
    assert card["python_version"] == "3.11" and (SPACE_DIR / card["app_file"]).is_file()
    assert card["hf_oauth"] is True
    modern_hub_ids = [entry.model_id.removeprefix("hf-hub:") for entry in load_zoo("modern").loadable]
    assert card["models"] == modern_hub_ids


def test_the_space_requirements_are_the_packages_dependencies_and_gradio():
    import tomllib

    project = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [line.strip() for line in (SPACE_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()]
    requirements = {line for line in lines if line and not line.startswith("#")}
    expected = set(project["dependencies"]) | {f"gradio[oauth]=={gr.__version__}"}
    assert requirements == expected


# ---- the launched app, driven by gradio_client -----------------------------------------------------------------

LAUNCHED_LIMITS = SpaceLimits(max_upload_bytes=2 * 1024**2)
"""The Space's limits with a 2 MB upload cap, so that the test of Gradio's own upload refusal stays small."""


@pytest.fixture(scope="module")
def client(feature_cache):
    with launched_app(LAUNCHED_LIMITS, feature_cache) as url:
        yield Client(url, verbose=False)


def rank_arguments(upload: str, samples_per_class: int = QUICK_SAMPLES_PER_CLASS, metric_options: str = "") -> list:
    """The /rank endpoint's inputs: the page's defaults (LEAD, the other default metrics ticked, 64 px) but for
    the upload, the sample and the metric options."""
    return ["zip upload", handle_file(upload), "", "train", "shipped zoo", "demo", "", DEFAULT_METRICS[0],
            list(DEFAULT_METRICS[1:]), samples_per_class, 64, metric_options]


@pytest.fixture(scope="module")
def launched_demo_ranking(client) -> tuple[list, tuple]:
    """The demo zip ranked through the launched app with the page's defaults: every streamed output, then the
    result (status, table, chart, files)."""
    job = client.submit(*rank_arguments(str(DEMO_DATASET)), api_name="/rank")
    outputs = list(job)
    return outputs, job.result()


def test_the_launched_app_ranks_the_demo_zip_streaming_partial_tables(launched_demo_ranking):
    outputs, (status, table, chart, files) = launched_demo_ranking
    assert outputs[0][0].startswith("Ranking: the table fills in") and outputs[0][2:] == (None, None)
    assert len(outputs) >= 3 and outputs[1][0].startswith("Scored 1 of 6 models")
    assert status.startswith(r"Ranked 6 models on eurosat\_mini.zip \[train\]")  # Markdown, escaped as typed
    # The page's default metrics are named with their rule; the sample was chosen, so it is not named as a default.
    assert re.search(r"\n\nDefaults: metrics lead, pactran \\\(LEAD, and the offline benchmark's best peer at full",
                     status), status
    assert "images per class at most" not in status
    rows = pd.DataFrame(table["data"], columns=table["headers"])
    assert sorted(rows["model"]) == DEMO_MODEL_NAMES and rows["rank"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert [Path(path).name for path in files] == list(RESULT_FILES)
    assert sorted(pd.read_csv(files[0])["model_id"]) == DEMO_MODEL_IDS
    assert sorted(Leaderboard.load(files[1]).table["model_id"]) == DEMO_MODEL_IDS
    assert Path(chart).read_bytes()[:4] == b"\x89PNG"


def test_the_pages_metric_options_reach_the_ranking(client, launched_demo_ranking):
    """The "Metric options" field, one METRIC.KEY=VALUE per line: LEAD's whole-network NTK gives other scores than
    the default head-only NTK on the same images, and a value LEAD does not know is refused naming the field."""
    status, _, _, files = client.predict(
        *rank_arguments(str(DEMO_DATASET), metric_options="lead.ntk=full\nlead.ntk_samples_per_class=1"),
        api_name="/rank")
    assert status.startswith("Ranked 6 models"), status
    whole_network = pd.read_csv(files[0]).set_index("model_id")["lead"].sort_index()
    head_only = pd.read_csv(launched_demo_ranking[1][3][0]).set_index("model_id")["lead"].sort_index()
    assert head_only.notna().all() and whole_network.notna().all()
    assert head_only.index.equals(whole_network.index) and not np.allclose(head_only, whole_network)
    with pytest.raises(AppError, match="Metric options: .*ntk='whole'"):
        client.predict(*rank_arguments(str(DEMO_DATASET), metric_options="lead.ntk=whole"), api_name="/rank")


def test_the_launched_app_shows_why_a_hostile_zip_is_refused(client, tmp_path):
    hostile = write_zip(tmp_path / "hostile.zip", {"a/x.png": png_bytes((1, 1, 1)), "/abs.png": png_bytes((2, 2, 2))})
    with pytest.raises(AppError, match="absolute path"):
        client.predict(*rank_arguments(str(hostile)), api_name="/rank")


def test_gradio_refuses_an_upload_over_the_spaces_size_limit(client, tmp_path):
    large = tmp_path / "large.zip"
    large.write_bytes(np.random.default_rng(0).bytes(LAUNCHED_LIMITS.max_upload_bytes + 1))
    # gradio_client reads the limit from the app's config and refuses before sending a byte.
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {LAUNCHED_LIMITS.max_upload_bytes} bytes"):
        client.predict(*rank_arguments(str(large)), api_name="/rank")


def test_the_launched_app_publishes_its_last_ranking_with_the_typed_token(client, loopback_hub, capfd):
    client.predict(*rank_arguments(str(DEMO_DATASET)), api_name="/rank")
    message = client.predict("alice/from-the-space", TOKEN, api_name="/publish")
    assert message.startswith("Published to [alice/from-the-space](")
    assert "data/leaderboard.parquet" in loopback_hub.store.files("dataset", "alice/from-the-space")
    with pytest.raises(AppError, match="rejected|401|credentials|token") as refused:
        client.predict("alice/from-the-space", "hf_wrongToken4321", api_name="/publish")
    assert "hf_wrongToken4321" not in str(refused.value)
    captured = capfd.readouterr()
    assert TOKEN not in captured.out + captured.err and "hf_wrongToken4321" not in captured.out + captured.err


def test_the_assembled_space_repository_finds_the_package_zoos_and_demo_beside_app_py(tmp_path):
    import subprocess

    from assemble import assemble

    destination = tmp_path / "space_repo"
    written = {path.name for path in assemble(destination)}
    assert written == {"app.py", "ranking_job.py", "hub_publish.py", "visitor_messages.py", "README.md",
                       "requirements.txt", "lead_hub", "model_zoos", "demo"}
    assert not list(destination.rglob("__pycache__"))
    probe = ("import lead_hub, lead_hub.zoo as zoo, lead_hub.ranking as ranking; "
             "print(lead_hub.__file__); print(ranking.DEMO_DATASET.is_file()); "
             "print(zoo.load_zoo('demo').loadable[0].load_id)")
    # As on a Space: the interpreter starts in the repository root, which comes first on sys.path.
    lines = subprocess.run([sys.executable, "-c", probe], cwd=destination, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert lines[0] == str(destination / "lead_hub" / "__init__.py")
    assert lines[1] == "True"
    assert lines[2] == f"local-dir:{destination / 'demo' / 'models' / 'mobilenetv1_025.coral_in1k'}"


def test_the_final_status_names_skipped_images_and_counts_the_rest(tmp_path):
    import ranking_job

    skipped = [f"cats/{index}.png is truncated" for index in range(5)]
    provenance = {"metrics": ["lead"], "dataset": "pets.zip", "split": "train", "samples": 40, "num_classes": 2,
                  "skipped_images": skipped}
    rows = [{"model_id": f"local-dir:/srv/models/model-{index}", "lead": -float(index), "num_params": 1_000_000}
            for index in range(2)]
    final = ranking_job._final_update(Leaderboard.from_rows(rows, provenance), tmp_path, seconds=3.2)
    first_line = final.status.split("\n\n")[0]
    assert first_line.startswith("Ranked 2 models on pets.zip [train], 40 images in 2 classes in 3 s by lead")
    # The first three skipped images are named, the rest counted; no server path of a model is shown.
    assert first_line.endswith("Skipped 5 unreadable image(s): cats/0.png is truncated; cats/1.png is truncated; "
                               "cats/2.png is truncated and 2 more.")
    assert "/srv/models" not in final.status
