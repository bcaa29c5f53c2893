"""Fine-tuning ground truth: the sampling the metrics share, BatchNorm statistics frozen while affine parameters
train, a learnable toy task, resumable runs CSV, the ground-truth summary and the ``lead-hub finetune`` CLI."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from test_models import save_tiny_timm

import lead_hub.finetune as finetune
from lead_hub.cli import main as cli_main
from lead_hub.data import load_parquet_split
from lead_hub.finetune import (
    RUN_COLUMNS,
    FinetuneProtocol,
    accuracies,
    append_run,
    decode_images,
    model_with_new_head,
    read_runs,
    run_ground_truth,
    summarise_runs,
    train_model,
    training_subset,
)
from lead_hub.models import create_timm_model
from lead_hub.sampling import stratified_indices

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models on a few images (conftest.py)

COLOURS = ((220, 30, 30), (30, 200, 40), (40, 60, 230))
TINY = FinetuneProtocol(image_size=32, learning_rates=(0.1, 0.01), seeds=(0,), epochs=2, batch_size=8)


def colour_images(per_class: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    """Noisy images whose class is their dominant colour: learnable from a few images."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, colour in enumerate(COLOURS):
        for _ in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, size=(40, 40, 3)), 0, 255).astype(np.uint8)
            images.append(Image.fromarray(pixels))
            labels.append(label)
    return images, labels


def write_parquet_target(folder, train_per_class: int = 8, test_per_class: int = 4):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["r", "g", "b"])})
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class, seed in (("train", train_per_class, 0), ("test", test_per_class, 1)):
        images, labels = colour_images(per_class, seed)
        datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(
            str(folder / f"{split}.parquet"))
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return f"local-dir:{save_tiny_timm(tmp_path_factory.mktemp('finetune') / 'tiny', num_classes=5)}"


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    folder = write_parquet_target(tmp_path_factory.mktemp("target") / "colours")
    return folder, load_parquet_split(folder, "train"), load_parquet_split(folder, "test")


def test_training_subset_is_the_metric_draw_split_80_20_per_class():
    labels = np.repeat(np.arange(10), 200)
    chosen, fit, validation = training_subset(labels, FinetuneProtocol())
    np.testing.assert_array_equal(chosen, stratified_indices(labels, max_samples=1000, seed=0))
    assert len(fit) == 800 and len(validation) == 200
    assert set(fit).isdisjoint(validation) and set(fit) | set(validation) == set(chosen)
    np.testing.assert_array_equal(np.bincount(labels[validation]), np.full(10, 20))


def test_decode_images_gives_uint8_rgb_at_the_protocol_size(shared_data):
    fashion = load_parquet_split(shared_data / "targets" / "fashion_mnist", "test").select(np.arange(5))
    cache = decode_images(fashion, 64)
    assert cache.dtype == torch.uint8 and cache.shape == (5, 3, 64, 64)
    # Grayscale sources become RGB with three equal channels.
    assert torch.equal(cache[:, 0], cache[:, 1]) and torch.equal(cache[:, 1], cache[:, 2])
    assert cache.float().std() > 10


def test_batchnorm_running_statistics_frozen_and_affine_parameters_trained(tiny_model, target):
    _, train, _ = target
    images = decode_images(train, 32)
    model = create_timm_model(tiny_model, num_classes=3)
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms
    before = [(m.running_mean.clone(), m.running_var.clone(), m.weight.detach().clone()) for m in norms]
    train_model(model, images, train.labels, lr=0.1, seed=0, protocol=TINY)
    for module, (mean, var, weight) in zip(norms, before):
        assert torch.equal(module.running_mean, mean) and torch.equal(module.running_var, var)
    assert any(not torch.equal(module.weight, weight) for module, (_, _, weight) in zip(norms, before))


def test_new_head_starts_at_uniform_predictions_on_the_pretrained_backbone(tiny_model):
    model = model_with_new_head(tiny_model, 7).eval()
    pretrained = create_timm_model(tiny_model).eval()
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(pixels), torch.zeros(4, 7))
        torch.testing.assert_close(model.forward_head(model.forward_features(pixels), pre_logits=True),
                                   pretrained.forward_head(pretrained.forward_features(pixels), pre_logits=True))


def test_training_learns_a_colour_task(tiny_model, target):
    _, train, test = target
    model = model_with_new_head(tiny_model, 3)
    protocol = FinetuneProtocol(image_size=32, epochs=10, batch_size=8)
    train_model(model, decode_images(train, 32), train.labels, lr=0.05, seed=0, protocol=protocol)
    top1, per_class = accuracies(model, decode_images(test, 32), test.labels)
    assert top1 >= 0.9 and per_class >= 0.9


def test_run_ground_truth_records_grid_then_final_runs_and_resumes(tiny_model, target, tmp_path, monkeypatch):
    _, train, test = target
    runs_csv = tmp_path / "runs.csv"
    rows = run_ground_truth(tiny_model, train, test, runs_csv, model_name="tiny", target_name="colours",
                            protocol=TINY, log=lambda line: None)
    assert list(rows["phase"]) == ["grid", "grid", "final"]
    assert list(rows["images"]) == [19, 19, 24]  # 24 training images, a stratified 20% (5) held out
    assert rows["test_acc"].between(0, 1).all() and rows["val_acc"].iloc[:2].between(0, 1).all()
    best = TINY.learning_rates[int(np.argmax(rows["val_acc"].iloc[:2]))]
    assert rows["lr"].iloc[2] == best

    # A job killed before its final run: only the missing run is redone.
    lines = runs_csv.read_text().splitlines(keepends=True)
    runs_csv.write_text("".join(lines[:-1]))
    calls = []
    original = finetune.finetune_once
    monkeypatch.setattr(finetune, "finetune_once", lambda *a, **k: calls.append(k["lr"]) or original(*a, **k))
    rows = run_ground_truth(tiny_model, train, test, runs_csv, model_name="tiny", target_name="colours",
                            protocol=TINY, log=lambda line: None)
    assert calls == [best] and list(rows["phase"]) == ["grid", "grid", "final"]
    rows = run_ground_truth(tiny_model, train, test, runs_csv, model_name="tiny", target_name="colours",
                            protocol=TINY, log=lambda line: None)
    assert calls == [best] and len(read_runs(runs_csv)) == 3


def test_same_seed_reproduces_a_run(tiny_model, target):
    _, train, test = target
    images, test_images = decode_images(train, 32), decode_images(test, 32)
    results = [finetune.finetune_once(tiny_model, 3, images, train.labels, lr=0.01, seed=3, protocol=TINY,
                                      test=(test_images, test.labels)) for _ in range(2)]
    assert results[0].test_acc == results[1].test_acc


def test_append_run_writes_one_header(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    for seed in (0, 1):
        append_run(runs_csv, {column: seed for column in RUN_COLUMNS})
    assert runs_csv.read_text().count("model,target,phase") == 1
    assert list(read_runs(runs_csv)["seed"]) == [0, 1]


def test_summarise_runs_averages_the_final_seeds_and_skips_incomplete_pairs():
    base = {"val_acc": np.nan, "test_mean_class_acc": 0.5, "image_size": 64, "epochs": 8, "batch_size": 64,
            "images": 1000, "seconds": 10.0, "train_seconds": 8.0, "cpu_seconds": 5.0, "train_cpu_seconds": 4.0}
    runs = pd.DataFrame([
        {**base, "model": "a", "target": "t", "phase": "grid", "lr": 0.1, "seed": 0, "val_acc": 0.3,
         "test_acc": 0.2, "images": 800},
        {**base, "model": "a", "target": "t", "phase": "final", "lr": 0.01, "seed": 0, "test_acc": 0.6},
        {**base, "model": "a", "target": "t", "phase": "final", "lr": 0.01, "seed": 1, "test_acc": 0.7,
         "test_mean_class_acc": 0.7},
        {**base, "model": "b", "target": "t", "phase": "final", "lr": 0.1, "seed": 0, "test_acc": 0.9},
    ])
    summary = summarise_runs(runs)
    assert list(summary["model"]) == ["a"]
    row = summary.iloc[0]
    assert row["best_lr"] == 0.01
    assert row["test_acc"] == pytest.approx(0.65) and row["test_mean_class_acc"] == pytest.approx(0.6)
    assert row["seconds"] == pytest.approx(30.0) and row["cpu_seconds"] == pytest.approx(15.0)
    assert row["train_images_per_cpu_second"] == pytest.approx((800 + 2000) * 8 / 12.0)


def test_finetune_cli_resumes_and_writes_the_summary(tiny_model, target, tmp_path):
    folder, _, _ = target
    runs_csv, summary_csv = tmp_path / "runs.csv", tmp_path / "summary.csv"
    arguments = ["finetune", "--dataset", str(folder), "--models", tiny_model, "--runs-csv", str(runs_csv), "--summary-csv",
                 str(summary_csv), "--lr", "0.05", "--seeds", "0", "--epochs", "1", "--image-size", "32",
                 "--batch-size", "8"]
    # Both runs in this process: a rerun resumes from what the runs CSV holds, the only state kept between runs
    # (`python -m lead_hub.cli` in a fresh process is run by test_hub_cli, test_network and test_benchmark_evaluation).
    assert cli_main(arguments) == 0
    summary = pd.read_csv(summary_csv)
    assert list(summary["model"]) == [tiny_model] and 0 <= summary["test_acc"].iloc[0] <= 1
    recorded = runs_csv.read_text()
    assert cli_main(arguments) == 0
    assert runs_csv.read_text() == recorded  # one grid run and one final run, not redone
    assert len(read_runs(runs_csv)) == 2


def test_finetune_cli_without_models_names_the_fix(target, tmp_path, capsys):
    folder, _, _ = target
    assert cli_main(["finetune", "--dataset", str(folder), "--runs-csv", str(tmp_path / "runs.csv")]) == 2
    assert "--models" in capsys.readouterr().err
