"""``lead-hub finetune``: fine-tune candidate models on a dataset (the ground-truth protocol), resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lead_hub.finetune_protocol import FinetuneProtocol
from lead_hub.zoo import load_zoo

DEFAULTS = FinetuneProtocol()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune models on your data to check a ranking (ground truth)",
        description="Fine-tune each model with a new linear head on --dataset: a learning-rate grid scored on a "
                    "held-out 20% of the training images, then the best rate retrained with every seed and "
                    "scored on the test split. Every finished run is appended to --runs-csv; rerunning the same "
                    "command skips the finished runs.")
    parser.add_argument("--dataset", required=True, help="a Hub dataset id, a parquet file or folder, an image "
                                                          "folder or a .zip (anything 'lead-hub rank' accepts)")
    parser.add_argument("--models", nargs="+", default=[], metavar="ID",
                        help="timm model ids (hf-hub:<repo>, local-dir:<folder> or a timm name)")
    parser.add_argument("--zoo", metavar="NAME", help="also every loadable model of this zoo (see 'lead-hub zoo list')")
    parser.add_argument("--runs-csv", type=Path, required=True, help="one row per finished run; resumes from it")
    parser.add_argument("--summary-csv", type=Path, help="also write the ground-truth table here")
    parser.add_argument("--train-split", default="train", help="split of the training images (default: train)")
    parser.add_argument("--test-split", default="test", help="split of the test images (default: test)")
    parser.add_argument("--dataset-config", help="config of a Hub dataset")
    parser.add_argument("--dataset-revision", help="branch, tag or commit of a Hub dataset")
    parser.add_argument("--image-column", help="image column name, when it is not detected")
    parser.add_argument("--label-column", help="label column name, when it is not detected")
    parser.add_argument("--lr", type=float, nargs="+", default=list(DEFAULTS.learning_rates),
                        help=f"learning-rate grid (default {' '.join(map(str, DEFAULTS.learning_rates))})")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULTS.seeds),
                        help=f"seeds of the final runs (default {' '.join(map(str, DEFAULTS.seeds))})")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs,
                        help="passes over the training images per run (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help="training images per optimiser step (default %(default)s)")
    parser.add_argument("--image-size", type=int, default=DEFAULTS.image_size,
                        help="square side in pixels every image is resized to for training and testing "
                             "(default %(default)s)")
    parser.add_argument("--max-train-samples", type=int, default=DEFAULTS.max_train_samples,
                        help="stratified training subset size (default %(default)s)")
    parser.set_defaults(handler=finetune)


def _models(arguments: argparse.Namespace) -> dict[str, str]:
    """{name shown in the results: id to load}; zoo models are shown by their id as the zoo writes it."""
    ids = {model_id: model_id for model_id in arguments.models}
    if arguments.zoo:
        ids.update({entry.model_id: entry.load_id for entry in load_zoo(arguments.zoo).loadable})
    if not ids:
        raise ValueError("no model to fine-tune: give --models ID [ID ...] or --zoo NAME")
    return ids


def finetune(arguments: argparse.Namespace) -> int:
    # Imported here: torch, timm and datasets take seconds to import, and every lead-hub command would pay that.
    from lead_hub.data import load_images
    from lead_hub.finetune import decode_images, run_ground_truth, summarise_runs

    protocol = FinetuneProtocol(
        image_size=arguments.image_size, max_train_samples=arguments.max_train_samples,
        learning_rates=tuple(arguments.lr), seeds=tuple(arguments.seeds), epochs=arguments.epochs,
        batch_size=arguments.batch_size)
    models = _models(arguments)
    source = {"config": arguments.dataset_config, "revision": arguments.dataset_revision,
              "image_column": arguments.image_column,
              "label_column": arguments.label_column, "streaming": False}
    train = load_images(arguments.dataset, split=arguments.train_split, **source)
    test = load_images(arguments.dataset, split=arguments.test_split, **source)
    train_cache, test_cache = decode_images(train, protocol.image_size), decode_images(test, protocol.image_size)
    console = Console()
    for name, load_id in models.items():
        run_ground_truth(load_id, train, test, arguments.runs_csv, model_name=name, target_name=arguments.dataset,
                         protocol=protocol, train_cache=train_cache, test_cache=test_cache, log=console.print)
    summary = summarise_runs(arguments.runs_csv, protocol)
    summary = summary[summary["model"].isin(list(models)) & (summary["target"] == arguments.dataset)]
    summary = summary.sort_values("test_acc", ascending=False)
    if arguments.summary_csv:
        arguments.summary_csv.parent.mkdir(parents=True, exist_ok=True)
        summary.to_csv(arguments.summary_csv, index=False)
    table = Table(title=f"Fine-tuned test accuracy on {arguments.dataset}")
    for column in ("model", "best lr", "test top-1", "mean per-class", "seconds"):
        table.add_column(column, overflow="fold")
    for row in summary.itertuples():
        table.add_row(row.model, f"{row.best_lr:g}", f"{row.test_acc:.4f}", f"{row.test_mean_class_acc:.4f}",
                      f"{row.seconds:.0f}")
    console.print(table)
    return 0
