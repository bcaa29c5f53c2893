"""Cost and exactness of LEAD's whole-network NTK (per-sample squared gradient norms of F = h∘f), on zoo models.

Two parts, both at 64 px on the benchmark's EuroSAT images (:func:`benchmark.benchmark_images`):

* ``methods``: candidate ways of computing per-sample gradient norms on ``--method-images`` images, checked
  against a plain autograd loop (one backward per sample over every parameter of backbone + head): lead_hub's
  ``torch.func`` pass (:func:`lead_hub.ntk.sample_sq_norms`), Opacus's per-sample gradients
  (``GradSampleModule``) and BackPACK's ``BatchL2Grad``. A candidate that cannot run on the model is recorded with
  its error. Writes ``benchmarks/results/ntk_methods.csv``.
  The layer-wise path (``lead_hub.per_sample_norms``, what ``sample_sq_norms`` uses on the zoo's CNNs) is run
  with the micro-batch of ``--batch-size`` and with one sample per pass: their difference is the round-off spread
  between batch layouts that the tests' tolerances come from.
* ``cost``: for every zoo model, :func:`lead_hub.ntk.sample_sq_norms` on LEAD's NTK rows (64 per class, chosen by
  ``ntk_rows`` from the samples' ids) beside :func:`lead_hub.features.extract_features` on the same images.
  Writes ``benchmarks/results/ntk_cost.csv`` (one row per model, appended as each finishes).
* ``speed``: ms per image of :func:`lead_hub.ntk.sample_sq_norms` on ``--speed-images`` images of the three
  method models, the layer-wise path against the ``torch.func`` one, on ``--threads`` torch threads, with
  variants of the layer-wise path: another micro-batch size, weights in contiguous format instead of
  channels_last and, with
  ``--compile``, ``torch.compile`` of the network's ``forward_features`` (the first pass, which compiles, is timed
  apart). Appends to ``benchmarks/results/ntk_speed.csv``.
* ``demo``: wall and CPU seconds of the README's demo command with the whole-network NTK, cold (``--no-cache``),
  with the layer-wise path and with ``torch.func`` forced, each in a fresh process, beside the load average.
  Appends to ``benchmarks/results/ntk_demo_time.csv``.

Times are CPU seconds of this process with one torch thread and decoding in the process (``--workers 0``), so
they describe the work, whatever else the machine runs; wall seconds are recorded beside them. Opacus and BackPACK
are not lead_hub dependencies: install them to measure them (``pip install opacus backpack-for-pytorch``).

    nice -n 10 python benchmarks/bench_ntk.py methods
    nice -n 10 python benchmarks/bench_ntk.py cost
    nice -n 10 python benchmarks/bench_ntk.py speed --threads 1   # and --threads 2
    python benchmarks/bench_ntk.py demo
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from benchmark import benchmark_images, zoo_model_ids
from lead_hub.features import extract_features
from lead_hub.metrics._lead_ntk import ntk_head, ntk_rows
from lead_hub.models import load_backbone
from lead_hub import ntk, per_sample_norms
from lead_hub.ntk import sample_sq_norms
from lead_hub.per_sample_norms import UnsupportedNetwork

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAD_HUB_SHARED_DATA", REPOSITORY_ROOT.parent / "shared" / "data"))
RESULTS = REPOSITORY_ROOT / "benchmarks" / "results"
METHOD_MODELS = ("mobilenetv1_025.coral_in1k", "mobilenetv2_100.coral_in1k", "tf_efficientnet_lite0.in1k")
IMAGE_SIZE = 64


class WholeNetwork(torch.nn.Module):
    """F = h∘f summed over its logits: s(x) = (1/√K) Σ_j F_j(x), the head as torch Linear layers (zero biases)
    reading the backbone's features through the head's input transform; the reference for every candidate."""

    def __init__(self, network: torch.nn.Module, head):
        super().__init__()
        self.network = network
        self.register_buffer("columns", torch.as_tensor(head.columns, dtype=torch.long))
        self.register_buffer("shift", torch.tensor(head.shift, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(head.scale, dtype=torch.float32))
        self.hidden = torch.nn.ModuleList(_linear(weights) for weights in head.head.hidden)
        self.output = _linear(head.head.output)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        activation = (self.network(pixels)[0][:, self.columns] - self.shift) / self.scale
        for layer in self.hidden:
            activation = torch.relu(layer(activation))
        return self.output(activation).sum(dim=1) / self.output.out_features ** 0.5


def _linear(weights: np.ndarray) -> torch.nn.Linear:
    layer = torch.nn.Linear(weights.shape[1], weights.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weights, dtype=torch.float32))
        layer.bias.zero_()
    return layer


def autograd_loop(model: WholeNetwork, pixels: torch.Tensor) -> np.ndarray:
    """One backward per sample; ‖g‖² summed over every parameter, in float64."""
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    for sample in pixels:
        gradients = torch.autograd.grad(model(sample[None]).sum(), params, allow_unused=True)
        norms.append(sum(float(g.double().square().sum()) for g in gradients if g is not None))
    return np.array(norms)


def opacus_grad_sample(model: WholeNetwork, pixels: torch.Tensor) -> np.ndarray:
    from opacus import GradSampleModule

    wrapped = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    try:
        wrapped(pixels).sum().backward()
        return sum(p.grad_sample.double().flatten(1).square().sum(1) for p in model.parameters()
                   if getattr(p, "grad_sample", None) is not None).numpy()
    finally:
        wrapped._close()


def backpack_batch_l2(model: WholeNetwork, pixels: torch.Tensor) -> np.ndarray:
    from backpack import backpack, extend
    from backpack.extensions import BatchL2Grad

    extended = extend(model)
    with backpack(BatchL2Grad()):
        extended(pixels).sum().backward()
    missing = [name for name, p in extended.named_parameters() if not hasattr(p, "batch_l2")]
    if missing:
        raise RuntimeError(f"no batch_l2 for {len(missing)} parameters, e.g. {missing[:2]}")
    return sum(p.batch_l2.double() for p in extended.parameters()).numpy()


def run_methods(arguments) -> None:
    images = benchmark_images(SHARED_DATA / "targets" / "eurosat")
    rows = np.arange(arguments.method_images)
    table, previous = [], _read(RESULTS / "ntk_methods.csv")
    for slug in METHOD_MODELS:
        backbone = load_backbone(f"local-dir:{SHARED_DATA / 'zoo' / slug}", image_size=IMAGE_SIZE)
        features = extract_features(backbone, images, progress=False, num_workers=0).features
        head = ntk_head(features, len(images.class_names))
        pixels = torch.stack([backbone.transform(images.image(int(row))) for row in rows])
        candidates = {
            "autograd_loop": lambda: autograd_loop(WholeNetwork(backbone.network.eval(), head), pixels),
            "layerwise (lead_hub.ntk)": lambda: sample_sq_norms(
                backbone, images, rows, features, progress=False, num_workers=0,
                batch_size=arguments.batch_size).sq_norms,
            "layerwise, one sample per pass": lambda: sample_sq_norms(backbone, images, rows, features,
                                                                      progress=False, num_workers=0,
                                                                      batch_size=1).sq_norms,
            "torch_func (lead_hub.ntk)": lambda: _torch_func_only(lambda: sample_sq_norms(
                backbone, images, rows, features, progress=False, num_workers=0,
                batch_size=arguments.batch_size).sq_norms),
            "opacus GradSampleModule": lambda: opacus_grad_sample(WholeNetwork(backbone.network.eval(), head), pixels),
            "backpack BatchL2Grad": lambda: backpack_batch_l2(WholeNetwork(backbone.network.eval(), head), pixels),
        }
        reference = None
        for name, method in candidates.items():
            started, wall = time.process_time(), time.perf_counter()
            try:
                norms = method()
            except ModuleNotFoundError:  # not installed here: its earlier result, if any, is kept
                table.extend(row for row in previous if (row["model"], row["method"]) == (slug, name))
                continue
            except Exception as error:  # noqa: BLE001 - a candidate that cannot run is a result
                table.append({"model": slug, "method": name, "images": len(rows), "cpu_s_per_image": "",
                              "wall_s_per_image": "", "max_rel_diff_vs_loop": "", "median_rel_diff_vs_loop": "",
                              "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"})
                print(table[-1])
                continue
            cpu, wall = time.process_time() - started, time.perf_counter() - wall
            reference = norms if reference is None else reference
            difference = np.abs(norms - reference) / reference
            table.append({"model": slug, "method": name, "images": len(rows),
                          "cpu_s_per_image": round(cpu / len(rows), 4), "wall_s_per_image": round(wall / len(rows), 4),
                          "max_rel_diff_vs_loop": f"{difference.max():.2e}",
                          "median_rel_diff_vs_loop": f"{np.median(difference):.2e}", "error": ""})
            print(table[-1])
    _write(RESULTS / "ntk_methods.csv", table)


def run_cost(arguments) -> None:
    images = benchmark_images(SHARED_DATA / "targets" / "eurosat")
    num_classes = len(images.class_names)
    rows = np.sort(np.concatenate(ntk_rows(images.labels, num_classes, sample_ids=images.row_indices,
                                           samples_per_class=64)))
    subset = images.select(rows)
    output = RESULTS / "ntk_cost.csv"
    if arguments.restart:
        output.unlink(missing_ok=True)
    model_ids = zoo_model_ids(SHARED_DATA / "zoo")
    for model_id in reversed(model_ids) if arguments.reverse else model_ids:
        slug = Path(model_id.removeprefix("local-dir:")).name
        if slug in _finished_models(output):  # read again before each model: a second run may share the list
            continue
        backbone = load_backbone(model_id, image_size=IMAGE_SIZE)
        started, wall = time.process_time(), time.perf_counter()
        extract_features(backbone, subset, progress=False, num_workers=0, batch_size=64)
        extract_cpu, extract_wall = time.process_time() - started, time.perf_counter() - wall
        features = extract_features(backbone, images, progress=False, num_workers=0).features
        started, wall = time.process_time(), time.perf_counter()
        norms = sample_sq_norms(backbone, images, rows, features, progress=False, num_workers=0,
                                batch_size=arguments.batch_size)
        ntk_cpu, ntk_wall = time.process_time() - started, time.perf_counter() - wall
        record = {"model": slug, "trainable_parameters": norms.trainable_parameters, "rows": len(rows),
                  "extract_cpu_s": round(extract_cpu, 2), "ntk_cpu_s": round(ntk_cpu, 2),
                  "ntk_over_extract": round(ntk_cpu / extract_cpu, 1),
                  "ntk_cpu_ms_per_image": round(1000 * ntk_cpu / len(rows), 1),
                  "extract_wall_s": round(extract_wall, 2), "ntk_wall_s": round(ntk_wall, 2),
                  "head_sq_norm_mean": round(float(norms.head_sq_norms.mean()), 1),
                  "backbone_sq_norm_mean": round(float(norms.backbone_sq_norms.mean()), 1),
                  "device": norms.device, "torch_threads": torch.get_num_threads(), "batch_size": norms.batch_size}
        print(record)
        _write(output, [record], append=True)


def _torch_func_only(compute):
    """``compute()`` with lead_hub.ntk's layer-wise path refused, so that the torch.func path runs."""
    with mock.patch.object(ntk, "LayerwiseSqNorms", side_effect=UnsupportedNetwork("the benchmark forces torch.func")):
        return compute()


@contextlib.contextmanager
def _network_variant(backbone, variant: str):
    """The layer-wise pass with its weights left in contiguous format (not channels_last), or the backbone's
    network with its ``forward_features`` compiled by torch.compile; restored after."""
    model = backbone.network.model
    if variant == "contiguous_format":
        with mock.patch.object(per_sample_norms, "PASS_MEMORY_FORMAT", torch.contiguous_format):
            yield
        return
    if variant == "torch.compile":
        model.forward_features = torch.compile(model.forward_features)
    try:
        yield
    finally:
        if variant == "torch.compile":
            del model.forward_features


def run_speed(arguments) -> None:
    """ms per image of sample_sq_norms on the three method models: layer-wise vs torch.func, and variants."""
    images = benchmark_images(SHARED_DATA / "targets" / "eurosat")
    rows = np.arange(arguments.speed_images)
    variants = [("torch_func", "", arguments.batch_size), ("layerwise", "", arguments.batch_size),
                ("layerwise", "", 2 * arguments.batch_size), ("layerwise", "contiguous_format", arguments.batch_size),
                ("layerwise", "torch.compile", arguments.batch_size)]
    for slug in arguments.models or METHOD_MODELS:
        backbone = load_backbone(f"local-dir:{SHARED_DATA / 'zoo' / slug}", image_size=IMAGE_SIZE)
        features = extract_features(backbone, images, progress=False, num_workers=0).features
        for path, variant, batch_size in variants:
            if variant == "torch.compile" and not arguments.compile:
                continue
            with _network_variant(backbone, variant):
                def compute(subset):
                    return sample_sq_norms(backbone, images, subset, features, progress=False, num_workers=0,
                                           batch_size=batch_size, chunk_rows=batch_size)
                compute = (lambda subset, inner=compute: _torch_func_only(lambda: inner(subset))) \
                    if path == "torch_func" else compute
                started, wall = time.process_time(), time.perf_counter()
                first = compute(rows[:batch_size])  # warm-up: one-time costs (compilation, kernel selection)
                first_cpu, first_wall = time.process_time() - started, time.perf_counter() - wall
                started, wall = time.process_time(), time.perf_counter()
                norms = compute(rows)
                cpu, wall = time.process_time() - started, time.perf_counter() - wall
            agreement = np.abs(first.sq_norms - norms.sq_norms[:len(first.rows)]) / norms.sq_norms[:len(first.rows)]
            record = {"model": slug, "path": path, "variant": variant or "plain", "batch_size": batch_size,
                      "torch_threads": torch.get_num_threads(), "images": len(rows),
                      "cpu_ms_per_image": round(1000 * cpu / len(rows), 1),
                      "wall_ms_per_image": round(1000 * wall / len(rows), 1),
                      "first_pass_cpu_s": round(first_cpu, 2), "first_pass_wall_s": round(first_wall, 2),
                      "max_rel_diff_first_pass": f"{agreement.max():.1e}",
                      "load_average_1min": round(os.getloadavg()[0], 1)}
            print(record)
            _write(RESULTS / "ntk_speed.csv", [record], append=True)


DEMO_COMMAND = ["rank", "--zoo", "demo", "--dataset", "demo", "--image-size", "64", "--metric-option",
                "lead.ntk=full", "--no-cache", "--quiet"]


def run_demo(arguments) -> None:
    """Wall seconds of the README's demo command with lead.ntk=full, cold, per path, in a fresh process each."""
    for repeat in range(arguments.repeats):
        for path in ("layerwise", "torch_func"):
            load, started, cpu = os.getloadavg()[0], time.perf_counter(), _children_cpu_seconds()
            subprocess.run([sys.executable, __file__, "demo-run", "--path", path, "--output", arguments.output],
                           check=True)
            record = {"repeat": repeat, "path": path, "command": "lead-hub " + " ".join(DEMO_COMMAND),
                      "wall_s": round(time.perf_counter() - started, 1),
                      "cpu_s": round(_children_cpu_seconds() - cpu, 1), "cpus": len(os.sched_getaffinity(0)),
                      "load_average_1min_before": round(load, 1),
                      "load_average_1min_after": round(os.getloadavg()[0], 1)}
            print(record)
            _write(RESULTS / "ntk_demo_time.csv", [record], append=True)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_demo_once(arguments) -> None:
    from lead_hub.cli import main as cli

    command = [*DEMO_COMMAND, "--output", arguments.output]
    code = _torch_func_only(lambda: cli(command)) if arguments.path == "torch_func" else cli(command)
    if code:
        raise SystemExit(code)


def _finished_models(output: Path) -> set[str]:
    return {row["model"] for row in _read(output)}


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, records: list[dict], append: bool = False) -> None:
    new = not (append and path.exists())
    with path.open("a" if append else "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        if new:
            writer.writeheader()
        writer.writerows(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("methods", "cost", "speed", "demo", "demo-run"))
    parser.add_argument("--method-images", type=int, default=16, help="images per model for the method check")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per batched gradient pass")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: CPU time = work)")
    parser.add_argument("--restart", action="store_true", help="cost: start the CSV again instead of resuming")
    parser.add_argument("--reverse", action="store_true",
                        help="cost: take the models in reverse order (a second run then shares the list)")
    parser.add_argument("--speed-images", type=int, default=128, help="speed: images per model and variant")
    parser.add_argument("--models", nargs="+", help="speed: zoo folders to time (default: the method models)")
    parser.add_argument("--compile", action="store_true",
                        help="speed: also time torch.compile of the network (minutes of compilation per model)")
    parser.add_argument("--repeats", type=int, default=1, help="demo: runs of each path")
    parser.add_argument("--path", choices=("layerwise", "torch_func"), default="layerwise", help=argparse.SUPPRESS)
    parser.add_argument("--output", default="/tmp/lead-hub-ntk-demo", help="demo: the leaderboard's folder")
    arguments = parser.parse_args()
    if arguments.part in ("demo", "demo-run"):  # the CLI's own thread choice, as a user gets it
        {"demo": run_demo, "demo-run": run_demo_once}[arguments.part](arguments)
        return
    torch.set_num_threads(arguments.threads)
    {"methods": run_methods, "cost": run_cost, "speed": run_speed}[arguments.part](arguments)


if __name__ == "__main__":
    main()
