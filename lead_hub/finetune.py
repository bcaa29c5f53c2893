"""Ground truth by fine-tuning: train a pretrained model with a new linear head on a target, resumably.

The protocol (``FinetuneProtocol`` defaults, the offline benchmark's): images resized to 64 × 64 and normalised
with the model's own mean and std; training images = a stratified 1,000 of the train split (seed 0, the same
``stratified_indices`` draw the metrics see); full fine-tuning of backbone + new zero-initialised linear head with
every BatchNorm layer in eval mode (running statistics frozen, affine parameters trained); SGD momentum 0.9 Nesterov, weight decay
1e-4, batch 64, 8 epochs, cosine learning rate to zero; random-resized crop (scale 0.6-1) + horizontal flip.
Each learning rate of the grid is trained on a stratified 80% and scored on the other 20%; the best is retrained
on all training images with every seed, and the ground truth is the mean test top-1 accuracy of those runs.

Every finished run appends one row to a runs CSV (under a file lock, so several workers may share it); a
restarted job skips the runs whose row exists. ``summarise_runs`` turns the runs into the ground-truth table.
"""

from __future__ import annotations

import csv
import fcntl
import importlib.metadata
import math
import time
from dataclasses import dataclass
from pathlib import Path

import accelerate
import accelerate.utils
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import v2

from lead_hub.data import LabeledImages
from lead_hub.finetune_protocol import FinetuneProtocol
from lead_hub.models import create_timm_model, model_normalisation
from lead_hub.sampling import stratified_indices

RUN_COLUMNS = (
    "model", "target", "phase", "lr", "seed", "val_acc", "test_acc", "test_mean_class_acc", "seconds",
    "train_seconds", "cpu_seconds", "train_cpu_seconds", "images", "image_size", "epochs", "batch_size", "device", "lead_hub_version",
    "torch_version", "timm_version",
)
# The columns that identify a run: a row with the same values means the run is done.
RUN_KEY = ("model", "target", "phase", "lr", "seed", "images", "image_size", "epochs", "batch_size")
EVAL_BATCH_SIZE = 250


@dataclass(frozen=True)
class RunResult:
    """One fine-tuning run: accuracies on the evaluation sets (NaN where a set was not given) and its cost.

    ``seconds`` / ``train_seconds`` are wall-clock times of the whole run / of its training; the ``cpu_`` twins are
    the process's CPU time, the cost measure that holds on a shared machine (wall time there depends on the load).
    """

    val_acc: float
    test_acc: float
    test_mean_class_acc: float
    seconds: float
    train_seconds: float
    cpu_seconds: float
    train_cpu_seconds: float


def decode_images(images: LabeledImages, image_size: int) -> torch.Tensor:
    """Every image decoded once, as RGB, resized (squash, bilinear with antialiasing) to a uint8 (N, 3, S, S) tensor.

    The cache holds pixels, not normalised floats, so one decode serves every model of a target.
    """
    cache = torch.empty((len(images), 3, image_size, image_size), dtype=torch.uint8)
    for row in range(len(images)):
        resized = images.image(row).resize((image_size, image_size), Image.Resampling.BILINEAR)
        cache[row] = torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1)
    return cache


def training_subset(labels: np.ndarray, protocol: FinetuneProtocol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all, fit, validation) row indices of the train split: the stratified ``max_train_samples`` draw, and the
    stratified ``validation_fraction`` of it held out for choosing the learning rate (both with ``sample_seed``)."""
    chosen = stratified_indices(labels, max_samples=protocol.max_train_samples, seed=protocol.sample_seed)
    n_validation = max(len(np.unique(labels[chosen])), round(protocol.validation_fraction * len(chosen)))
    held_out = stratified_indices(labels[chosen], max_samples=n_validation, seed=protocol.sample_seed)
    validation = chosen[held_out]
    fit = np.setdiff1d(chosen, validation)
    return chosen, fit, validation


class _AugmentedImages(torch.utils.data.Dataset):
    """uint8 images with random-resized crop + horizontal flip, drawn from torch's seeded global generator."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, protocol: FinetuneProtocol):
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.augment = v2.Compose([
            v2.RandomResizedCrop(protocol.image_size, scale=protocol.crop_scale, antialias=True),
            v2.RandomHorizontalFlip(),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.augment(self.images[index]), self.labels[index]


def freeze_batchnorm_statistics(model: torch.nn.Module) -> None:
    """Put every BatchNorm layer in eval mode: it normalises with its running statistics and never updates them,
    while its affine weight and bias still train. Call after ``model.train()``, which would undo it."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def _normalise(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to the model's normalised float input, channels-last like the model (see ``finetune_once``)."""
    return ((batch.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)


def accuracies(model: torch.nn.Module, images: torch.Tensor, labels: np.ndarray, *, device=None) -> tuple[float, float]:
    """(top-1 accuracy, mean over the classes present in ``labels`` of the per-class accuracy) of ``model`` in eval
    mode on uint8 ``images``, normalised with the model's own mean and std."""
    device = device or next(model.parameters()).device
    mean, std = _normalisation_tensors(model, device)
    model.eval()
    predictions = []
    with torch.inference_mode():
        for start in range(0, len(images), EVAL_BATCH_SIZE):
            batch = _normalise(images[start:start + EVAL_BATCH_SIZE].to(device), mean, std)
            predictions.append(model(batch).argmax(dim=1).cpu())
    correct = torch.cat(predictions).numpy() == np.asarray(labels)
    per_class = [correct[labels == cls].mean() for cls in np.unique(labels)]
    return float(correct.mean()), float(np.mean(per_class))


def model_with_new_head(model_id: str, num_classes: int) -> torch.nn.Module:
    """The pretrained ``model_id`` with a new ``num_classes`` linear head initialised to zero (as in BiT).

    Why zero: timm's default head initialisation for the MobileNet/EfficientNet family (uniform ±1/√K) puts
    initial logits far from zero on pooled features up to 6 (ReLU6), and the first gradients then wreck the
    backbone when BatchNorm is frozen. Measured on EuroSAT at 64 px: initial loss 15.9 (EfficientNet-Lite0) and
    6.8 (MobileNetV1-0.25 Coral) instead of ln 10 = 2.30, divergence at lr 0.01 for Lite0 and a collapse to
    chance at lr 0.001 for MobileNetV1; with a zero head both train normally at lr 0.001 and Lite0 at 0.01.
    """
    model = create_timm_model(model_id, num_classes=num_classes)
    head = model.get_classifier()
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"{model_id}: expected a linear classifier for the new head, got {type(head).__name__}")
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    return model


def _normalisation_tensors(model: torch.nn.Module, device) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = model_normalisation(model)
    return (torch.tensor(mean, device=device).view(1, 3, 1, 1), torch.tensor(std, device=device).view(1, 3, 1, 1))


def train_model(
    model: torch.nn.Module,
    train_images: torch.Tensor,
    train_labels: np.ndarray,
    *,
    lr: float,
    seed: int,
    protocol: FinetuneProtocol = FinetuneProtocol(),
    accelerator: accelerate.Accelerator | None = None,
) -> torch.nn.Module:
    """Fine-tune every parameter of ``model`` (already on the accelerator's device) on uint8 ``train_images``.

    SGD with Nesterov momentum; the learning rate follows lr · ½(1 + cos(π t / T)) over the T optimiser steps of
    all epochs; BatchNorm layers stay in eval mode (``freeze_batchnorm_statistics``). The DataLoader shuffles with
    its own generator seeded with ``seed``; the augmentation draws from torch's global generator, which the caller
    seeds. Returns ``model``, trained in place.
    """
    accelerator = accelerator or accelerate.Accelerator()
    device = accelerator.device
    mean, std = _normalisation_tensors(model, device)
    loader = torch.utils.data.DataLoader(
        _AugmentedImages(train_images, train_labels, protocol),
        batch_size=protocol.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=protocol.momentum, nesterov=True,
                                weight_decay=protocol.weight_decay)
    total_steps = protocol.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps)))
    for _ in range(protocol.epochs):
        model.train()
        freeze_batchnorm_statistics(model)
        for images, labels in loader:
            logits = model(_normalise(images.to(device), mean, std))
            loss = torch.nn.functional.cross_entropy(logits, labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
    return model


def finetune_once(
    model_id: str,
    num_classes: int,
    train_images: torch.Tensor,
    train_labels: np.ndarray,
    *,
    lr: float,
    seed: int,
    protocol: FinetuneProtocol = FinetuneProtocol(),
    validation: tuple[torch.Tensor, np.ndarray] | None = None,
    test: tuple[torch.Tensor, np.ndarray] | None = None,
    accelerator: accelerate.Accelerator | None = None,
) -> RunResult:
    """Fine-tune ``model_id`` with a new zero ``num_classes`` head (``model_with_new_head``, ``train_model``) and
    score it on the (uint8 images, labels) ``validation`` and ``test`` sets. Python, numpy and torch are seeded
    with ``seed`` first, so a run is reproducible on a given device and thread count."""
    accelerator = accelerator or accelerate.Accelerator()
    device = accelerator.device
    started, cpu_started = time.perf_counter(), time.process_time()
    accelerate.utils.set_seed(seed)
    # Placed on the device rather than accelerator.prepare()d: prepare keeps a reference to every model it saw,
    # which would hold all the models of a long ground-truth job in memory. Channels-last lets oneDNN run the
    # depthwise convolutions: training measured 1.35-1.4x faster on one CPU core for MobileNets and EfficientNet-Lite.
    model = model_with_new_head(model_id, num_classes).to(device, memory_format=torch.channels_last)
    train_model(model, train_images, train_labels, lr=lr, seed=seed, protocol=protocol, accelerator=accelerator)
    train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    val_acc = accuracies(model, *validation, device=device)[0] if validation is not None else math.nan
    test_acc, test_mean_class_acc = accuracies(model, *test, device=device) if test is not None else (math.nan,) * 2
    return RunResult(val_acc, test_acc, test_mean_class_acc, time.perf_counter() - started, train_seconds,
                     time.process_time() - cpu_started, train_cpu_seconds)


def read_runs(runs_csv: str | Path) -> pd.DataFrame:
    """The runs CSV as a table (empty, with the run columns, when the file does not exist yet). Reads under a
    shared lock, so a row that a parallel worker is appending (``append_run``) is never seen half-written."""
    path = Path(runs_csv)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    with open(path, newline="") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            return pd.read_csv(handle)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_run(runs_csv: str | Path, row: dict) -> None:
    """Append ``row`` under an exclusive lock, writing the header when the file is new (safe for parallel workers)."""
    path = Path(runs_csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0, 2)
            writer = csv.DictWriter(handle, fieldnames=RUN_COLUMNS)
            if handle.tell() == 0:
                writer.writeheader()
            writer.writerow({column: row[column] for column in RUN_COLUMNS})
            handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _completed_run(runs: pd.DataFrame, key: dict) -> pd.Series | None:
    """The recorded row of the run ``key``, or None."""
    if runs.empty:
        return None
    mask = np.ones(len(runs), dtype=bool)
    for column, value in key.items():
        if isinstance(value, float):
            mask &= np.isclose(runs[column].astype(float), value, rtol=1e-9, atol=0.0)
        else:
            mask &= runs[column].astype(str) == str(value)
    matches = runs[mask]
    return None if matches.empty else matches.iloc[-1]


def _versions() -> dict:
    return {f"{package}_version": importlib.metadata.version(name)
            for package, name in (("lead_hub", "lead-hub"), ("torch", "torch"), ("timm", "timm"))}


def run_ground_truth(
    model_id: str,
    train: LabeledImages,
    test: LabeledImages,
    runs_csv: str | Path,
    *,
    model_name: str | None = None,
    target_name: str | None = None,
    protocol: FinetuneProtocol = FinetuneProtocol(),
    train_cache: torch.Tensor | None = None,
    test_cache: torch.Tensor | None = None,
    accelerator: accelerate.Accelerator | None = None,
    log=print,
) -> pd.DataFrame:
    """Run the learning-rate grid then the final seeds of one (model, target), skipping runs already in ``runs_csv``.

    ``model_name`` / ``target_name`` label the rows (default: ``model_id`` / the train split's source).
    ``train_cache`` / ``test_cache`` are ``decode_images`` of the whole train / test split at
    ``protocol.image_size``, to decode a target once for many models. The best learning rate is the one with
    the highest validation accuracy, the first in ``protocol.learning_rates`` order on ties. Returns this pair's
    rows of the runs CSV.
    """
    model_name = model_name or model_id
    target_name = target_name or train.source
    num_classes = len(train.class_names)
    accelerator = accelerator or accelerate.Accelerator()
    chosen, fit, validation = training_subset(train.labels, protocol)
    train_cache = decode_images(train, protocol.image_size) if train_cache is None else train_cache
    test_cache = decode_images(test, protocol.image_size) if test_cache is None else test_cache
    test_set = (test_cache, test.labels)
    common = {"model": model_name, "target": target_name, "image_size": protocol.image_size,
              "epochs": protocol.epochs, "batch_size": protocol.batch_size}

    def run(phase: str, lr: float, seed: int, rows: np.ndarray, validation_set) -> float:
        key = {**common, "phase": phase, "lr": float(lr), "seed": seed, "images": len(rows)}
        done = _completed_run(read_runs(runs_csv), key)
        if done is not None:
            return float(done["val_acc"])
        result = finetune_once(model_id, num_classes, train_cache[rows], train.labels[rows], lr=lr, seed=seed,
                               protocol=protocol, validation=validation_set, test=test_set, accelerator=accelerator)
        append_run(runs_csv, {**key, **result.__dict__, "device": str(accelerator.device), **_versions()})
        log(f"{model_name} on {target_name}: {phase} lr={lr:g} seed={seed} val={result.val_acc:.4f} "
            f"test={result.test_acc:.4f} ({result.seconds:.0f} s wall, {result.cpu_seconds:.0f} s CPU, "
            f"{len(rows) * protocol.epochs / result.train_cpu_seconds:.0f} training images per CPU second)")
        return result.val_acc

    validation_set = (train_cache[validation], train.labels[validation])
    scores = [run("grid", lr, protocol.seeds[0], fit, validation_set) for lr in protocol.learning_rates]
    best_lr = protocol.learning_rates[int(np.argmax(scores))]
    for seed in protocol.seeds:
        run("final", best_lr, seed, chosen, None)
    runs = read_runs(runs_csv)
    return runs[(runs["model"].astype(str) == model_name) & (runs["target"].astype(str) == target_name)]


def summarise_runs(runs: pd.DataFrame | str | Path, protocol: FinetuneProtocol = FinetuneProtocol()) -> pd.DataFrame:
    """The ground-truth table: one row per (model, target) whose final runs of every seed in ``protocol.seeds``
    are recorded at the protocol's image size, epochs and batch size.

    Columns: model, target, best_lr, test_acc and test_mean_class_acc (means over the final seeds), seconds and
    cpu_seconds (wall-clock and CPU time of all of the pair's runs, grid included) and
    train_images_per_cpu_second (images × epochs / training CPU seconds, over all of the pair's runs).
    """
    runs = read_runs(runs) if not isinstance(runs, pd.DataFrame) else runs
    same_protocol = runs[(runs["image_size"] == protocol.image_size) & (runs["epochs"] == protocol.epochs)
                         & (runs["batch_size"] == protocol.batch_size)]
    table = []
    for (model, target), pair in same_protocol.groupby(["model", "target"], sort=False):
        final = pair[(pair["phase"] == "final") & pair["seed"].isin(protocol.seeds)].drop_duplicates("seed", keep="last")
        if len(final) < len(protocol.seeds):
            continue
        table.append({
            "model": model,
            "target": target,
            "best_lr": float(final["lr"].iloc[0]),
            "test_acc": float(final["test_acc"].mean()),
            "test_mean_class_acc": float(final["test_mean_class_acc"].mean()),
            "seconds": float(pair["seconds"].sum()),
            "cpu_seconds": float(pair["cpu_seconds"].sum()),
            "train_images_per_cpu_second": float((pair["images"] * pair["epochs"]).sum()
                                                 / pair["train_cpu_seconds"].sum()),
        })
    columns = ["model", "target", "best_lr", "test_acc", "test_mean_class_acc", "seconds", "cpu_seconds",
               "train_images_per_cpu_second"]
    return pd.DataFrame(table, columns=columns)
