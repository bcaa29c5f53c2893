"""One ranking of the Space: check the form, unpack an upload safely, run lead_hub's ``rank`` and stream its results.

:func:`stream_ranking` is a generator of :class:`RankingUpdate`: one per finished model (the partial leaderboard
``rank`` hands to ``on_model_done``), then a final one with the chart and the files (CSV, and parquet for
``lead-hub push``). ``rank`` runs in a worker thread; the generator relays its progress, so a web page sees every
model's row as soon as it is scored. A stop request ends the ranking after the model in progress, with a final
update of the models scored by then.

Everything a visitor sends is hostile until checked here: the upload's size is checked before a byte of it is
unpacked, the zip goes through :func:`lead_hub.archive.extract_image_archive` with the Space's
:class:`SpaceLimits`, and typed ids must be Hub ids (never paths of the server). Errors are raised as
:class:`SpaceInputError` or as lead_hub's own errors (``ArchiveError``, ``DataSourceError``, ...), whose messages
name the input and the fix; the app shows them as they are.
"""

from __future__ import annotations

import contextvars
import hashlib
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from lead_hub.archive import ArchiveLimits, extract_image_archive
from lead_hub.cli.rank import parse_metric_options
from lead_hub.decoding import error_line
from lead_hub.chart import save_chart
from lead_hub.leaderboard import Leaderboard, display_names, short_name
from lead_hub.messages import listed
from lead_hub.ranking import DEFAULT_METRICS, DEFAULT_SAMPLES_PER_CLASS, check_settings, defaults_note, rank
from lead_hub.zoo import LOCAL_DIR_PREFIX, load_zoo, zoo_names
from visitor_messages import ranking_warning

DATASET_FROM_UPLOAD = "zip upload"
DATASET_FROM_HUB = "Hub dataset"
MODELS_FROM_ZOO = "shipped zoo"
MODELS_FROM_IDS = "model ids"
OWN_PREPROCESSING = 0
"""``image_size`` value meaning "each model's own preprocessing" (``rank(image_size=None)``)."""

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_MODEL_ID = re.compile(r"(hf-hub:)?[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?(@[\w./-]+)?")
_SPLIT = re.compile(r"[A-Za-z0-9][\w.-]*")
_HASH_CHUNK_BYTES = 1 << 20
CHART_WIDTH_INCHES = 10.0
"""The chart's width (the CLI's is 13 inches): shown in the page's results column (about 720 px wide at 1366 px),
its labels keep two thirds of their size; any narrower and the panels' axis titles collide."""
RESULT_FILES = ("leaderboard.csv", "leaderboard.parquet", "leaderboard_per_class.parquet")
"""What a final update offers for download: the table as CSV (for a spreadsheet), as parquet with the run's
provenance (what ``lead-hub push`` publishes), and the per-class diagnostics as parquet (when a metric gave
them)."""
_ONE_RANKING_AT_A_TIME = threading.Lock()
"""Held by the worker thread for a whole ranking: a run the visitor abandoned finishes its current model before
the next one starts, so the machine never runs two rankings at once, whatever the web queue thinks."""


class SpaceInputError(ValueError):
    """A form value the Space refuses: the message names the field, the limit and what to do."""


@dataclass(frozen=True)
class SpaceLimits:
    """What one visitor may ask of the Space.

    ``max_upload_bytes`` bounds the zip as uploaded (checked before unpacking); ``archive`` bounds what it may
    unpack to (image count, uncompressed bytes, compression ratio); ``max_samples_per_class`` and ``max_models``
    bound the work of one ranking; ``max_image_size`` the resize side in pixels.
    """

    max_upload_bytes: int = 100 * 1024**2
    archive: ArchiveLimits = ArchiveLimits(max_files=10_000, max_total_bytes=1024**3)
    max_samples_per_class: int = 200
    max_models: int = 20
    max_image_size: int = 384


@dataclass(frozen=True)
class RankingRequest:
    """The form of the Space, one field per input.

    ``dataset_from`` is :data:`DATASET_FROM_UPLOAD` (``upload``: path of a zip of class folders) or
    :data:`DATASET_FROM_HUB` (``hub_dataset``: ``owner/name``); ``split`` applies to both (split folders inside a
    zip). ``models_from`` is :data:`MODELS_FROM_ZOO` (``zoo``: a shipped zoo name) or :data:`MODELS_FROM_IDS`
    (``model_ids``: Hub or timm ids separated by commas, spaces or new lines). The leaderboard is ranked by
    ``primary_metric``; ``other_metrics`` are scored too. By default both, and ``samples_per_class``, are those of
    ``lead-hub rank`` (:data:`lead_hub.ranking.DEFAULT_METRICS`, :data:`lead_hub.ranking.DEFAULT_SAMPLES_PER_CLASS`),
    and the result's status says which rule chose them. ``image_size`` 0 keeps each model's own preprocessing.
    ``metric_options``: ``METRIC.KEY=VALUE`` items as ``lead-hub rank --metric-option`` takes them, e.g.
    ``("lead.ntk=full",)`` for LEAD's whole-network NTK.
    """

    dataset_from: str = DATASET_FROM_UPLOAD
    upload: str | None = None
    hub_dataset: str = ""
    split: str = "train"
    models_from: str = MODELS_FROM_ZOO
    zoo: str = "demo"
    model_ids: str = ""
    primary_metric: str = DEFAULT_METRICS[0]
    other_metrics: tuple[str, ...] = DEFAULT_METRICS[1:]
    samples_per_class: int = DEFAULT_SAMPLES_PER_CLASS
    image_size: int = 64
    metric_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class RankingUpdate:
    """One step of a ranking: a status line and the leaderboard so far (None when a ranking stopped before its
    first model); ``chart`` (a PNG) and ``files`` (see :data:`RESULT_FILES`) come with the final update only."""

    status: str
    board: Leaderboard | None
    final: bool = False
    chart: Path | None = None
    files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class _Plan:
    """A checked request, as ``rank`` arguments."""

    models: str | list[str]
    dataset: str | None
    upload: Path | None
    split: str
    metrics: list[str]
    samples_per_class: int
    image_size: int | None
    metric_options: dict
    defaults: str
    """The defaults the visitor left as they were and the rule that chose them ("" when every choice was made)."""


class _Stopped(Exception):
    """Raised inside the worker, after a model's row is sent, when the ranking is to end there."""


def stream_ranking(request: RankingRequest, *, results_dir: Path, limits: SpaceLimits = SpaceLimits(),
                   cache_dir: Path | None = None, progress: Callable[[float, str], None] | None = None,
                   stop: threading.Event | None = None) -> Iterator[RankingUpdate]:
    """Rank the models of ``request`` and yield a :class:`RankingUpdate` after each model and at the end.

    Parameters
    ----------
    request
        The form, checked first (:class:`SpaceInputError`); an upload is unpacked under ``limits`` into a
        temporary folder deleted after the ranking.
    results_dir
        Where the final update's chart and files are written.
    limits, cache_dir
        The Space's limits; a feature cache (None: none).
    progress
        ``progress(fraction, description)`` hears of each stage and each scored model; ``rank``'s own progress bars
        (tqdm: models, images) run in the worker thread, which starts in a copy of the caller's context.
    stop
        Set (by the page's Stop button) to end the ranking after the model in progress: the final update then
        holds the models scored so far, the one in progress included, with their chart and files. Closing the
        generator early stops the ranking the same way.

    Returns
    -------
    Iterator[RankingUpdate]
        One update per scored model (none once ``stop`` is set), then the final one. The worker thread has ended
        when the final update is yielded, so the next ranking starts at once. An upload is recorded in the
        leaderboard's provenance as its file name (``dataset``) and the sha256 of its bytes
        (``dataset_revision``), not as the temporary folder it was unpacked into.

    Examples
    --------
    >>> updates = list(stream_ranking(RankingRequest(upload="demo/eurosat_mini.zip"), results_dir=Path("out")))
    >>> updates[-1].final, [path.name for path in updates[-1].files][:2]
    (True, ['leaderboard.csv', 'leaderboard.parquet'])
    """
    report = progress or (lambda fraction, description: None)
    plan = _checked_plan(request, limits)
    upload_name = upload_digest = None
    if plan.upload is not None:
        upload_name, upload_digest = plan.upload.name, _file_sha256(plan.upload)
    events: queue.Queue = queue.Queue()
    abandoned = threading.Event()
    requested = stop or threading.Event()

    def stopping() -> bool:
        return requested.is_set() or abandoned.is_set()

    # The worker runs in a copy of this thread's context: a progress tracker that follows tqdm bars (Gradio's
    # track_tqdm) finds the request it reports to there, and so shows the feature extraction image by image.
    worker = threading.Thread(target=contextvars.copy_context().run,
                              args=(_run, plan, limits, cache_dir, events, stopping), daemon=True,
                              name="lead-hub-space-ranking")
    started = time.perf_counter()
    worker.start()
    scored = None
    try:
        while True:
            kind, *payload = events.get()
            if kind == "stage":
                report(*payload)
            elif kind == "model":
                done, total, model_id, board = payload
                scored = (done, total, _named_after_upload(board, upload_name, upload_digest))
                report(done / total, f"scored {done} of {total} models")
                if not requested.is_set():  # once stopping, the final update follows at once
                    yield RankingUpdate(f"Scored {done} of {total} models (latest: {short_name(model_id)}); the "
                                        "table fills in as each model finishes.", scored[2])
            else:
                # The worker sends its outcome last, after releasing the one-ranking lock: it ends now, and no
                # thread of this ranking keeps the CPU once its result is on the page.
                worker.join()
                seconds = time.perf_counter() - started
                if kind == "error":
                    raise payload[0]
                if kind == "done":
                    board = _named_after_upload(payload[0], upload_name, upload_digest)
                    yield _final_update(board, results_dir, seconds, plan.defaults)
                else:
                    yield _stopped_update(scored, results_dir, seconds, plan.defaults)
                return
    finally:
        abandoned.set()


def offered_zoos() -> list[str]:
    """Shipped zoos the Space can rank: at least one entry with a loadable copy, every ``local-dir:`` folder
    present (the developers' ``offline`` zoo needs ../shared, absent from a Space)."""
    offered = []
    for name in zoo_names():
        entries = load_zoo(name).loadable
        folders = [Path(entry.load_id.removeprefix(LOCAL_DIR_PREFIX)) for entry in entries
                   if entry.load_id.startswith(LOCAL_DIR_PREFIX)]
        if entries and all(folder.is_dir() for folder in folders):
            offered.append(name)
    return offered


def parse_model_ids(text: str, limits: SpaceLimits) -> list[str]:
    """Model ids from free text (commas, spaces or new lines between them); only Hub and timm ids.

    ``local-dir:`` ids and paths are refused: they would load files of the server.
    """
    ids = [item for item in re.split(r"[\s,]+", text.strip()) if item]
    if not ids:
        raise SpaceInputError("Model ids: the list is empty; enter Hub ids such as timm/resnet18.a1_in1k, one per "
                              "line, or choose a shipped zoo")
    for model_id in ids:
        if model_id.startswith(LOCAL_DIR_PREFIX) or ".." in model_id or not _MODEL_ID.fullmatch(model_id):
            raise SpaceInputError(f"Model ids: {model_id!r} is not a Hub or timm model id; the Space loads models "
                                  "from the Hub only (hf-hub:owner/name, owner/name or a timm name). Rank local "
                                  "folders with the lead-hub CLI on your machine")
    if len(set(ids)) != len(ids):
        raise SpaceInputError("Model ids: a model is listed twice; list each once")
    if len(ids) > limits.max_models:
        raise SpaceInputError(f"Model ids: {len(ids)} models, more than the {limits.max_models} one ranking may "
                              "score here; split the list, or run lead-hub rank on your machine")
    return ids


def check_upload(upload: str | None, limits: SpaceLimits) -> Path:
    """The uploaded zip's path, after checking that there is one and that it is within ``max_upload_bytes``."""
    if not upload:
        raise SpaceInputError("Dataset: no zip uploaded; upload a .zip of class folders (<class>/<image>), or "
                              f"choose '{DATASET_FROM_HUB}'")
    path = Path(upload)
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        raise SpaceInputError(f"Dataset: the upload {path.name} is {_readable_size(size)}, more than the "
                              f"{_readable_size(limits.max_upload_bytes)} this Space accepts; sample fewer images per "
                              "class before zipping, or run lead-hub rank on your machine")
    return path


def _checked_plan(request: RankingRequest, limits: SpaceLimits) -> _Plan:
    if not _SPLIT.fullmatch(request.split or ""):
        raise SpaceInputError(f"Split: {request.split!r} is not a split name; use a name such as train or test")
    if request.dataset_from == DATASET_FROM_UPLOAD:
        upload, dataset = check_upload(request.upload, limits), None
    elif request.dataset_from == DATASET_FROM_HUB:
        upload, dataset = None, _checked_hub_dataset(request.hub_dataset)
    else:
        raise SpaceInputError(f"Dataset from: {request.dataset_from!r}; choose {DATASET_FROM_UPLOAD!r} or "
                              f"{DATASET_FROM_HUB!r}")
    if request.models_from == MODELS_FROM_ZOO:
        if request.zoo not in offered_zoos():
            raise SpaceInputError(f"Zoo: {request.zoo!r} is not one of the zoos offered here: "
                                  f"{', '.join(offered_zoos())}")
        models: str | list[str] = request.zoo
    elif request.models_from == MODELS_FROM_IDS:
        models = parse_model_ids(request.model_ids, limits)
    else:
        raise SpaceInputError(f"Models from: {request.models_from!r}; choose {MODELS_FROM_ZOO!r} or "
                              f"{MODELS_FROM_IDS!r}")
    samples = int(request.samples_per_class)
    if not 2 <= samples <= limits.max_samples_per_class:
        raise SpaceInputError(f"Samples per class: {samples}; choose 2 to {limits.max_samples_per_class}")
    image_size = int(request.image_size)
    if not (image_size == OWN_PREPROCESSING or 16 <= image_size <= limits.max_image_size):
        raise SpaceInputError(f"Image size: {image_size} px; choose 16 to {limits.max_image_size}, or "
                              f"{OWN_PREPROCESSING} for each model's own preprocessing")
    metrics = [request.primary_metric, *(name for name in request.other_metrics if name != request.primary_metric)]
    try:
        metric_options = parse_metric_options(list(request.metric_options))
        check_settings(metrics, metric_options, image_size=None, batch_size=1, samples_per_class=None,
                       max_samples=None)
    except (KeyError, ValueError) as error:
        raise SpaceInputError(f"Metric options: {error_line(error)}") from error
    return _Plan(models, dataset, upload, request.split, metrics, samples,
                 None if image_size == OWN_PREPROCESSING else image_size, metric_options,
                 defaults_taken(metrics, samples))


def defaults_taken(metrics: list[str], samples_per_class: int) -> str:
    """The defaults of a ranking the visitor left as they were, and the rule that chose them: the line
    ``lead-hub rank`` prints under its table (:func:`lead_hub.ranking.defaults_note`), with the page's fields to
    change them; "" when the visitor chose both the metrics and the sample.

    The metrics are the default when LEAD is ranked by and the other default metrics, in whatever order they were
    ticked, are scored beside it.

    Examples
    --------
    >>> defaults_taken(["lead", "pactran"], 6).startswith("metrics lead, pactran (LEAD, and")
    True
    >>> defaults_taken(["lead", "pactran", "hscore"], 30).startswith("30 images per class")  # hscore ticked too
    True
    >>> defaults_taken(["lead"], 6)
    ''
    """
    default_metrics = metrics[0] == DEFAULT_METRICS[0] and sorted(metrics[1:]) == sorted(DEFAULT_METRICS[1:])
    return defaults_note(metrics=default_metrics, sample=samples_per_class == DEFAULT_SAMPLES_PER_CLASS,
                         change_metrics="'Also score with' under More settings",
                         change_sample="'Samples per class' under More settings", sample_as_in="the command line")


def _checked_hub_dataset(dataset_id: str) -> str:
    dataset_id = (dataset_id or "").strip()
    if not _HUB_ID.fullmatch(dataset_id) or ".." in dataset_id:
        raise SpaceInputError(f"Hub dataset: {dataset_id!r} is not a dataset id; enter owner/name, e.g. "
                              "uoft-cs/cifar10")
    if Path(dataset_id).exists():
        # load_images reads an existing path as a local folder: a Hub id must never reach the server's files.
        raise SpaceInputError(f"Hub dataset: {dataset_id!r} is also a path on this server, so it cannot be read as "
                              "a Hub id here; rank it with lead-hub on your machine")
    return dataset_id


def _run(plan: _Plan, limits: SpaceLimits, cache_dir: Path | None, events: queue.Queue,
         stopping: Callable[[], bool]) -> None:
    """The worker thread: unpack, rank, and report every step on ``events``; the outcome (``done``, ``stopped`` or
    ``error``) comes last, once the lock is released. ``stopping()`` is asked before each stage and after each
    model, once that model's row is sent: a stopped ranking keeps the model it was scoring."""
    if not _ONE_RANKING_AT_A_TIME.acquire(blocking=False):
        events.put(("stage", 0.0, "waiting for the previous ranking to stop"))
        _ONE_RANKING_AT_A_TIME.acquire()
    outcome: tuple = ("stopped",)
    try:
        with tempfile.TemporaryDirectory(prefix="lead_hub_space_") as folder:
            dataset = plan.dataset
            if plan.upload is not None and not stopping():
                events.put(("stage", 0.0, f"checking and unpacking {plan.upload.name}"))
                dataset = Path(folder) / "images"
                extract_image_archive(plan.upload, dataset, limits.archive)
            if stopping():
                raise _Stopped
            events.put(("stage", 0.0, "loading the sample and the first model"))
            done = 0
            total = _model_count(plan.models)

            def on_model_done(model_id: str, board: Leaderboard) -> None:
                nonlocal done
                done += 1
                events.put(("model", done, total, model_id, board))
                if stopping():
                    raise _Stopped

            board = rank(plan.models, dataset, split=plan.split, metrics=plan.metrics,
                         samples_per_class=plan.samples_per_class, image_size=plan.image_size, cache_dir=cache_dir,
                         metric_options=plan.metric_options, progress=True, on_model_done=on_model_done,
                         per_class=True,
                         num_workers=0)  # a web server is multi-threaded: no forked DataLoader workers (see rank)
        outcome = ("done", board)
    except _Stopped:
        pass
    except Exception as error:  # noqa: BLE001 - relayed to the generator, which raises it in the visitor's request
        outcome = ("error", error)
    finally:
        _ONE_RANKING_AT_A_TIME.release()
        events.put(outcome)


def _model_count(models: str | list[str]) -> int:
    return len(load_zoo(models).loadable) if isinstance(models, str) else len(models)


def _named_after_upload(board: Leaderboard, name: str | None, digest: str | None) -> Leaderboard:
    if name is None:
        return board
    provenance = {**board.provenance, "dataset": name, "dataset_source": f"upload:{name}",
                  "dataset_revision": f"sha256:{digest}"}
    return replace(board, provenance=provenance)


def _final_update(board: Leaderboard, results_dir: Path, seconds: float, defaults: str = "") -> RankingUpdate:
    """The last update of a ranking that ran to its end: the result, the defaults it took (``defaults``, see
    :func:`defaults_taken`), skipped images, and a sentence per metric that cannot rank the models."""
    chart, files = _write_results(board, results_dir)
    where = _sample_description(board)
    if board.best_model is None:
        status = f"No model could be scored on {where}: the notes column says why."
    else:
        status = f"Ranked {len(board.table)} models on {where} in {seconds:.0f} s by " \
                 f"{board.primary_metric}; predicted best: {short_name(board.best_model)}."
    # Ties and missing scores (a saturated H-score, SFDA or PED; NLEEP at 2 samples per class) are not a ranking.
    skipped = board.provenance.get("skipped_images") or []
    if skipped:
        status += f" Skipped {len(skipped)} unreadable image(s): {listed(skipped, limit=3, separator='; ')}."
    status = "\n\n".join([status, *_defaults_paragraph(defaults),
                           *(ranking_warning(warning, board.primary_metric) for warning in board.warnings)])
    return RankingUpdate(status, board, final=True, chart=chart, files=files)


def _stopped_update(scored: tuple[int, int, Leaderboard] | None, results_dir: Path, seconds: float,
                    defaults: str = "") -> RankingUpdate:
    """The final update of a stopped ranking: the models scored by then, with their chart and files."""
    if scored is None:
        return RankingUpdate("Stopped before any model was scored; press Rank models to start again.", None,
                             final=True)
    done, total, board = scored
    chart, files = _write_results(board, results_dir)
    best = "no model has a score yet" if board.best_model is None else \
        f"best so far by {board.primary_metric}: {short_name(board.best_model)}"
    status = (f"Stopped after {done} of {total} models on {_sample_description(board)}, in {seconds:.0f} s; "
              f"{best}. The table, the chart and the files hold these {done}.")
    return RankingUpdate("\n\n".join([status, *_defaults_paragraph(defaults)]), board, final=True, chart=chart,
                         files=files)


def _defaults_paragraph(defaults: str) -> list[str]:
    """The status's paragraph naming the defaults taken (none when the visitor chose every setting)."""
    return [f"Defaults: {defaults}."] if defaults else []


def _write_results(board: Leaderboard, results_dir: Path) -> tuple[Path, tuple[Path, ...]]:
    """Write the chart and :data:`RESULT_FILES` (the per-class file only when there are per-class rows)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    table_csv, table_parquet, per_class_parquet = (results_dir / name for name in RESULT_FILES)
    chart = results_dir / "leaderboard.png"
    provenance = board.provenance
    save_chart(board.table, board.primary_metric, display_names(board.table["model_id"]),
               f"{provenance.get('dataset', '')} [{provenance.get('split', '')}]", chart, width=CHART_WIDTH_INCHES)
    board.to_csv(table_csv)
    board.to_parquet(table_parquet)
    files = [table_csv, table_parquet]
    if board.per_class is not None and not board.per_class.empty:
        board.per_class.to_parquet(per_class_parquet, index=False)
        files.append(per_class_parquet)
    return chart, tuple(files)


def _sample_description(board: Leaderboard) -> str:
    provenance = board.provenance
    return f"{provenance['dataset']} [{provenance['split']}], {provenance['samples']} images in " \
           f"{provenance['num_classes']} classes"


def _readable_size(size: int) -> str:
    return f"{size / 1024**2:.1f} MB" if size >= 1024**2 else f"{size:,} bytes"


def _file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
