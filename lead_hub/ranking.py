"""Rank candidate models for a dataset: the one function behind the CLI, the Space and the Python API.

``rank(models, dataset)`` loads the dataset sample once, extracts every model's features (through the feature
cache), scores every model with every chosen metric under identical settings and returns a
:class:`~lead_hub.leaderboard.Leaderboard`. One model failing (it cannot be loaded, a metric raises) costs only
its own cells: they become NaN with a note, and every other result is kept.
"""

from __future__ import annotations

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

from lead_hub import DEFAULT_CACHE_DIR
from lead_hub import metrics as metric_registry
from lead_hub import network
from lead_hub.decoding import error_line
from lead_hub.leaderboard import Leaderboard
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


@network.one_run()  # the first Hub failure of a ranking ends its network use, with one warning (lead_hub.network)
def rank(
    models: str | Path | Zoo | Sequence[str | ZooEntry],
    dataset: str | Path | datasets.Dataset | datasets.IterableDataset,
    *,
    split: str = "train",
    metrics: Sequence[str] = ("lead",),
    samples_per_class: int | None = None,
    max_samples: int | None = None,
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
) -> Leaderboard:
    """Score every candidate model on ``dataset`` and return them ranked by the first of ``metrics``.

    ``models``: a shipped zoo name (``"demo"``), the path of a zoo YAML file, a :class:`~lead_hub.zoo.Zoo`
    (e.g. from :func:`lead_hub.zoo.search_zoo`), one model id, or a list of model ids / zoo entries.
    ``dataset``: anything :func:`lead_hub.data.load_images` reads (Hub id, parquet, image folder, zip, a
    ``datasets.Dataset``, ``IterableDataset`` or dict of them, with an image and a label column), or an alias of
    :data:`DATASET_ALIASES`. ``split``, ``samples_per_class``, ``max_samples``, ``seed`` and
    ``dataset_revision`` choose the sample (drawn once, shared by every model). ``image_size`` resizes every
    image to that square size for every model alike; None keeps each model's own preprocessing.

    ``metrics``: registry names (``lead_hub.metrics.available()``); ``metric_options`` maps a metric name to the
    keyword options it gets, identical for every model. A metric raising ``MetricNotApplicable`` for a model
    (e.g. it needs source logits and the model has no head) leaves NaN and a note in that cell; any other error
    of one model is logged and noted, and the run goes on. Set-relative metrics (those with ``combine``) are
    scored once over every model whose features were extracted, after all extractions.

    ``cache_dir`` caches features on disk, by default in ``.lead_hub_cache`` of the current folder like the CLI
    (a rerun recomputes nothing; the notes say which features were read back); None disables it. Sizes
    (``image_size``, ``batch_size``, ``samples_per_class``, ``max_samples``) and metric options are checked before
    any dataset or model is loaded (:func:`lead_hub.metrics.check_options`); torch and BLAS get as many threads
    as there are idle CPUs (:mod:`lead_hub.threads`) unless the caller set them. ``progress`` shows progress bars;
    ``on_model_done(model_id, partial_leaderboard)`` is called after each model (set-relative metrics are NaN
    until the end; with ``per_class=True`` it holds the per-class rows so far). ``per_class=True`` adds per-class
    diagnostics from metrics that return them (``return_diagnostics``), in ``Leaderboard.per_class``.
    ``precision`` is the feature extraction's (``"float32"``, or ``"bfloat16"`` autocast: faster on a GPU,
    slightly different features; see :mod:`lead_hub.features`), the same for every model and recorded in the
    provenance.

    Every sampled image is decode-checked before any model loads: unusable ones are skipped with a warning and
    listed in the provenance (``skipped_images``), or with ``strict=True`` stop the ranking with an error naming
    them. ``image_column`` and ``label_column`` name the columns of a parquet or Hub dataset (see ``load_images``).

    ``num_workers`` DataLoader worker processes decode and preprocess images while the model runs (default: one
    per CPU but one, at most 4; the features do not depend on it). Pass 0 from a multi-threaded server such as the
    Space: DataLoader workers are forked, and a process forked while another thread holds a lock (the web
    server's, a logging or an allocator lock) can hang forever waiting for it; 0 decodes in the calling thread.
    """
    from lead_hub.data import load_images

    from lead_hub.features import dataset_fingerprint

    started = time.perf_counter()
    metric_names, options = check_settings(metrics, metric_options, image_size=image_size, batch_size=batch_size,
                                           samples_per_class=samples_per_class, max_samples=max_samples)
    candidates, candidate_provenance = resolve_candidates(models)
    use_available_cpus()
    source = resolve_dataset(dataset)
    images = load_images(source, split=split, samples_per_class=samples_per_class, max_samples=max_samples,
                         seed=seed, revision=dataset_revision, strict=strict, image_column=image_column,
                         label_column=label_column)
    # A Hub dataset pinned to a commit is named by its provenance; a local file by a hash of its images' bytes
    # (extract_many's default), so editing the file invalidates the cache.
    content_hash = dataset_fingerprint(images) if images.revision is None else None
    cache_key = content_hash if images.revision is None else images.provenance()
    provenance = {
        "dataset": images.source if _is_dataset_object(source) else dataset_name(dataset),
        "dataset_source": images.source if _is_dataset_object(source) else dataset_name(source),
        "split": split,
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
        "candidates": candidate_provenance,
        "versions": library_versions(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if "lead" in metric_names:
        from lead_hub.ntk import lead_ntk_provenance

        provenance["lead_ntk"] = lead_ntk_provenance(options["lead"])
    per_model_metrics = [name for name in metric_names if metric_registry.info(name).combine is None]
    set_metrics = [name for name in metric_names if metric_registry.info(name).combine is not None]
    results: dict[str, _ModelResult] = {}
    per_class_rows: list[dict] = []
    for candidate in tqdm(candidates, desc="models", unit="model", disable=not progress or len(candidates) < 2):
        result = _extract(candidate, images, image_size, cache_dir, cache_key, progress, batch_size, metric_names,
                          precision, num_workers)
        if result.inputs is not None and "lead" in per_model_metrics:
            _add_lead_arrays(candidate, result, images, options["lead"], image_size, cache_dir, cache_key, progress,
                             num_workers)
        if result.inputs is not None:
            for name in per_model_metrics:
                per_class_rows += _score_one(name, options[name], candidate.model_id, result, per_class,
                                             images.class_names)
        results[candidate.model_id] = result
        if on_model_done is not None:  # with the per-class rows so far: a caller that stops here keeps them
            on_model_done(candidate.model_id, _leaderboard(results, provenance, started,
                                                           pd.DataFrame(per_class_rows) if per_class else None))
    for name in set_metrics:
        _score_set(name, options[name], results)
    per_class_table = pd.DataFrame(per_class_rows) if per_class else None
    return _leaderboard(results, provenance, started, per_class_table)


@dataclass(frozen=True)
class Candidate:
    """A model to rank: ``model_id`` as shown in the leaderboard, ``load_id`` as given to the loader."""

    model_id: str
    load_id: str
    revision: str | None = None


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
    candidates = [Candidate(entry.model_id, entry.load_id, entry.revision) for entry in entries]
    if not candidates:
        raise ValueError("no candidate models given; pass model ids, a zoo name or a zoo")
    duplicated = sorted({c.model_id for c in candidates if [d.model_id for d in candidates].count(c.model_id) > 1})
    if duplicated:
        raise ValueError(f"candidate models listed more than once: {duplicated}")
    return candidates, described


def resolve_dataset(dataset):
    """The source behind a dataset alias (``demo``); any other value (a ``datasets.Dataset`` too) unchanged.

    An alias that is also an existing path of the working directory (a folder ``./demo`` of the user's own) keeps
    meaning the built-in sample, with a warning saying so and how to rank the path instead.
    """
    if _is_dataset_object(dataset) or str(dataset) not in DATASET_ALIASES:
        return dataset
    alias = DATASET_ALIASES[str(dataset)]
    local = Path(str(dataset))
    if local.exists() and local.resolve() not in (alias.resolve(), alias.resolve().parent):
        logger.warning("dataset %r means the built-in sample %s; %s also exists here: pass ./%s to rank it instead",
                       str(dataset), alias.name, local.resolve(), dataset)
    return alias


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
    return options


def _is_dataset_object(dataset) -> bool:
    from lead_hub.data import DATASET_OBJECTS

    return isinstance(dataset, DATASET_OBJECTS)


def _extract(candidate: Candidate, images, image_size, cache_dir, cache_key, progress, batch_size, metric_names,
             precision, num_workers) -> _ModelResult:
    """Features of one candidate; on failure a row of NaN scores noting the error."""
    from lead_hub.features import extract_many

    row = {"model_id": candidate.model_id, "model_revision": candidate.revision,
           **{name: np.nan for name in metric_names}, "score_seconds": 0.0}
    started = time.perf_counter()
    try:
        extracted = extract_many([candidate.load_id], images, image_size=image_size,
                                 revisions={candidate.load_id: candidate.revision} if candidate.revision else None,
                                 batch_size=batch_size, cache_dir=cache_dir, dataset_key=cache_key,
                                 progress=progress, on_error="raise", precision=precision,
                                 num_workers=num_workers)[candidate.load_id]
    except Exception as error:  # noqa: BLE001 - one model that cannot be loaded or run must not end the ranking
        row["extract_seconds"] = time.perf_counter() - started
        if network.is_outage(error):  # already said once, by lead_hub.network, for every model it stops
            return _ModelResult(row, None, ["not loaded: the Hub could not be reached and the model is not in the "
                                            "local Hugging Face cache"])
        logger.warning("%s: feature extraction failed: %s", candidate.model_id, error)
        return _ModelResult(row, None, [f"feature extraction failed: {type(error).__name__}: {error_line(error)}"])
    row.update(model_revision=extracted.revision, feature_dim=extracted.features.shape[1],
               num_params=extracted.model.get("num_parameters"), extract_seconds=time.perf_counter() - started)
    notes = ["features read from the cache"] if extracted.from_cache else []
    inputs = {"features": extracted.features, "labels": extracted.labels, "source_logits": extracted.source_logits}
    return _ModelResult(row, inputs, notes)


def _add_lead_arrays(candidate: Candidate, result: _ModelResult, images, lead_options: dict, image_size, cache_dir,
                     cache_key, progress, num_workers) -> None:
    """LEAD's per-sample arrays for one model: the samples' ids (so its choices cannot move with round-off) and,
    with ``ntk="full"``, the whole network's per-sample gradient norms (:mod:`lead_hub.ntk`, cached beside the
    features). A model whose norms cannot be computed gets no LEAD score and a note saying why, never the
    head-only NTK: every model of a leaderboard is scored with the same NTK."""
    from lead_hub import ntk

    result.sample_arrays["sample_ids"] = ntk.sample_ids(images)
    if lead_options.get("ntk", "head") != "full":
        return
    started = time.perf_counter()
    try:
        norms = ntk.lead_sq_norms(candidate.load_id, images, result.inputs["features"], lead_options,
                                  revision=candidate.revision, image_size=image_size, cache_dir=cache_dir,
                                  dataset_key=cache_key, progress=progress, num_workers=num_workers)
    except Exception as error:  # noqa: BLE001 - one model's NTK failing must not end the ranking
        logger.warning("%s: whole-network NTK failed: %s", candidate.model_id, error)
        result.notes.append(f"lead: whole-network NTK failed: {type(error).__name__}: {error_line(error)}")
        return
    result.sample_arrays["ntk_sq_norms"] = norms.vector(len(images))
    result.row["score_seconds"] += time.perf_counter() - started
    where = "read from the cache" if norms.computed_rows == 0 else \
        f"{norms.computed_rows} computed on {norms.device} in {norms.seconds:.1f} s"
    result.notes.append(f"lead: whole-network NTK over {norms.trainable_parameters:,} backbone parameters and the "
                        f"head, {len(norms.rows)} images ({where})")


def _score_one(name: str, options: dict, model_id: str, result: _ModelResult, per_class: bool,
               class_names: list[str]) -> list[dict]:
    """Score one model with a per-model metric into ``result``; return its per-class diagnostic rows."""
    function = metric_registry.get(name)
    wants_diagnostics = per_class and "return_diagnostics" in inspect.signature(function).parameters
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
        logger.warning("%s: metric %s failed: %s", model_id, name, error)
        result.notes.append(f"{name} failed: {type(error).__name__}: {error_line(error)}")
    result.row["score_seconds"] += time.perf_counter() - started
    return [] if diagnostics is None else _per_class_rows(name, model_id, diagnostics, result.inputs["labels"],
                                                          class_names)


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
        logger.warning("set-relative metric %s failed: %s", name, error)
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


def _leaderboard(results: dict[str, _ModelResult], provenance: dict, started: float,
                 per_class: pd.DataFrame | None = None) -> Leaderboard:
    rows = [{**result.row, "notes": "; ".join(result.notes)} for result in results.values()]
    return Leaderboard.from_rows(rows, {**provenance, "seconds": round(time.perf_counter() - started, 3)}, per_class)
