"""The whole-network NTK (lead_hub.ntk): per-sample gradient norms of F = h∘f equal a plain autograd loop, reduce
to the head's closed form when the backbone is frozen, are cached and resumed row by row, feed lead(ntk="full")
on exactly its rows, and run end to end in rank(), the CLI and on a real zoo model."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lead_hub.ntk as ntk_module
from lead_hub.cli import main
from lead_hub.data import load_images
from lead_hub.features import _atomic_save_npz, _load_checked_npz, extract_features
from lead_hub.metrics import get as get_metric
from lead_hub.metrics._lead_ntk import ntk_head, per_sample_gradient_sq_norms
from lead_hub.models import load_backbone
from lead_hub.ntk import NtkUnavailable, lead_sq_norms, sample_ids, sample_sq_norms
from lead_hub.per_sample_norms import LayerwiseSqNorms
from lead_hub.ranking import DEMO_DATASET, rank
from conftest import REPOSITORY_ROOT
from test_models import save_tiny_timm, save_tiny_transformers

DEMO_MODELS = [f"local-dir:{DEMO_DATASET.parent / 'models' / name}"
               for name in ("mobilenetv1_025.coral_in1k", "mobilenetv1_050.coral_in1k")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small passes (conftest.py)


@pytest.fixture(scope="module")
def images():
    return load_images(DEMO_DATASET, samples_per_class=3, seed=0)


@pytest.fixture(scope="module")
def timm_folder(tmp_path_factory):
    return save_tiny_timm(tmp_path_factory.mktemp("timm") / "tiny")


@pytest.fixture(scope="module")
def backbone(timm_folder):
    return load_backbone(f"local-dir:{timm_folder}", image_size=32)


@pytest.fixture(scope="module")
def features(backbone, images):
    return extract_features(backbone, images, num_workers=0, progress=False).features


def autograd_loop_sq_norms(backbone, images, rows, head) -> np.ndarray:
    """‖∇_θ s(x)‖² with one backward per sample over every parameter of backbone + head (torch Linear layers with
    zero biases), in float64: the reference."""
    layers = []
    for weights in (*head.head.hidden, head.head.output):
        layer = torch.nn.Linear(weights.shape[1], weights.shape[0]).double()
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.array(weights)))
            layer.bias.zero_()
        layers.append(layer)
    network = backbone.network.eval()
    params = [p for p in network.parameters() if p.requires_grad] + [p for layer in layers for p in layer.parameters()]
    norms = []
    for row in rows:
        features = network(backbone.transform(images.image(int(row)))[None])[0].double()
        activation = (features[:, torch.from_numpy(head.columns)] - torch.from_numpy(head.shift)) / torch.from_numpy(
            head.scale)
        for layer in layers[:-1]:
            activation = torch.relu(layer(activation))
        summed = layers[-1](activation).sum() / layers[-1].out_features ** 0.5
        gradients = torch.autograd.grad(summed, params, allow_unused=True)
        norms.append(sum(float(g.double().square().sum()) for g in gradients if g is not None))
    return np.array(norms)


@pytest.mark.parametrize("head_input", ["standardized", "raw"])
def test_norms_equal_a_per_sample_autograd_loop(backbone, images, features, head_input, caplog):
    rows = np.array([0, 4, 7, 11, 20, 29])
    with caplog.at_level("INFO", logger="lead_hub.ntk"):
        result = sample_sq_norms(backbone, images, rows, features, head_input=head_input, widths=(16, 24),
                                 batch_size=4, num_workers=0, progress=False)
    assert "torch.func" not in caplog.text  # timm's layers have per-layer formulas (lead_hub.per_sample_norms)
    head = ntk_head(features, len(images.class_names), widths=(16, 24), head_input=head_input)
    expected = autograd_loop_sq_norms(backbone, images, rows, head)
    np.testing.assert_allclose(result.sq_norms, expected, rtol=1e-4)
    assert (result.backbone_sq_norms > 0).all() and result.rows.tolist() == rows.tolist()
    counted = sum(p.numel() for name, p in backbone.network.named_parameters() if "classifier" not in name)
    assert result.trainable_parameters == counted  # every parameter but the source classifier reaches the features


def test_a_transformers_model_gives_the_autograd_loop_norms_too(images, tmp_path, caplog):
    model = load_backbone(f"local-dir:{save_tiny_transformers(tmp_path / 'vit', 'vit', head=True)}", image_size=32)
    features = extract_features(model, images, num_workers=0, progress=False).features
    rows = np.array([1, 9, 17])
    with caplog.at_level("INFO", logger="lead_hub.ntk"):
        result = sample_sq_norms(model, images, rows, features, widths=(16, 24), num_workers=0, progress=False)
    # a ViT's embeddings have no per-layer formula: the whole model goes through torch.func, and says so once
    assert caplog.text.count("by torch.func (exact, slower) because module") == 1
    expected = autograd_loop_sq_norms(model, images, rows, ntk_head(features, len(images.class_names),
                                                                    widths=(16, 24)))
    np.testing.assert_allclose(result.sq_norms, expected, rtol=1e-4)


def test_frozen_backbone_gives_the_head_closed_form(backbone, images, features):
    frozen_network = load_backbone(backbone.model_id, image_size=32).network.requires_grad_(False)
    frozen = dataclasses.replace(backbone, network=frozen_network)
    rows = np.arange(0, 30, 5)
    result = sample_sq_norms(frozen, images, rows, features, num_workers=0, progress=False)
    head = ntk_head(features, len(images.class_names))
    np.testing.assert_array_equal(result.backbone_sq_norms, 0.0)
    np.testing.assert_allclose(result.sq_norms, per_sample_gradient_sq_norms(head.head, head.inputs(features, rows)),
                               rtol=1e-12)
    assert result.trainable_parameters == 0


def test_full_ntk_of_a_frozen_backbone_scores_like_the_head_ntk(backbone, images, features):
    """lead_sq_norms picks exactly LEAD's NTK rows and head: with nothing to train in the backbone, ntk='full'
    must give the head-only score (at the same rate constant: each NTK has its own default)."""
    frozen = dataclasses.replace(backbone, network=load_backbone(backbone.model_id, image_size=32)
                                 .network.requires_grad_(False))
    options = {"ntk_samples_per_class": 2, "head_widths": (16, 24), "rate_constant": 2.0 ** -18}
    norms = lead_sq_norms(frozen, images, features, options, num_workers=0, progress=False)
    assert len(norms.rows) == 2 * len(images.class_names)
    lead = get_metric("lead")
    ids = sample_ids(images)
    full = lead(features, images.labels, sample_ids=ids, ntk="full", ntk_sq_norms=norms.vector(len(images)),
                **options)
    assert full == pytest.approx(lead(features, images.labels, sample_ids=ids, **options), rel=1e-12)
    draw = np.flatnonzero(np.arange(len(images)) % 3 != 1)  # a low-data draw: its own head, its own NTK rows
    on_draw = lead_sq_norms(frozen, images, features, options, scored_rows=draw, num_workers=0, progress=False)
    assert set(on_draw.rows) <= set(draw)
    full = lead(features[draw], images.labels[draw], sample_ids=ids[draw], ntk="full",
                ntk_sq_norms=on_draw.vector(len(images))[draw], **options)
    assert full == pytest.approx(lead(features[draw], images.labels[draw], sample_ids=ids[draw], **options),
                                 rel=1e-12)


def test_cache_hits_resumes_and_reuses_rows(backbone, images, features, tmp_path, monkeypatch):
    options = dict(widths=(16, 24), num_workers=0, progress=False, cache_dir=tmp_path, dataset_key="demo-3",
                   chunk_rows=2, batch_size=2)
    rows = np.arange(0, 12)
    calls = []
    real_call = LayerwiseSqNorms.__call__

    def interrupted_call(self, summed_scalar, pixels):
        calls.append(len(pixels))
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_call(self, summed_scalar, pixels)

    monkeypatch.setattr(LayerwiseSqNorms, "__call__", interrupted_call)
    with pytest.raises(KeyboardInterrupt):
        sample_sq_norms(backbone, images, rows, features, **options)
    monkeypatch.setattr(LayerwiseSqNorms, "__call__", real_call)
    resumed = sample_sq_norms(backbone, images, rows, features, **options)
    assert resumed.computed_rows == 8  # the two finished chunks (4 rows) were kept
    again = sample_sq_norms(backbone, images, rows, features, **options)
    assert again.computed_rows == 0
    np.testing.assert_array_equal(again.sq_norms, resumed.sq_norms)
    union = sample_sq_norms(backbone, images, np.arange(6, 18), features, **options)
    assert union.computed_rows == 6
    fresh = sample_sq_norms(backbone, images, np.arange(6, 18), features, widths=(16, 24), num_workers=0,
                            progress=False)
    np.testing.assert_allclose(union.sq_norms, fresh.sq_norms, rtol=1e-5)
    raw = sample_sq_norms(backbone, images, rows, features, head_input="raw", **options)
    assert raw.computed_rows == len(rows)  # another head is another cache entry
    entries = sorted(path.parent.name for path in (tmp_path / "ntk").glob("*/request.json"))
    assert len(entries) == 2 and all(name.startswith("tiny-") for name in entries)


def test_an_altered_cache_file_is_recomputed_with_a_warning(backbone, images, features, tmp_path, caplog):
    """Issue 20: the NTK cache verifies each file's checksum and finiteness like the feature cache."""
    options = dict(widths=(16, 24), num_workers=0, progress=False, cache_dir=tmp_path, dataset_key="demo-3",
                   batch_size=4)
    rows = np.arange(0, 4)
    first = sample_sq_norms(backbone, images, rows, features, **options)
    (path,) = (tmp_path / "ntk").glob("*/rows-*.npz")
    stored = _load_checked_npz(path)
    _atomic_save_npz(path, **{**stored, "backbone_sq_norms": np.full(4, np.nan)})
    with caplog.at_level(logging.WARNING, logger="lead_hub.ntk"):
        again = sample_sq_norms(backbone, images, rows, features, **options)
    assert again.computed_rows == 4 and np.array_equal(again.sq_norms, first.sq_norms)
    assert "NTK cache file" in caplog.text and "non-finite values" in caplog.text
    assert sample_sq_norms(backbone, images, rows, features, **options).computed_rows == 0


def test_a_model_that_cannot_be_loaded_is_a_clear_error(images, features, tmp_path):
    with pytest.raises(NtkUnavailable, match="needs the model's weights.*lead.ntk=head"):
        sample_sq_norms(f"local-dir:{tmp_path / 'gone'}", images, [0, 1], features, progress=False)


def test_bad_rows_and_features_are_refused(backbone, images, features):
    with pytest.raises(ValueError, match="rows must index the 30 rows"):
        sample_sq_norms(backbone, images, [0, 30], features, progress=False)
    with pytest.raises(ValueError, match="features must be the model's N×D features on all 30 rows"):
        sample_sq_norms(backbone, images, [0, 1], features[:5], progress=False)


def test_rank_with_the_full_ntk_on_the_demo(tmp_path):
    options = {"lead": {"ntk": "full", "ntk_samples_per_class": 2, "head_widths": [32, 64]}}
    common = dict(metrics=["lead", "hscore"], samples_per_class=4, image_size=32, progress=False)
    board = rank(DEMO_MODELS, "demo", metric_options=options, cache_dir=tmp_path, **common)
    table = board.table.set_index("model_id")
    assert table["lead"].notna().all() and table["hscore"].notna().all()
    assert all("whole-network NTK over" in note for note in table["notes"])
    assert board.provenance["lead_ntk"]["kind"] == "full"
    head_only = rank(DEMO_MODELS, "demo", metric_options={"lead": {**options["lead"], "ntk": "head"}},
                     cache_dir=tmp_path, **common).table.set_index("model_id")
    assert (head_only["lead"].reindex(table.index) != table["lead"]).all()
    again = rank(DEMO_MODELS, "demo", metric_options=options, cache_dir=tmp_path, **common).table.set_index("model_id")
    assert all("read from the cache" in note for note in again["notes"])
    np.testing.assert_array_equal(again["lead"].reindex(table.index), table["lead"])


def test_a_model_without_gradients_gets_no_lead_score_and_a_note(tmp_path, monkeypatch):
    def unavailable(model_id, **kwargs):
        raise OSError("weights not in the local cache")

    monkeypatch.setattr(ntk_module, "load_backbone", unavailable)
    board = rank(DEMO_MODELS[:1], "demo", metrics=["lead", "hscore"], samples_per_class=4, image_size=32,
                 metric_options={"lead": {"ntk": "full"}}, cache_dir=tmp_path, progress=False)
    row = board.table.iloc[0]
    assert np.isnan(row["lead"]) and np.isfinite(row["hscore"])
    assert "whole-network NTK failed: NtkUnavailable" in row["notes"] and "lead.ntk=head" in row["notes"]


def test_cli_metric_options_choose_the_full_ntk_and_raw_head_input(tmp_path, capsys):
    code = main(["rank", "--models", DEMO_MODELS[0], "--dataset", "demo", "--samples-per-class", "3",
                 "--image-size", "32", "--metric-option", "lead.ntk=full", "--metric-option", "lead.head_input=raw",
                 "--metric-option", "lead.ntk_samples_per_class=2", "--cache-dir", str(tmp_path / "cache"),
                 "--output", str(tmp_path / "out")])
    assert code == 0
    progress = capsys.readouterr().err  # issue 19: the NTK bar names the model as the extraction bar does
    assert f"NTK local-dir:{Path(DEMO_MODELS[0]).name}" in progress and str(REPOSITORY_ROOT) not in progress
    saved = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    true_size = saved["table"][0]["num_params"]  # the zoo's narrow models are stored zero-padded
    assert f"whole-network NTK over {true_size:,} backbone parameters" in saved["table"][0]["notes"]
    provenance = saved["provenance"]
    assert provenance["lead_ntk"]["kind"] == "full" and provenance["lead_ntk"]["head_input"] == "raw"
    assert len(list((tmp_path / "cache" / "ntk").glob("*/rows-*.npz"))) == 1


def test_norms_of_a_real_zoo_model_equal_the_autograd_loop(shared_data):
    target = load_images(shared_data / "targets" / "eurosat", split="train", samples_per_class=2, seed=0)
    model = load_backbone(f"local-dir:{shared_data / 'zoo' / 'mobilenetv2_100.coral_in1k'}", image_size=64)
    features = extract_features(model, target, num_workers=0, progress=False).features
    rows = np.arange(0, 20, 4)
    result = sample_sq_norms(model, target, rows, features, num_workers=0, progress=False)
    expected = autograd_loop_sq_norms(model, target, rows, ntk_head(features, len(target.class_names)))
    # Most rows agree to ~1e-6. A ReLU6 input that sits at a kink in float32 moves one row's norm by up to 5.2e-3
    # (benchmarks/results/ntk_methods.csv: max over three zoo models and 16 images each), and which rows sit at a
    # kink depends on the CPU's convolution kernels, so every row is held to twice that and the median to 1e-4.
    np.testing.assert_allclose(result.sq_norms, expected, rtol=1e-2)
    assert np.median(np.abs(result.sq_norms - expected) / expected) < 1e-4
    assert (result.backbone_sq_norms > 10 * result.head_sq_norms).all()


def space_job():
    space_folder = str(REPOSITORY_ROOT / "space")
    if space_folder not in sys.path:
        sys.path.insert(0, space_folder)  # the Space imports its helpers as top-level modules, as on a real Space
    import ranking_job

    return ranking_job


def test_the_space_reaches_the_full_ntk_through_its_metric_options(tmp_path, monkeypatch):
    job = space_job()
    seen = []

    def first_demo_model_only(models, dataset, **options):  # one of the demo zoo's six models keeps this quick
        seen.append(options["metric_options"])
        return rank(DEMO_MODELS[:1], dataset, **options)

    monkeypatch.setattr(job, "rank", first_demo_model_only)
    request = job.RankingRequest(upload=str(DEMO_DATASET), samples_per_class=2, image_size=16,
                                 metric_options=("lead.ntk=full", "lead.ntk_samples_per_class=1"))
    final = list(job.stream_ranking(request, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache"))[-1]
    assert seen == [{"lead": {"ntk": "full", "ntk_samples_per_class": 1}}]
    assert final.final and final.board.provenance["lead_ntk"]["kind"] == "full"
    assert final.board.table["lead"].notna().all()
    with pytest.raises(job.SpaceInputError, match="Metric options: .*ntk='whole'"):
        list(job.stream_ranking(job.RankingRequest(upload=str(DEMO_DATASET), metric_options=("lead.ntk=whole",)),
                                results_dir=tmp_path / "results"))


@pytest.mark.slow
def test_accelerate_launch_shards_the_ntk_across_two_processes(two_process_run):
    model_ids = list(two_process_run.model_ids)
    reports = two_process_run.reports("ntk")  # norms of the demo images (SHARDING_SCRIPT, conftest.py)
    assert reports[0]["computed"] == [model_ids[0]] and reports[1]["computed"] == [model_ids[1]]
    images = load_images(DEMO_DATASET, samples_per_class=2, seed=0)
    for model_id in model_ids:
        model = load_backbone(model_id, image_size=32)
        features = extract_features(model, images, num_workers=0, progress=False).features
        expected = sample_sq_norms(model, images, list(range(0, 20, 2)), features, widths=(16, 24), num_workers=0,
                                   progress=False).sq_norms
        for report in reports:
            np.testing.assert_allclose(report["norms"][model_id], expected, rtol=1e-4)
