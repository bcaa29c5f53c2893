"""Rank candidate models for a dataset: the one function behind the CLI, the Space and the Python API.

``rank(models, dataset)`` loads the dataset sample once, extracts every model's features (through the feature
cache), scores every model with every chosen metric under identical settings and returns a
:class:`~lead_hub.leaderboard.Leaderboard`. One model failing (it cannot be loaded, a metric raises) costs only
its own cells: they become NaN with a note, and every other result is kept. Started by ``accelerate launch``,
``rank`` shares the models out among the processes (:mod:`lead_hub.sharding`) and the main process scores them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import inspect
import logging
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lead_hub.cache import DEFAULT_CACHE_DIR
from lead_hub import metrics as metric_registry
from lead_hub import network
from lead_hub.decoding import error_line
from lead_hub.leaderboard import Leaderboard
from lead_hub.metrics.lead import ranking_options as lead_ranking_options
from lead_hub.metrics.lead import rate_warning as lead_rate_warning
from lead_hub.public_names import public_model_id, public_source, public_value
from lead_hub.threads import use_available_cpus
from lead_hub.zoo import Zoo, ZooEntry, load_zoo, zoo_path

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

DEMO_DATASET = Path(__file__).resolve().parents[1] / "demo" / "eurosat_mini.zip"
DATASET_ALIASES = {"demo": DEMO_DATASET}
"""Dataset names that stand for a file of the repository: ``demo`` is the embedded 300-image EuroSAT sample."""

_VERSIONED_PACKAGES = ("lead-hub", "numpy", "scipy", "scikit-learn", "torch", "timm", "transformers", "datasets",
                       "huggingface_hub", "accelerate")


@dataclass
class _ModelResult:
    """What one model produced so far: its row of the table and the arrays the set-relative metrics need.

    ``sample_arrays``: per-sample arrays that only some metrics read (``MetricInfo.sample_arrays``), e.g. LEAD's
    ``sample_ids`` and ``ntk_sq_norms``."""

    row: dict
    inputs: dict | None
    notes: list[str]
    sample_arrays: dict = dataclasses.field(default_factory=dict)
    lead_rates: np.ndarray | None = None
    features_folder: str | None = None


#: The metrics a ranking shows when none are named: LEAD (the paper's whole-network reading), and beside it the
#: peer with the highest mean τw at full data and in low data on the offline benchmark's eleven development
#: targets among the peers that rank (PACTran, both times): H-score, PED and SFDA score higher there but give most
#: models one score at this sample size (benchmarks/preregistration.md, rule R3b; benchmarks/results/verdict_r3b.md).
DEFAULT_METRICS = ("lead", "pactran")
#: Images per class a ranking samples when neither ``samples_per_class``, ``max_samples`` nor ``all_samples`` is
#: given: the same default sample in the CLI, the Python API and the Space.
DEFAULT_SAMPLES_PER_CLASS = 30
#: Why :data:`DEFAULT_METRICS` holds these metrics, in the words every front end prints under its result.
DEFAULT_METRICS_RULE = "LEAD, and the offline benchmark's best peer at full data and in low data among those that rank"


@dataclass(frozen=True)
class _Work:
    """What every model of one ranking is computed with (the same on every process)."""

    images: Any
    image_size: int | None
    cache_dir: str | Path | None
    cache_key: Any
    progress: bool
    batch_size: int
    metric_names: list[str]
    precision: str
    num_workers: int | None
    lead_options: dict | None
    """LEAD's options when LEAD is scored (its per-sample arrays are then computed with the features)."""


@network.one_run()  # the first Hub failure of a ranking ends its network use, with one warning (lead_hub.network)
def rank(
    models: str | Path | Zoo | Sequence[str | ZooEntry],
    dataset: str | Path | datasets.Dataset | datasets.IterableDataset,
    *,
    split: str = "train",
    metrics: Sequence[str] = DEFAULT_METRICS,
    samples_per_class: int | None = None,
    max_samples: int | None = None,
    all_samples: bool = False,
    seed: int = 0,
    image_size: int | None = None,
    metric_options: Mapping[str, Mapping[str, Any]] | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    progress: bool = True,
    on_model_done: Callable[[str, Leaderboard], None] | None = None,
    per_class: bool = False,
    batch_size: int = 64,
    dataset_revision: str | None = None,
    precision: str = "float32",
    strict: bool = False,
    image_column: str | None = None,
    label_column: str | None = None,
    num_workers: int | None = None,
    config: str | None = None,
    allow_remote_image_urls: bool = False,
    drop_empty_classes: bool = False,
) -> Leaderboard:
    """Score every candidate model on ``dataset`` and return them ranked by the first of ``metrics``.

    The sample is drawn once and shared by every model; every model is scored with every metric under identical
    settings. One model failing (it cannot be loaded, a metric raises) costs only its own cells: they become NaN
    with a note, and every other result is kept. Sizes and metric options are checked before any dataset or
    model is loaded (:func:`check_settings`); torch and BLAS get as many threads as there are idle CPUs
    (:mod:`lead_hub.threads`) unless the caller set them.

    Parameters
    ----------
    models : str, Path, Zoo or sequence of str
        A shipped zoo name (``"demo"``), the path of a zoo YAML file, a :class:`~lead_hub.zoo.Zoo` (e.g. from
        :func:`lead_hub.zoo.search_zoo`), one model id, or a list of model ids / zoo entries (``hf-hub:<repo>``,
        ``<owner>/<name>``, ``local-dir:<folder>``, a timm name).
    dataset : str, Path, datasets.Dataset or datasets.IterableDataset
        Anything :func:`lead_hub.data.load_images` reads (Hub id, parquet, image folder, zip, a
        ``datasets.Dataset``, ``IterableDataset`` or dict of them, with an image and a label column), or an alias
        of :data:`DATASET_ALIASES` (``"demo"``).
    split : str
        The dataset split.
    metrics : sequence of str
        Registry names (``lead_hub.metrics.available()``), the primary first: it sorts the table. Default
        :data:`DEFAULT_METRICS`: LEAD with the whole network's NTK, and the benchmark's best peer that ranks, at
        full data and in low data (PACTran).
    samples_per_class, max_samples : int, optional
        Images drawn per class, or in all (stratified by class); None for both: :data:`DEFAULT_SAMPLES_PER_CLASS`
        per class, the same default sample as the CLI and the Space (recorded in the provenance).
    all_samples : bool
        Every image of the split (with neither ``samples_per_class`` nor ``max_samples``).
    seed : int
        Seed of the sample.
    image_size : int, optional
        Resize every image to this square size for every model alike; None keeps each model's own preprocessing.
    metric_options : mapping, optional
        Metric name → keyword options, identical for every model (e.g. ``{"lead": {"ntk": "head"}}``). LEAD's
        ``ntk="auto"`` becomes ``"full"`` (the whole network's per-sample gradient norms, computed here with each
        model), and every LEAD option that shapes the score is recorded in the provenance.
    cache_dir : str or Path, optional
        The feature cache; by default the per-user cache the CLI uses too (``features/`` under
        ``$LEAD_HUB_CACHE``, else ``$XDG_CACHE_HOME/lead_hub``, else ``~/.cache/lead_hub``: :mod:`lead_hub.cache`).
        Entries are keyed by the weights' content or commit, not by where the model lies, so a rerun from any
        folder or clone recomputes nothing (the notes say which features were read back). None: no cache.
    progress : bool
        Show progress bars.
    on_model_done : callable, optional
        ``on_model_done(model_id, partial_leaderboard)`` after each model (set-relative metrics are NaN until the
        end; with ``per_class=True`` it holds the per-class rows so far).
    per_class : bool
        Add per-class diagnostics from the metrics that return them (``return_diagnostics``), in
        ``Leaderboard.per_class``.
    batch_size : int
        Images per forward pass.
    dataset_revision : str, optional
        Branch, tag or commit of a Hub dataset.
    precision : {"float32", "bfloat16"}
        The feature extraction's: bfloat16 autocast is faster on a GPU but gives slightly different features (see
        :mod:`lead_hub.features`); the same for every model and recorded in the provenance.
    strict : bool
        Every sampled image is decode-checked before any model loads. False: unusable ones are skipped with a
        warning and listed in the provenance (``skipped_images``); True: they stop the ranking with an error.
    image_column, label_column : str, optional
        The columns of a parquet or Hub dataset (default: see :func:`lead_hub.data.load_images`).
    num_workers : int, optional
        DataLoader worker processes decoding images while the model runs (default: one per CPU but one, at most
        4; the features do not depend on it). Pass 0 from a multi-threaded server such as the Space: a process
        forked while another thread holds a lock can hang forever; 0 decodes in the calling thread.
    config : str, optional
        The configuration (subset) of a Hub dataset, as ``datasets.load_dataset(name, config)`` takes it.
    allow_remote_image_urls : bool
        An image stored as a path is read only from inside the dataset; True also fetches http(s) URLs.
    drop_empty_classes : bool
        Rank the other classes when some class is left with fewer than two usable images (else that is an error).

    Returns
    -------
    Leaderboard
        One row per model, best first by the primary metric, with the provenance of the run.

    Raises
    ------
    ValueError, KeyError, FileNotFoundError
        A bad setting, metric name, dataset or zoo, before any model is loaded; the message names the input.

    Notes
    -----
    Under ``accelerate launch`` with P processes, every process calls ``rank`` with the same arguments: each
    extracts its share of the models (balanced by parameters × images) on its own device into ``cache_dir``
    (required then: a folder every process sees), and the main process scores them all, calls ``on_model_done``
    (there only) as models finish on any process and shows the progress bar. Every process returns the same
    leaderboard, equal to the one-process leaderboard on the same features; its provenance records ``processes``
    and its ``process`` column which process extracted each model. When another process dies, the main process
    raises :class:`~lead_hub.sharding.RankingStopped` naming the models left; rerunning resumes from the cache.

    Examples
    --------
    >>> from lead_hub import rank
    >>> board = rank("demo", "demo", metrics=["lead", "logme"], image_size=64)   # doctest: +SKIP
    >>> board.best_model                                                          # doctest: +SKIP
    >>> board.table[["rank", "model_id", "lead", "logme"]]                        # doctest: +SKIP
    """
    from lead_hub import sharding
    from lead_hub.data import load_images
    from lead_hub.features import _process_state, dataset_fingerprint

    started = time.perf_counter()
    cache_dir = None if cache_dir is None else Path(cache_dir)  # DEFAULT_CACHE_DIR follows $LEAD_HUB_CACHE: read it now
    samples_per_class = default_sample(samples_per_class, max_samples, all_samples)
    metric_names, options = check_settings(metrics, metric_options, image_size=image_size, batch_size=batch_size,
                                           samples_per_class=samples_per_class, max_samples=max_samples)
    state = _process_state()
    if state.num_processes > 1 and cache_dir is None:
        raise ValueError(f"rank under accelerate launch ({state.num_processes} processes) hands each model's "
                         "features over through the cache: pass cache_dir (on the command line, leave out "
                         "--no-cache)")
    candidates, candidate_provenance = resolve_candidates(models)
    use_available_cpus()
    source = resolve_dataset(dataset)
    images = load_images(source, split=split, samples_per_class=samples_per_class, max_samples=max_samples,
                         seed=seed, revision=dataset_revision, strict=strict, image_column=image_column,
                         label_column=label_column, config=config,
                         allow_remote_image_urls=allow_remote_image_urls, drop_empty_classes=drop_empty_classes,
                         progress=progress)
    # A Hub dataset pinned to a commit is named by its provenance; a local file by a hash of its images' bytes
    # (extract_many's default), so editing the file invalidates the cache.
    content_hash = dataset_fingerprint(images) if images.revision is None else None
    cache_key = content_hash if images.revision is None else images.provenance()
    provenance = {
        "dataset": images.source if _is_dataset_object(source) else dataset_name(dataset),
        "dataset_source": images.source if _is_dataset_object(source) else dataset_name(source),
        "split": split,
        **({} if config is None else {"dataset_config": config}),
        "dataset_revision": images.revision or content_hash,
        "samples": len(images),
        "num_classes": len(images.class_names),
        "class_names": list(images.class_names),
        "skipped_images": [f"{name} {reason}" for name, reason in images.skipped],
        "samples_per_class": samples_per_class,
        "max_samples": max_samples,
        "seed": seed,
        "metrics": metric_names,
        "metric_options": options,
        "image_size": image_size,
        "precision": precision,
        "processes": state.num_processes,
        "candidates": candidate_provenance,
        "versions": library_versions(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if "lead" in metric_names:
        from lead_hub.ntk import lead_ntk_provenance

        provenance["lead_ntk"] = lead_ntk_provenance(options["lead"])
    per_model_metrics = [name for name in metric_names if metric_registry.info(name).combine is None]
    set_metrics = [name for name in metric_names if metric_registry.info(name).combine is not None]
    work = _Work(images, image_size, cache_dir, cache_key, progress and state.is_main_process, batch_size,
                 metric_names, precision, num_workers, options.get("lead") if "lead" in per_model_metrics else None)
    results: dict[int, _ModelResult] = {}
    per_class_rows: dict[int, list[dict]] = {}
    bar = tqdm(total=len(candidates), desc="models", unit="model",
               disable=not progress or len(candidates) < 2 or not state.is_main_process)

    def collect(index: int, result: _ModelResult) -> None:
        """Score one model on the main process and stream the partial leaderboard."""
        if result.inputs is not None:
            per_class_rows[index] = [row for name in per_model_metrics
                                     for row in _score_one(name, options[name], candidates[index].model_id, result,
                                                           per_class, images.class_names)]
        results[index] = result
        bar.update(1)
        if on_model_done is not None:  # with the per-class rows so far: a caller that stops here keeps them
            on_model_done(candidates[index].model_id,
                          _leaderboard(_in_order(results, candidates), provenance, started,
                                       _per_class_table(per_class_rows) if per_class else None))

    def collect_finished_elsewhere() -> int:
        records = run.finished_records(skip=set(results)) if run is not None else []
        for record in records:
            collect(record.index, _result_from_record(record))
        return len(records)

    shares: list[list[int]] = []  # filled by _share_out; read by the report of a stopped ranking
    with _reporting_unfinished(state, candidates, shares, results):
        run = _share_out(candidates, len(images), state, cache_dir, cache_key, shares)
        mine = shares[state.process_index]
        logger.debug("process %d of %d: %d of the %d models", state.process_index, state.num_processes, len(mine),
                     len(candidates))
        for done, index in enumerate(mine, start=1):
            result = _rank_model(candidates[index], work)
            result.row["process"] = state.process_index
            logger.debug("process %d: %s done in %.1f s (%d of its %d models)", state.process_index,
                         candidates[index].model_id, result.row["extract_seconds"] + result.row["score_seconds"],
                         done, len(mine))
            if not state.is_main_process:
                run.write_record(sharding.ModelRecord(index, state.process_index, result.row, result.notes,
                                                      result.features_folder, result.sample_arrays))
                continue
            collect(index, result)
            collect_finished_elsewhere()
        if not state.is_main_process:
            return run.wait_for_leaderboard()
        while len(results) < len(candidates):
            if not collect_finished_elsewhere():
                time.sleep(sharding.POLL_SECONDS)
    bar.close()
    results = _in_order(results, candidates)
    for name in set_metrics:
        _score_set(name, options[name], results)
    if "lead" in per_model_metrics:
        provenance["lead_rates"] = _lead_rates_check(results, options["lead"]["ntk"])
    per_class_table = _per_class_table(per_class_rows) if per_class else None
    board = _leaderboard(results, provenance, started, per_class_table)
    if run is not None:
        run.write_leaderboard(board)
    return board


@dataclass(frozen=True)
class Candidate:
    """A model to rank: ``model_id`` as shown in the leaderboard, ``load_id`` as given to the loader."""

    model_id: str
    load_id: str
    revision: str | None = None
    params: int | None = None


def resolve_candidates(models: str | Path | Zoo | Sequence[str | ZooEntry]) -> tuple[list[Candidate], dict]:
    """The candidates of ``models`` (see :func:`rank`) and a JSON-ready description of where they came from."""
    zoo = None
    if isinstance(models, Zoo):
        zoo = models
    elif isinstance(models, (str, Path)):
        zoo = load_zoo(models) if _is_zoo_reference(models) else None
        if zoo is None:
            models = [str(models)]
    if zoo is not None:
        entries = list(zoo.loadable)
        described = {"zoo": zoo.name, "zoo_file": None if zoo.path is None else public_source(zoo.path),
                     "zoo_sha256": None if zoo.path is None else _file_sha256(zoo.path),
                     "without_loadable_copy": [public_value(entry.label or "?") for entry in zoo.unavailable]}
        if not entries:
            raise ValueError(f"zoo {zoo.name!r} has no model with a loadable copy ({len(zoo.entries)} entries, each "
                             "with a note saying where its weights are); pick another zoo or list model ids")
    else:
        entries = [entry if isinstance(entry, ZooEntry) else ZooEntry(model_id=str(entry), load_id=str(entry))
                   for entry in models]
        described = {"models": [public_model_id(entry.model_id) for entry in entries]}
    candidates = [Candidate(entry.model_id, entry.load_id, entry.revision, entry.params) for entry in entries]
    if not candidates:
        raise ValueError("no candidate models given; pass model ids, a zoo name or a zoo")
    duplicated = sorted({c.model_id for c in candidates if [d.model_id for d in candidates].count(c.model_id) > 1})
    if duplicated:
        raise ValueError(f"candidate models listed more than once: {duplicated}")
    return candidates, described


def resolve_dataset(dataset):
    """The source behind a dataset alias (``demo``); any other value (a ``datasets.Dataset`` too) unchanged.

    An alias that is also an existing path of the working directory (a folder ``./demo`` of the user's own) keeps
    meaning the built-in sample, with a warning saying so and how to rank the path instead; the repository's own
    ``demo/`` folder, in this clone or another, is no such path.
    """
    if _is_dataset_object(dataset) or str(dataset) not in DATASET_ALIASES:
        return dataset
    alias = DATASET_ALIASES[str(dataset)]
    if not alias.exists():
        from lead_hub.zoo import NOT_A_CLONE_HINT

        raise FileNotFoundError(f"dataset {str(dataset)!r} is {alias.name}: {NOT_A_CLONE_HINT}")
    local = Path(str(dataset))
    if local.exists() and not _is_a_copy_of(local, alias):
        logger.warning("dataset %r means the built-in sample %s; %s also exists here: pass ./%s to rank it instead",
                       str(dataset), alias.name, local.resolve(), dataset)
    return alias


def _is_a_copy_of(local: Path, alias: Path) -> bool:
    """Whether ``local`` is ``alias``, its folder, or the same file(s) in another clone of the repository (a user
    with two clones runs one clone's code from the other's folder): then it is no other dataset to warn about."""
    import filecmp

    if local.resolve() in (alias.resolve(), alias.resolve().parent):
        return True
    copy = local / alias.name if local.is_dir() else local
    return copy.is_file() and filecmp.cmp(copy, alias, shallow=False)


def dataset_name(dataset: str | Path) -> str:
    """How the leaderboard names ``dataset``: an alias or Hub id as given, a local file or folder by its name
    (never an absolute path). A dataset object is named by :func:`lead_hub.data.dataset_object_name`."""
    return str(dataset) if str(dataset) in DATASET_ALIASES else public_source(dataset)


def check_settings(metrics: Sequence[str], metric_options: Mapping[str, Mapping[str, Any]] | None, *,
                   image_size: int | None, batch_size: int, samples_per_class: int | None,
                   max_samples: int | None) -> tuple[list[str], dict[str, dict]]:
    """The metric names (primary names, primary first) and their checked options; raise KeyError or ValueError
    naming the bad setting. Takes about a second: the first thing :func:`rank` does, before any loading."""
    check_sizes(image_size=image_size, batch_size=batch_size, samples_per_class=samples_per_class,
                max_samples=max_samples)
    names = _metric_names(metrics)
    return names, _metric_options(names, metric_options)


def default_sample(samples_per_class: int | None, max_samples: int | None, all_samples: bool) -> int | None:
    """The ``samples_per_class`` a ranking draws: the one given, :data:`DEFAULT_SAMPLES_PER_CLASS` when no sample
    size is given, None (no per-class cap) with ``max_samples`` or ``all_samples``; raise ValueError when
    ``all_samples`` comes with a sample size."""
    if all_samples and (samples_per_class is not None or max_samples is not None):
        raise ValueError("all_samples=True takes every image: give it without samples_per_class and max_samples "
                         "(--all-samples without --samples-per-class and --max-samples)")
    if samples_per_class is None and max_samples is None and not all_samples:
        return DEFAULT_SAMPLES_PER_CLASS
    return samples_per_class


def defaults_note(*, metrics: bool, sample: bool, change_metrics: str, change_sample: str, sample_as_in: str) -> str:
    """The defaults a ranking took and the rule that chose them, in one line ("" when it took none).

    Every front end prints this line with its result, so that each says the same; only the way to change a
    default (a flag, a field of the page) and the other front end whose sample is the same are its own.

    Parameters
    ----------
    metrics, sample
        Whether the ranking took :data:`DEFAULT_METRICS` and :data:`DEFAULT_SAMPLES_PER_CLASS`.
    change_metrics, change_sample
        How to choose otherwise, shown in parentheses after each default (e.g. ``"--metrics"``).
    sample_as_in
        The other front end that draws the same default sample (e.g. ``"the Space"``).

    Returns
    -------
    str
        The defaults taken, separated by semicolons, without a full stop.

    Examples
    --------
    >>> defaults_note(metrics=False, sample=True, change_metrics="--metrics", change_sample="--samples-per-class",
    ...               sample_as_in="the Space")
    '30 images per class at most, as in the Space (--samples-per-class)'
    """
    parts = []
    if metrics:
        parts.append(f"metrics {', '.join(DEFAULT_METRICS)} ({DEFAULT_METRICS_RULE}; {change_metrics})")
    if sample:
        parts.append(f"{DEFAULT_SAMPLES_PER_CLASS} images per class at most, as in {sample_as_in} ({change_sample})")
    return "; ".join(parts)


def check_sizes(*, image_size: int | None, batch_size: int, samples_per_class: int | None,
                max_samples: int | None) -> None:
    """Raise ValueError naming the first size that cannot work (checked before any data or model is loaded)."""
    limits = {"image_size": (image_size, 1, "pixels per side"), "batch_size": (batch_size, 1, "images per batch"),
              "samples_per_class": (samples_per_class, 2, "images per class (two at least, for every metric)"),
              "max_samples": (max_samples, 2, "images in all")}
    for name, (value, least, unit) in limits.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ValueError(f"{name}={value!r}: expected a whole number of {unit} of at least {least} "
                             f"(--{name.replace('_', '-')} on the command line)")


def library_versions() -> dict[str, str]:
    """Installed versions of lead_hub and the libraries that shape its numbers, plus Python's."""
    versions = {"python": platform.python_version()}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _is_zoo_reference(models: str | Path) -> bool:
    try:
        zoo_path(models)
    except FileNotFoundError:
        return False
    return True


def _metric_names(metrics: Sequence[str]) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    names = [metric_registry.info(name).name for name in metrics]
    if not names:
        raise ValueError(f"no metric chosen; choose among {', '.join(metric_registry.available())}")
    if len(set(names)) != len(names):
        raise ValueError(f"a metric is listed twice in {list(metrics)}")
    return names


def _metric_options(names: list[str], given: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict]:
    """Options per metric, keyed by the metric's primary name, each checked by
    :func:`lead_hub.metrics.check_options`; options for a metric not chosen are an error."""
    options = {name: {} for name in names}
    for key, value in (given or {}).items():
        name = metric_registry.info(key).name
        if name not in options:
            raise ValueError(f"metric_options given for {key!r}, which is not among the chosen metrics {names}")
        options[name] = dict(value)
    for name, chosen in options.items():
        metric_registry.check_options(name, chosen)
    if "lead" in options:
        options["lead"] = lead_ranking_options(options["lead"])
    return options


def _per_class_table(per_class_rows: dict[int, list[dict]]) -> pd.DataFrame:
    """The per-class rows of the models scored so far, in candidate order."""
    return pd.DataFrame([row for index in sorted(per_class_rows) for row in per_class_rows[index]])


def _lead_rates_check(results: dict[str, _ModelResult], ntk: str) -> dict:
    """The median of every scored model's LEAD rates c·λ̄_k, and a warning (logged once, kept in the provenance)
    when it says the rates saturate or vanish (:func:`lead_hub.metrics.lead.rate_warning`)."""
    rates = [result.lead_rates for result in results.values() if result.lead_rates is not None]
    if not rates:
        return {}
    warning = lead_rate_warning(np.concatenate(rates), ntk)
    if warning:
        logger.warning(warning)
    return {"median": float(np.median(np.concatenate(rates))), "warning": warning}


def _is_dataset_object(dataset) -> bool:
    from lead_hub.data import DATASET_OBJECTS

    return isinstance(dataset, DATASET_OBJECTS)


def _rank_model(candidate: Candidate, work: _Work) -> _ModelResult:
    """What one process computes for one candidate: its features (and source logits) and, when LEAD is scored,
    LEAD's per-sample arrays; the scores are computed by the main process (:func:`_score_one`)."""
    result = _extract(candidate, work)
    if result.inputs is not None and work.lead_options is not None:
        _add_lead_arrays(candidate, result, work)
    return result


def _extract(candidate: Candidate, work: _Work) -> _ModelResult:
    """Features of one candidate, computed in this process; on failure a row of NaN scores noting the error."""
    from lead_hub.features import cache_folder, extract_by_id

    row = {"model_id": candidate.model_id, "model_revision": candidate.revision,
           **{name: np.nan for name in work.metric_names}, "score_seconds": 0.0}
    started = time.perf_counter()
    try:
        extracted = extract_by_id(candidate.load_id, work.images, revision=candidate.revision,
                                  image_size=work.image_size, batch_size=work.batch_size, cache_dir=work.cache_dir,
                                  dataset_key=work.cache_key, progress=work.progress, precision=work.precision,
                                  num_workers=work.num_workers)
    except Exception as error:  # noqa: BLE001 - one model that cannot be loaded or run must not end the ranking
        row["extract_seconds"] = time.perf_counter() - started
        if network.is_outage(error):  # already said once, by lead_hub.network, for every model it stops
            return _ModelResult(row, None, ["not loaded: the Hub could not be reached and the model is not in the "
                                            "local Hugging Face cache"])
        # extract_by_id does not log (extract_many does): one line here, with its cause
        logger.warning("%s: feature extraction failed: %s: %s", candidate.model_id, type(error).__name__,
                       error_line(error))
        return _ModelResult(row, None, [f"feature extraction failed: {type(error).__name__}: {error_line(error)}"])
    row.update(model_revision=extracted.revision, feature_dim=extracted.features.shape[1],
               num_params=extracted.model.get("num_parameters"), extract_seconds=time.perf_counter() - started)
    notes = ["features read from the cache"] if extracted.from_cache else []
    inputs = {"features": extracted.features, "labels": extracted.labels, "source_logits": extracted.source_logits}
    folder = None if work.cache_dir is None else str(cache_folder(extracted, work.images, cache_dir=work.cache_dir,
                                                                  dataset_key=work.cache_key))
    return _ModelResult(row, inputs, notes, features_folder=folder)


def _add_lead_arrays(candidate: Candidate, result: _ModelResult, work: _Work) -> None:
    """LEAD's per-sample arrays for one model: the samples' ids (so its choices cannot move with round-off) and,
    with ``ntk="full"``, the whole network's per-sample gradient norms (:mod:`lead_hub.ntk`, cached beside the
    features). A model whose norms cannot be computed gets no LEAD score and a note saying why, never the
    head-only NTK: every model of a leaderboard is scored with the same NTK."""
    from lead_hub import ntk

    result.sample_arrays["sample_ids"] = ntk.sample_ids(work.images)
    if work.lead_options.get("ntk", "head") != "full":
        return
    started = time.perf_counter()
    try:
        norms = ntk.lead_sq_norms(candidate.load_id, work.images, result.inputs["features"], work.lead_options,
                                  revision=candidate.revision, image_size=work.image_size, cache_dir=work.cache_dir,
                                  dataset_key=work.cache_key, progress=work.progress, num_workers=work.num_workers)
    except Exception as error:  # noqa: BLE001 - one model's NTK failing must not end the ranking
        logger.warning("%s: whole-network NTK failed: %s", candidate.model_id, error_line(error))
        result.notes.append(f"lead: whole-network NTK failed: {type(error).__name__}: {error_line(error)}")
        return
    result.sample_arrays["ntk_sq_norms"] = norms.vector(len(work.images))
    result.row["score_seconds"] += time.perf_counter() - started
    where = "read from the cache" if norms.computed_rows == 0 else \
        f"{norms.computed_rows} computed on {norms.device} in {norms.seconds:.1f} s"
    # The model's true size, as in the params column: a zoo's narrow network is stored zero-padded to a wider one.
    size = result.row.get("num_params") or norms.trainable_parameters
    result.notes.append(f"lead: whole-network NTK over {size:,} backbone parameters and the head, "
                        f"{len(norms.rows)} images ({where})")


def _share_out(candidates: list[Candidate], num_images: int, state, cache_dir, cache_key,
               shares: list[list[int]]) -> Any:
    """Fill ``shares`` with the candidates' indices each process ranks; return the run's hand-over folder (None in
    a single process).

    The main process estimates each model's cost (parameters × images, :mod:`lead_hub.sharding`), assigns the
    models and broadcasts the plan: the one collective of a sharded ranking, taken while every process is at the
    same point (the sample loaded). Each process checks that it drew the same candidates and sample as the main
    process (a Hub search or dataset can change between two processes' requests), then proves it sees the shared
    run folder."""
    from lead_hub import sharding

    if state.num_processes == 1:
        shares.append(list(range(len(candidates))))
        return None
    from accelerate.utils import broadcast_object_list

    identity = ([candidate.model_id for candidate in candidates], cache_key)
    plan: list = [None, None, None]
    if state.is_main_process:
        costs = {}
        for index, candidate in enumerate(candidates):
            parameters = sharding.estimated_parameters(candidate.load_id, candidate.params)
            costs[index] = None if parameters is None else parameters * num_images
        assigned = sharding.assign_by_cost(costs, state.num_processes)
        run = sharding.RunFolder.new(cache_dir)
        run.write_plan([[candidates[index].model_id for index in share] for share in assigned])
        plan = [assigned, str(run.folder), identity]
    broadcast_object_list(plan)
    assigned, folder, main_identity = plan
    if identity != main_identity:
        raise ValueError(f"process {state.process_index} resolved other candidates or another dataset sample than "
                         "the main process (a Hub search or dataset changed between their requests); pin them: rank "
                         "a zoo file or model ids, and a dataset revision")
    shares.extend(assigned)
    run = sharding.RunFolder(Path(folder))
    run.mark_ready(state.process_index)
    if state.is_main_process:
        run.wait_until_ready(state.num_processes)
    return run


def _reporting_unfinished(state, candidates: list[Candidate], shares: list[list[int]], results: dict):
    """On the main process of several: SIGTERM (another process died) raises
    :class:`~lead_hub.sharding.RankingStopped` naming the models not ranked yet. Otherwise a no-op."""
    from lead_hub import sharding

    if state.num_processes == 1 or not state.is_main_process:
        return contextlib.nullcontext()

    def report() -> str:
        if not shares:
            return "no model was ranked (the processes stopped before the models were shared out): rerun the command"
        names = [[candidates[index].model_id for index in share] for share in shares]
        return sharding.unfinished_report(names, {candidates[index].model_id for index in list(results)})

    return sharding.sigterm_raises(report)


def _result_from_record(record) -> _ModelResult:
    """A model ranked by another process, its features read back from the shared cache."""
    from lead_hub.features import read_cache_folder

    notes = list(record.notes)
    extracted = None if record.features_folder is None else read_cache_folder(record.features_folder)
    if record.features_folder is not None and extracted is None:
        notes.append("features missing from the cache after process "
                     f"{record.process} computed them; rerun to compute them again")
    inputs = None if extracted is None else {"features": extracted.features, "labels": extracted.labels,
                                             "source_logits": extracted.source_logits}
    return _ModelResult(dict(record.row), inputs, notes, dict(record.sample_arrays), record.features_folder)


def _score_one(name: str, options: dict, model_id: str, result: _ModelResult, per_class: bool,
               class_names: list[str]) -> list[dict]:
    """Score one model with a per-model metric into ``result``; return its per-class diagnostic rows."""
    function = metric_registry.get(name)
    # LEAD's diagnostics carry its rates, which the ranking checks for saturation (_lead_rates_check)
    wants_diagnostics = (per_class or name == "lead") and "return_diagnostics" in inspect.signature(function).parameters
    accepted = metric_registry.info(name).sample_arrays
    inputs = {**result.inputs, **{key: value for key, value in result.sample_arrays.items() if key in accepted}}
    started = time.perf_counter()
    diagnostics = None
    try:
        if wants_diagnostics:
            score, diagnostics = function(**inputs, return_diagnostics=True, **options)
        else:
            score = metric_registry.score_model_set(name, {model_id: inputs}, **options)[model_id]
        result.row[name] = float(score)
    except metric_registry.MetricNotApplicable as error:
        result.notes.append(f"{name}: not applicable ({error})")
    except Exception as error:  # noqa: BLE001 - a metric failing on one model must not end the ranking
        logger.warning("%s: metric %s failed: %s", model_id, name, error_line(error))
        result.notes.append(f"{name} failed: {type(error).__name__}: {error_line(error)}")
    result.row["score_seconds"] += time.perf_counter() - started
    if name == "lead" and diagnostics is not None:
        result.lead_rates = np.asarray(diagnostics.rates)
    return [] if diagnostics is None or not per_class else _per_class_rows(name, model_id, diagnostics,
                                                                           result.inputs["labels"], class_names)


def _score_set(name: str, options: dict, results: dict[str, _ModelResult]) -> None:
    """Score a set-relative metric once over every extracted model it applies to; split its time evenly."""
    info = metric_registry.info(name)
    inputs = {}
    for model_id, result in results.items():
        if result.inputs is None:
            continue
        if info.needs_source_logits and result.inputs["source_logits"] is None:
            result.notes.append(f"{name}: not applicable (needs source logits; the model has no classifier head)")
            continue
        inputs[model_id] = result.inputs
    if not inputs:
        return
    started = time.perf_counter()
    try:
        scores = metric_registry.score_model_set(name, inputs, **options)
    except Exception as error:  # noqa: BLE001 - the per-model metrics already computed must survive
        logger.warning("set-relative metric %s failed: %s", name, error_line(error))
        scores, failure = {}, f"{name} failed on the model set: {type(error).__name__}: {error_line(error)}"
        for model_id in inputs:
            results[model_id].notes.append(failure)
    share = (time.perf_counter() - started) / len(inputs)
    for model_id in inputs:
        results[model_id].row["score_seconds"] += share
        if model_id in scores:
            results[model_id].row[name] = float(scores[model_id])


def _per_class_rows(name: str, model_id: str, diagnostics, labels: np.ndarray, class_names: list[str]) -> list[dict]:
    """One row per class: its sample count and every length-K array field of the metric's diagnostics."""
    fields = dataclasses.asdict(diagnostics) if dataclasses.is_dataclass(diagnostics) else dict(diagnostics)
    per_class = {f"{name}_{key}": np.asarray(value) for key, value in fields.items()
                 if isinstance(value, np.ndarray) and value.shape == (len(class_names),)}
    counts = np.bincount(labels, minlength=len(class_names))
    return [{"model_id": model_id, "metric": name, "class_index": k, "class_name": class_names[k],
             "samples": int(counts[k]), **{column: float(values[k]) for column, values in per_class.items()}}
            for k in range(len(class_names))]


def _in_order(results: dict[int, _ModelResult], candidates: list[Candidate]) -> dict[str, _ModelResult]:
    """The results keyed by model id, in the candidates' order (the order of equal scores and of set metrics)."""
    return {candidates[index].model_id: results[index] for index in sorted(results)}


def _leaderboard(results: dict[str, _ModelResult], provenance: dict, started: float,
                 per_class: pd.DataFrame | None = None) -> Leaderboard:
    rows = [{**result.row, "notes": "; ".join(result.notes)} for result in results.values()]
    return Leaderboard.from_rows(rows, {**provenance, "seconds": round(time.perf_counter() - started, 3)}, per_class)
