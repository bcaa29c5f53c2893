"""``lead-hub rank``: rank candidate models for a dataset and print, save or publish the leaderboard.

A thin wrapper of :func:`lead_hub.ranking.rank`: the arguments map one to one onto its parameters.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rich.console import Console

from lead_hub.cache import CACHE_VARIABLE, DEFAULT_CACHE_DIR, UNPUBLISHED_DIR
from lead_hub.ranking import DEFAULT_METRICS, DEFAULT_SAMPLES_PER_CLASS, defaults_note


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rank", help="rank candidate models for a dataset",
        description="Score candidate models on a sample of your dataset with LEAD (and other metrics) and rank "
                    "them. Example: lead-hub rank --zoo demo --dataset demo --image-size 64")
    candidates = parser.add_mutually_exclusive_group(required=True)
    candidates.add_argument("--models", nargs="+", metavar="ID",
                            help="model ids: hf-hub:<repo>, <owner>/<name>, local-dir:<folder> or a timm name")
    candidates.add_argument("--zoo", metavar="NAME", help="a shipped zoo (see 'lead-hub zoo list') or a zoo YAML file")
    candidates.add_argument("--search", metavar="QUERY",
                            help="the most downloaded image-classification models on the Hub matching QUERY")
    parser.add_argument("--search-limit", type=int, default=10, help="models taken from --search (default: 10)")
    parser.add_argument("--library", help="with --search: only models of this library (timm, transformers)")
    parser.add_argument("--dataset", required=True,
                        help="Hub dataset id, .parquet file or folder, image folder, .zip, or 'demo' (the embedded "
                             "EuroSAT sample)")
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--image-column", metavar="NAME",
                        help="the image column of a parquet or Hub dataset (default: the one typed Image)")
    parser.add_argument("--label-column", metavar="NAME",
                        help="the label column of a parquet or Hub dataset (default: the ClassLabel column, else "
                             "one named label/labels)")
    parser.add_argument("--strict", action="store_true",
                        help="stop when a sampled image does not decode (default: skip it with a warning, listed "
                             "in the provenance)")
    parser.add_argument("--allow-remote-image-urls", action="store_true",
                        help="fetch images that a dataset's rows give as http(s) URLs (default: refused; images are "
                             "read only from the rows' bytes or from files inside the dataset)")
    parser.add_argument("--drop-empty-classes", action="store_true",
                        help="rank the other classes when a class is left with fewer than 2 usable images (default: "
                             "an error)")
    parser.add_argument("--dataset-revision", help="branch, tag or commit of a Hub dataset")
    parser.add_argument("--dataset-config", metavar="NAME", help="configuration (subset) of a Hub dataset")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--samples-per-class", type=int,
                          help=f"images drawn per class (default: {DEFAULT_SAMPLES_PER_CLASS}, as in the Space)")
    sampling.add_argument("--max-samples", type=int, help="images drawn in all, stratified by class")
    sampling.add_argument("--all-samples", action="store_true", help="every image of the split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    parser.add_argument("--image-size", type=int,
                        help="resize every image to this square size for every model (default: each model's own "
                             "preprocessing)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="NAME",
                        help=f"metrics, primary first (default: {' '.join(DEFAULT_METRICS)}: LEAD and the benchmark's best "
                             "peer that ranks, at full data and in low data); 'lead-hub metrics' lists them all")
    parser.add_argument("--metric-option", action="append", default=[], metavar="METRIC.KEY=VALUE",
                        help="an option of one metric, e.g. lead.rate_scale=per_model, or lead.ntk=full for "
                             "LEAD's NTK over every parameter of the model and its head (gradients computed with "
                             "the model, cached beside the features) with lead.head_input=raw|standardized (VALUE "
                             "is read as JSON when it parses, else as a string); repeatable")
    parser.add_argument("--per-class", action="store_true",
                        help="also show per-class diagnostics (LEAD's per-class rates and eigenvalues) under the "
                             "table, and keep them in --output's leaderboard.json")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="write leaderboard.{csv,json,parquet,md,png} into DIR")
    parser.add_argument("--push-to-hub", metavar="OWNER/NAME",
                        help="merge the leaderboard into this Hub dataset repository (see 'lead-hub push')")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help=f"feature cache (default: features/ of the per-user cache, ${CACHE_VARIABLE}, else "
                             "$XDG_CACHE_HOME/lead_hub, else ~/.cache/lead_hub)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="feature extraction precision (default: float32; bfloat16 autocast is faster on a GPU "
                             "but moves scores enough to swap close models)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--log-level", choices=("warning", "info", "debug"), default="warning",
                        help="messages shown on stderr (default: warning; debug adds each process's progress under "
                             "accelerate launch)")
    parser.set_defaults(handler=run_rank)


def run_rank(arguments: argparse.Namespace) -> int:
    """Rank, then print, save and publish on the main process only. Under ``accelerate launch`` every process
    runs this and ranks its share of the models (:mod:`lead_hub.sharding`); the others print nothing."""
    from lead_hub.features import _process_state
    from lead_hub.ranking import check_settings, default_sample, rank
    from lead_hub.sharding import RankingStopped

    _show_messages(arguments.log_level)
    # Seconds of checks before minutes of work: sizes, metric options (exit code 2) and the Hub token (1).
    metric_names = [name for item in arguments.metrics for name in item.split(",") if name]
    metric_options = parse_metric_options(arguments.metric_option)
    check_settings(metric_names, metric_options, image_size=arguments.image_size, batch_size=arguments.batch_size,
                   samples_per_class=default_sample(arguments.samples_per_class, arguments.max_samples,
                                                    arguments.all_samples),
                   max_samples=arguments.max_samples)
    if arguments.output is not None:
        check_output_folder(arguments.output)
    is_main = _process_state().is_main_process
    if arguments.push_to_hub is not None and is_main:
        from lead_hub.hub import HubError, check_can_publish

        try:
            check_can_publish(arguments.push_to_hub)
        except HubError as error:
            print(f"lead-hub rank: error: {error} (checked before ranking: nothing was computed)", file=sys.stderr)
            return 1
    if arguments.search is not None:
        models = _search(arguments.search, arguments.search_limit, arguments.library)
    else:
        models = arguments.zoo if arguments.zoo is not None else arguments.models
    try:
        board = rank(
            models,
            arguments.dataset,
            split=arguments.split,
            metrics=metric_names,
            samples_per_class=arguments.samples_per_class,
            max_samples=arguments.max_samples,
            all_samples=arguments.all_samples,
            seed=arguments.seed,
            image_size=arguments.image_size,
            metric_options=metric_options,
            cache_dir=None if arguments.no_cache else arguments.cache_dir,
            progress=not arguments.quiet,
            per_class=arguments.per_class,
            batch_size=arguments.batch_size,
            dataset_revision=arguments.dataset_revision,
            precision=arguments.precision,
            strict=arguments.strict,
            image_column=arguments.image_column,
            label_column=arguments.label_column,
            config=arguments.dataset_config,
            allow_remote_image_urls=arguments.allow_remote_image_urls,
            drop_empty_classes=arguments.drop_empty_classes,
        )
    except RankingStopped as error:
        print(f"lead-hub rank: error: {error}", file=sys.stderr)
        return 1
    if not is_main:
        return 0
    console = Console()
    print_leaderboard(board, console, "rank")
    defaults = defaults_used(arguments)
    if defaults:
        console.print(f"defaults: {defaults}", highlight=False)
    if arguments.per_class:
        print_per_class(board, console, saved=arguments.output is not None)
    if arguments.output is not None:
        for path in board.save(arguments.output):
            console.print(f"wrote {path}")
    if board.best_model is None:
        print(f"lead-hub rank: error: no model could be scored; {_why_none_scored()}", file=sys.stderr)
        return 1
    if arguments.push_to_hub is not None:
        return _push(board, arguments.push_to_hub, arguments.output)
    return 0


def defaults_used(arguments: argparse.Namespace) -> str:
    """The defaults a ranking took and the rule that chose them, in one line ("" when every choice was given):
    :func:`lead_hub.ranking.defaults_note` with the flags that change them."""
    sample_given = arguments.samples_per_class is not None or arguments.max_samples is not None \
        or arguments.all_samples
    return defaults_note(metrics=arguments.metrics == list(DEFAULT_METRICS), sample=not sample_given,
                         change_metrics="--metrics", change_sample="--samples-per-class, --all-samples",
                         sample_as_in="the Space")


def print_leaderboard(board, console: Console, command: str) -> None:
    """The ranked table on stdout, fitted to the console's width; the ranking's warnings on stderr, one line each
    (a table redirected to a file holds only the table)."""
    console.print(board.to_rich(console.width))
    for warning in board.warnings:
        print(f"lead-hub {command}: warning: {warning}", file=sys.stderr)


def print_per_class(board, console: Console, *, saved: bool) -> None:
    """One table per per-class diagnostic (e.g. LEAD's per-class rates): a row per class, a column per model,
    headed by its rank in the leaderboard (``#1`` ...) so that the table stays narrow."""
    import pandas as pd
    from rich import box
    from rich.table import Table

    per_class = board.per_class
    if per_class is None or per_class.empty:
        console.print("per-class diagnostics: none of the chosen metrics gives any "
                      f"({', '.join(board.metrics)}; lead does)")
        return
    ranked = [model_id for model_id in board.table["model_id"] if model_id in set(per_class["model_id"])]
    ranks = dict(zip(board.table["model_id"], board.table["rank"]))
    fixed = {"model_id", "metric", "class_index", "class_name", "samples"}
    for field in [column for column in per_class.columns if column not in fixed]:
        values = per_class.dropna(subset=[field]).pivot_table(index=["class_index", "class_name", "samples"],
                                                              columns="model_id", values=field)
        console.print(f"\n{field} per class (models by rank)")  # a title line: the narrow table would wrap it
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("class", overflow="fold")
        table.add_column("n", justify="right")
        shown = [model_id for model_id in ranked if model_id in values.columns]
        for model_id in shown:
            table.add_column("-" if pd.isna(ranks[model_id]) else f"#{ranks[model_id]}", justify="right")
        for (_, class_name, samples), row in values.iterrows():
            table.add_row(str(class_name), str(samples), *(f"{row[model_id]:.4g}" for model_id in shown))
        console.print(table)
    if not saved:
        console.print("every per-class value, with the model ids: --output DIR (leaderboard.json, \"per_class\")")


def _search(query: str, limit: int, library: str | None):
    """The zoo of ``--search``; without the Hub, a ConnectionError in one plain sentence (a search cannot be
    answered from a local cache, so none is suggested)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    from lead_hub import network
    from lead_hub.decoding import error_line
    from lead_hub.zoo import search_zoo

    if constants.HF_HUB_OFFLINE:
        raise ConnectionError("--search asks the Hub, and HF_HUB_OFFLINE=1 is set: unset it to search, or name the "
                              "models with --models or --zoo")
    try:
        with network.outage_reported_by_caller():
            return search_zoo(query, limit=limit, library=library)
    except OfflineModeIsEnabled as error:
        found = network.outage()
        cause = found.describe() if found is not None else error_line(error)
        raise ConnectionError(f"--search asks the Hub, and {cause}: check the network (and HF_ENDPOINT), or name "
                              "the models with --models or --zoo") from None


def _show_messages(level: str) -> None:
    """Print lead_hub's messages of ``level`` and above on stderr (warnings are printed anyway; other libraries'
    debug messages stay hidden)."""
    if level == "warning":
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("lead_hub")
    package_logger.setLevel(level.upper())
    package_logger.addHandler(handler)


def _why_none_scored() -> str:
    from lead_hub import network

    found = network.outage()
    if found is None:
        return "see the notes column"
    return (f"{found.describe()}, so models and datasets came only from the local Hugging Face cache. Check the "
            "network (and HF_ENDPOINT), or set HF_HUB_OFFLINE=1 and rank models that are cached or local "
            "(local-dir:<folder>)")


def check_output_folder(folder: Path) -> None:
    """Raise ValueError (before any ranking) unless ``folder`` is, or can be created as, a writable folder."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        raise ValueError(f"--output {folder} is an existing file; pass a folder (it will hold leaderboard.csv, "
                         ".json, .parquet, .md and .png)")
    if not existing.is_dir():
        raise ValueError(f"--output {folder}: {existing} is a file, so the folder cannot be created there; pass "
                         "another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output {folder}: {existing} is not writable; pass a folder you can write to")


def parse_metric_options(items: list[str]) -> dict[str, dict]:
    """``["lead.rate_scale=per_model", "lead.folds=3"]`` → ``{"lead": {"rate_scale": "per_model", "folds": 3}}``."""
    options: dict[str, dict] = {}
    for item in items:
        name, separator, value = item.partition("=")
        metric, dot, key = name.partition(".")
        if not separator or not dot or not metric or not key:
            raise ValueError(f"--metric-option {item!r}: expected METRIC.KEY=VALUE, e.g. lead.rate_scale=per_model")
        options.setdefault(metric, {})[key] = _json_or_text(value)
    return options


def _json_or_text(value: str):
    """``3`` → 3, ``1e-4`` → 0.0001, ``[8, 16]`` → [8, 16], ``true`` → True; anything else stays a string."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _push(board, repo_id: str, output: Path | None) -> int:
    """Publish ``board``; when that fails, keep it as parquet (in ``output``, else in ``unpublished/`` of the
    per-user cache: :data:`lead_hub.cache.UNPUBLISHED_DIR`) and print the ``lead-hub push`` command that publishes
    it (safe to repeat: rows merge by key)."""
    from lead_hub.cli.push import push_command
    from lead_hub.hub import HubError, push_leaderboard
    from lead_hub.hub_merge import run_id

    try:
        result = push_leaderboard(board.table, board.provenance, repo_id)
    except HubError as error:
        print(f"lead-hub rank: error: {error}", file=sys.stderr)
        if output is not None:
            saved = output / "leaderboard.parquet"
        else:
            saved = board.save(Path(UNPUBLISHED_DIR), formats=("parquet",),
                               stem=f"leaderboard-{run_id(board.provenance)}")[0]
        command = push_command(argparse.Namespace(results=saved, repo_id=repo_id))
        print(f"the leaderboard is saved in {saved}; publish it with: {command}", file=sys.stderr)
        return 1
    print(f"Published to {result.repo_id}: {result.pull_request_url or result.commit_url}")
    return 0
