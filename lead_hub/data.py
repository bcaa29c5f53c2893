"""Datasets of labelled images: resolve a source, find its image and label columns, sample, decode images to RGB.

One entry point, :func:`load_images`, accepts a Hugging Face Hub dataset id, a parquet file or folder, a folder
of class sub-folders, or a zip of class folders, and returns the sampled rows as :class:`LabeledImages` with
labels 0..K-1 and the provenance a ranking must record. This module is the only one that imports ``datasets``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import logging
import os
import re
import shutil
import tempfile
import unicodedata
import weakref
from collections.abc import Iterable, Iterator
from functools import cached_property
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError
from datasets.utils.file_utils import xopen
from PIL import Image

from lead_hub import network
from lead_hub.archive import IMAGE_EXTENSIONS, ArchiveLimits, extract_image_archive, is_os_metadata
from lead_hub.decoding import DEFAULT_DECODE_LIMITS, DecodeLimits, ImageDecodeError, decode_image, error_line
from lead_hub.image_locations import HUB_DATASET_URL, ImageLocations, ImageRefused, hub_repository
from lead_hub.messages import listed
from lead_hub.sampling import stratified_indices

logger = logging.getLogger(__name__)

STREAM_BUFFER_SIZE = 1000
"""Default rows a stream holds back before it commits to one (see :func:`load_images`, streaming)."""

LABEL_COLUMN_NAMES = ("label", "labels")
"""Column names taken as the label column when no column is typed ``ClassLabel``."""

_HUB_DATASET_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_PARQUET_SHARD = re.compile(r"(?P<split>.+?)(-\d{5}-of-\d{5})?")
DATASET_OBJECTS = (datasets.Dataset, datasets.IterableDataset, datasets.DatasetDict, datasets.IterableDatasetDict)
"""The ``datasets`` objects :func:`load_images` takes as they are."""
_INTEGER_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_STRING_DTYPES = {"string", "large_string"}
_CHECK_SIDE = 16
"""The check decode of a sampled image shrinks towards this side: cheap, and it still reads every byte."""
_CHECK_BATCH = 256
_LARGEST_MODEL_SIDE = 1024
"""The check applies the pixel budget as if resized to this side, so no model input up to it can exceed it later."""


class DataSourceError(ValueError):
    """A dataset source cannot be used as it is: the message names the source, the problem and the fix."""


@dataclass
class LabeledImages:
    """Sampled rows of an image-classification split, with their labels and where they came from.

    ``labels`` are integers 0..K-1 aligned with ``dataset`` rows and ``class_names[k]`` names label k; use them,
    not ``dataset[label_column]`` (which keeps the source's raw values, e.g. strings). ``row_indices[i]`` is the
    position of row i in the source split (for an image folder: in its listing sorted by class, then path).
    ``revision`` is the resolved commit sha of a Hub dataset; ``rows_read`` is how many rows of the source were
    read, fewer than the split holds when a stream stopped early. ``skipped`` lists the sampled images left out
    because they do not decode, as ``(name, reason)`` pairs. ``workspace`` keeps alive the temporary folder a zip
    was extracted into (deleted once no LabeledImages refers to it).
    """

    dataset: datasets.Dataset
    image_column: str
    label_column: str
    class_names: list[str]
    labels: np.ndarray
    source: str
    split: str
    config: str | None = None
    revision: str | None = None
    seed: int | None = None
    samples_per_class: int | None = None
    max_samples: int | None = None
    row_indices: np.ndarray | None = None
    streamed: bool = False
    rows_read: int | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    workspace: "_TemporaryFolder | None" = None

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int, *, min_side: int | None = None,
              limits: DecodeLimits = DEFAULT_DECODE_LIMITS) -> Image.Image:
        """The RGB image of row ``index``, decoded within ``limits`` and shrunk towards ``min_side``
        (:func:`lead_hub.decoding.decode_image`); :class:`~lead_hub.decoding.ImageDecodeError` names the row."""
        return self.decoded([index], min_side=min_side, limits=limits)[0]

    def decoded(self, indices, *, min_side: int | None = None,
                limits: DecodeLimits = DEFAULT_DECODE_LIMITS) -> list[Image.Image]:
        """The RGB images of rows ``indices``, read in one batched access, decoded one at a time."""
        cells = self.encoded[[int(index) for index in indices]][self.image_column]
        pictures = []
        for index, cell in zip(indices, cells):
            try:
                pictures.append(decode_image(cell, min_side=min_side, limits=limits))
            except ImageDecodeError as error:
                raise ImageDecodeError(f"{self.image_name(int(index))} of {self.source}: {error}") from error
        return pictures

    def image_name(self, index: int) -> str:
        """How messages name row ``index``: its file (relative to the source folder or zip) or its source row."""
        cell = self.encoded[int(index)][self.image_column] or {}
        path = cell.get("path")
        root = (self.workspace.path if self.workspace is not None else Path(self.source)).absolute()
        if path and Path(path).absolute().is_relative_to(root):
            return Path(path).absolute().relative_to(root).as_posix()
        row = int(self.row_indices[index]) if self.row_indices is not None else int(index)
        return f"row {row}" + (f" ({Path(path).name})" if path else "")

    def select(self, indices: np.ndarray) -> "LabeledImages":
        """The rows ``indices``, in that order."""
        indices = np.asarray(indices, dtype=int)
        return dataclasses.replace(
            self,
            dataset=self.dataset.select(indices.tolist()),
            labels=self.labels[indices],
            row_indices=None if self.row_indices is None else self.row_indices[indices],
        )

    def provenance(self) -> dict:
        """What identifies this sample, as JSON-ready scalars (for cache keys and leaderboards)."""
        return {
            "source": self.source, "config": self.config, "split": self.split, "revision": self.revision,
            "seed": self.seed, "samples_per_class": self.samples_per_class, "max_samples": self.max_samples,
            "num_samples": len(self), "num_classes": len(self.class_names), "streamed": self.streamed,
            "rows_read": self.rows_read, "skipped_images": len(self.skipped),
        }

    @cached_property
    def encoded(self) -> datasets.Dataset:
        """The dataset with its image column left encoded (``{"bytes", "path"}``), for bounded decoding with
        :func:`lead_hub.decoding.decode_image` (what :meth:`image` and :meth:`decoded` do)."""
        return self.dataset.cast_column(self.image_column, datasets.Image(decode=False))


class _TemporaryFolder:
    """A temporary folder removed when the last object referring to it is garbage-collected (or at exit), and
    only by the process that made it: DataLoader worker processes forked from it never remove it."""

    def __init__(self, prefix: str):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._finalizer = weakref.finalize(self, _remove_folder_of, self.path, os.getpid())

    def __reduce__(self):
        return _BorrowedFolder, (self.path,)


class _BorrowedFolder:
    """What a worker process that received a :class:`_TemporaryFolder` by pickling holds: the path, no removal."""

    def __init__(self, path: Path):
        self.path = path


def _remove_folder_of(path: Path, owner_pid: int) -> None:
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class _Request:
    """The arguments of one load_images call, passed down as one value."""

    source: str
    split: str
    config: str | None
    revision: str | None
    image_column: str | None
    label_column: str | None
    samples_per_class: int | None
    max_samples: int | None
    seed: int
    drop_empty_classes: bool = False


@network.one_run()  # a Hub that cannot be reached is given up at its first failure (lead_hub.network)
def load_images(
    source: str | Path | datasets.Dataset | datasets.IterableDataset,
    *,
    split: str = "train",
    config: str | None = None,
    revision: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    samples_per_class: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    streaming: bool | None = None,
    extract_dir: str | Path | None = None,
    archive_limits: ArchiveLimits | None = None,
    stream_buffer_size: int = STREAM_BUFFER_SIZE,
    strict: bool = False,
    decode_limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
    allow_remote_image_urls: bool = False,
    drop_empty_classes: bool = False,
    progress: bool = True,
) -> LabeledImages:
    """Load ``split`` of ``source`` and keep a seeded, class-stratified sample of its rows.

    ``source`` is one of:

    * a Hub dataset id (``"owner/name"``), with ``config``, ``split`` and ``revision`` as in
      ``datasets.load_dataset``; streamed by default (``streaming=None``), loaded whole with ``streaming=False``;
    * a ``.parquet`` file (the whole file is the split, recorded under ``split``), or a folder holding
      ``<split>.parquet`` or shards ``<split>-00000-of-00003.parquet`` (also under ``data/``);
    * a folder of class sub-folders ``<root>/<class>/<image>``; a root whose only entry is one folder is
      descended (zips often wrap), and a root of split folders ``<root>/<split>/<class>/<image>`` picks ``split``;
    * a ``.zip`` of such folders, extracted safely (:mod:`lead_hub.archive`, ``archive_limits``) into
      ``extract_dir``, or into a temporary folder that lives as long as the returned LabeledImages (images stay
      files, decoded on access);
    * a ``datasets.Dataset`` or ``IterableDataset`` already in hand (e.g. in a notebook), or a ``DatasetDict`` /
      ``IterableDatasetDict`` whose ``split`` is taken; named by :func:`dataset_object_name`.

    Columns: the image column is the one typed ``datasets.Image`` and the label column the one typed
    ``ClassLabel``, else the one named ``label``/``labels``; ``image_column``/``label_column`` override by name.
    Labels become 0..K-1: ClassLabel ids as they are, strings by their position in the sorted names, integers
    without ClassLabel by their position in the sorted values (named ``str(value)``). Folder labels are the
    sorted folder names.

    Sampling: ``samples_per_class`` takes ``min(n_k, samples_per_class)`` rows of class k; ``max_samples`` takes
    about ``max_samples * n_k / N`` (``lead_hub.sampling.stratified_indices``, seeded by ``seed``, on the whole
    split). With neither, every row is kept. Every class must keep at least two usable rows; with
    ``drop_empty_classes`` the classes that do not are dropped (with a warning) and the others renumbered.

    A stream cannot count its classes before reading them, so there ``max_samples`` means equal quotas of
    ``max_samples // K`` per class of the ClassLabel feature, and reading stops as soon as every quota is full.
    Rows are taken in priority order inside a sliding window of ``stream_buffer_size`` rows (held encoded in
    memory), the priority of row i being a hash of ``(seed, i)``: deterministic for a seed and a revision, but
    biased towards the start of the split (every chosen row lies within the rows needed to fill the quotas plus
    the window; a larger window mixes more and reads more). For a uniform draw over the whole split pass
    ``streaming=False``. Without a ClassLabel feature the stream is read to its end.

    Every sampled image is decoded once, within ``decode_limits`` (:mod:`lead_hub.decoding`), before anything
    else uses the sample: an image that does not decode, or exceeds the pixel budget, is left out with a warning
    naming it (``LabeledImages.skipped``, counted in the provenance), or with ``strict=True`` stops the load with
    a DataSourceError naming every bad image.

    An image cell holding a path and no bytes is read only from the dataset itself
    (:mod:`lead_hub.image_locations`): a file inside the image folder, the extracted zip, the parquet file's folder
    (a relative path is read from there) or the Hub dataset's repository; a dataset object's paths may be any
    regular local file. A path outside, a device, a FIFO, a missing file, or a URL (unless
    ``allow_remote_image_urls``) is refused for that row, which is skipped like an undecodable image; all the path
    images of a dataset are read within the byte budget of a zip's members. A row with no image at all (a null
    cell) is skipped the same way. ``progress=False`` silences datasets' progress bars ("Generating train split").
    """
    if samples_per_class is not None and max_samples is not None:
        raise DataSourceError("give samples_per_class or max_samples, not both")
    request = _Request(str(source), split, config, revision, image_column, label_column, samples_per_class,
                       max_samples, seed, drop_empty_classes)
    if isinstance(source, DATASET_OBJECTS):
        # The caller's own object: its paths may be any regular local file (a notebook's load_dataset cache) or
        # any Hub dataset's file (a stream of a Hub image folder).
        locations = ImageLocations(folder=Path(Path.cwd().anchor), repository=HUB_DATASET_URL,
                                   allow_remote_urls=allow_remote_image_urls, open_url=_open_url)
        return _checked_images(_sample_object(source, request, stream_buffer_size), request, strict,
                               decode_limits, locations, read_paths=True)
    kind = _source_kind(source)
    if kind != "hub" and (config is not None or revision is not None):
        raise DataSourceError(f"config and revision apply to Hub dataset ids, but {source!r} is a local {kind}; "
                              "leave them unset")
    if kind != "zip" and (extract_dir is not None or archive_limits is not None):
        raise DataSourceError(f"extract_dir and archive_limits apply to .zip sources, but {source!r} is a {kind}; "
                              "leave them unset")
    if streaming is None:
        streaming = kind == "hub"
    if streaming and kind not in ("hub", "parquet"):
        raise DataSourceError(f"streaming applies to Hub datasets and parquet, not to the {kind} {source!r}; "
                              "leave streaming unset")
    if kind == "zip":
        images = _load_zip(Path(source), request, extract_dir, archive_limits)
        locations = ImageLocations(folder=images.workspace.path if extract_dir is None else Path(extract_dir))
    elif kind == "folder":
        images = _load_image_folder(Path(source), request)
        locations = ImageLocations(folder=_dataset_folder(Path(source)))
    else:
        if kind == "parquet":
            path, data_files = "parquet", {split: _parquet_files(Path(source), split)}
        else:
            path, data_files = str(source), None
        with _read_errors_named(request, data_files), _progress_bars(progress):
            if data_files is not None and not any(pq.ParquetFile(file).metadata.num_rows for file in data_files[split]):
                raise DataSourceError(f"split {split!r} of {request.source!r} has no rows; pass a dataset (or split=) "
                                      "with labelled images")
            dataset, resolved_revision = _open_split(path, data_files, request, streaming, hub=kind == "hub")
            if streaming:
                images = _sample_stream(dataset, request, resolved_revision, stream_buffer_size)
            else:
                images = _sample_dataset(dataset, request, resolved_revision)
        if kind == "parquet":
            folder = Path(source) if Path(source).is_dir() else Path(source).parent
            locations = ImageLocations(folder=_dataset_folder(folder), allow_remote_urls=allow_remote_image_urls)
        else:
            locations = ImageLocations(folder=None if streaming else _hub_cache_folder(str(source)),
                                       repository=hub_repository(str(source), resolved_revision),
                                       allow_remote_urls=allow_remote_image_urls, open_url=_open_url)
    return _checked_images(images, request, strict, decode_limits, locations,
                           read_paths=kind not in ("zip", "folder"))


def load_parquet_split(source: str | Path, split: str) -> LabeledImages:
    """Every row of ``split`` from a parquet file, or from ``<folder>/<split>.parquet``."""
    return load_images(source, split=split, streaming=False)


def dataset_object_name(dataset: datasets.Dataset | datasets.IterableDataset) -> str:
    """How provenance and messages name a dataset object: ``<builder name>:<fingerprint[:12]>`` (``in-memory``
    when it was not built from a named dataset; no fingerprint for a stream)."""
    name = dataset.info.dataset_name or dataset.info.builder_name or "in-memory"
    fingerprint = getattr(dataset, "_fingerprint", None)
    return f"{name}:{fingerprint[:12]}" if fingerprint else name


def _sample_object(source, request: _Request, buffer_size: int) -> LabeledImages:
    """Sample a dataset object: a Dataset whole, an IterableDataset as a stream, a dict of them by split."""
    if isinstance(source, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if request.split not in source:
            raise DataSourceError(f"the dataset dict has no split {request.split!r}; available splits: "
                                  f"{sorted(source)}; pass one of them as split=")
        source = source[request.split]
    if request.config is not None or request.revision is not None:
        raise DataSourceError("config and revision apply to Hub dataset ids, not to a dataset object; leave them "
                              "unset")
    request = dataclasses.replace(request, source=dataset_object_name(source))
    if isinstance(source, datasets.IterableDataset):
        return _sample_stream(source, request, None, buffer_size)
    return _sample_dataset(source, request, None)


def _source_kind(source: str | Path) -> str:
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() in (".parquet", ".zip"):
            return path.suffix.lower()[1:]
        raise DataSourceError(f"{source!r} is neither a .parquet nor a .zip file; pass one of those, a folder of "
                              "class folders, or a Hub dataset id")
    if path.is_dir():
        return "parquet" if _parquet_shards(path) else "folder"
    if isinstance(source, str) and _HUB_DATASET_ID.fullmatch(source) and not _looks_local(path):
        return "hub"
    raise DataSourceError(f"no such file or folder: {source!r} (in {Path.cwd()}), and it is not a Hub dataset id "
                          "('owner/name'); check the path")


def _looks_local(path: Path) -> bool:
    """Whether a missing source is meant as a local path though it is shaped like a Hub id: a file name
    (``photos.zip``, ``train.parquet``), or a path whose first folder exists here (``mydata/photos``)."""
    return (path.suffix.lower() in {".zip", ".parquet", *IMAGE_EXTENSIONS}
            or (len(path.parts) > 1 and Path(path.parts[0]).is_dir()))


def _parquet_shards(folder: Path) -> dict[str, list[Path]]:
    """Parquet files of ``folder`` (or of ``folder/data``) grouped by the split their name starts with."""
    files = sorted(folder.glob("*.parquet")) or sorted((folder / "data").glob("*.parquet"))
    shards: dict[str, list[Path]] = {}
    for file in files:
        shards.setdefault(_PARQUET_SHARD.fullmatch(file.stem)["split"], []).append(file)
    return shards


def _parquet_files(path: Path, split: str) -> list[str]:
    if path.is_file():
        return [str(path)]
    shards = _parquet_shards(path)
    if split not in shards:
        raise DataSourceError(f"{str(path)!r} has no parquet file for split {split!r}; available splits: "
                              f"{sorted(shards)}; pass one of them as split=")
    return [str(file) for file in shards[split]]


def _load_zip(archive: Path, request: _Request, extract_dir: str | Path | None,
              limits: ArchiveLimits | None) -> LabeledImages:
    if extract_dir is not None:
        extract_image_archive(archive, extract_dir, limits)
        return _load_image_folder(Path(extract_dir), request)
    workspace = _TemporaryFolder(prefix="lead_hub_zip_")
    extract_image_archive(archive, workspace.path, limits)
    return dataclasses.replace(_load_image_folder(workspace.path, request), workspace=workspace)


def _load_image_folder(root: Path, request: _Request) -> LabeledImages:
    """Sample a folder of class folders; the dataset refers to the chosen files by path, decoded on access."""
    root = root.absolute()  # ImageLocations reads a relative path from the dataset folder, not from here
    files, labels, class_names = _class_files(_class_root(root, request), request.source)
    indices = stratified_indices(labels, samples_per_class=request.samples_per_class,
                                 max_samples=request.max_samples, seed=request.seed)
    dataset = datasets.Dataset.from_dict(
        {"image": [str(files[index]) for index in indices], "label": labels[indices].tolist()},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=class_names)}),
    )
    return _labeled(dataset, "image", "label", class_names, labels[indices], indices, request,
                    rows_read=len(files))


def _checked_images(images: LabeledImages, request: _Request, strict: bool, limits: DecodeLimits,
                    locations: ImageLocations, *, read_paths: bool) -> LabeledImages:
    """``images`` without the rows whose image is refused by ``locations``, missing, or does not decode within
    ``limits`` (see load_images). With ``read_paths`` (a parquet or Hub dataset, whose paths its author chose), path
    images are read into the rows here, once; an image folder's files stay files, checked but not read."""
    images, bad = _with_image_bytes(images, locations) if read_paths else (images, {})
    for start in range(0, len(images), _CHECK_BATCH):
        cells = images.encoded[start:start + _CHECK_BATCH][images.image_column]
        for index, cell in enumerate(cells, start):
            if index in bad:
                continue
            try:
                if cell is None or (cell.get("bytes") is None and not cell.get("path")):
                    raise ImageRefused("has no image (an empty cell)")
                if cell.get("bytes") is None:
                    locations.local_file(cell["path"])
                decode_image(cell, min_side=_CHECK_SIDE, limits=limits, budget_side=_LARGEST_MODEL_SIDE)
            except ImageDecodeError as error:
                bad[index] = (images.image_name(index), str(error))
    if not bad:
        return images
    named = listed((f"{name} {reason}" for name, reason in bad.values()), separator="; ")
    if strict:
        raise DataSourceError(f"{request.source!r}: {len(bad)} of {len(images)} sampled images are unusable "
                              f"({named}); fix or remove them, or leave strict off to skip them")
    logger.warning("%s: skipping %d of %d sampled images that are unusable: %s", request.source, len(bad),
                   len(images), named)
    kept = images.select(np.array([index for index in range(len(images)) if index not in bad], dtype=int))
    unusable = np.bincount(images.labels[list(bad)], minlength=len(images.class_names))
    return dataclasses.replace(_with_enough_per_class(kept, request, unusable), skipped=tuple(bad.values()))


def _with_image_bytes(images: LabeledImages,
                      locations: ImageLocations) -> tuple[LabeledImages, dict[int, tuple[str, str]]]:
    """``images`` with every image stored as a path (and no bytes) read into its row through ``locations``, and
    the rows whose path was refused, by index, as ``(name, reason)`` (their image cell made null)."""
    rows = images.encoded.with_format("arrow")
    paths_only = []
    for start in range(0, len(images), _CHECK_BATCH):
        column = rows[start:start + _CHECK_BATCH].column(images.image_column)
        mask = pc.and_(pc.is_null(pc.struct_field(column, "bytes")), pc.is_valid(pc.struct_field(column, "path")))
        paths_only += (start + np.flatnonzero(mask.to_numpy(zero_copy_only=False))).tolist()
    if not paths_only:
        return images, {}
    cells, refused = list(images.encoded[images.image_column]), {}
    for index in paths_only:
        path = cells[index]["path"]
        try:
            cells[index] = {"bytes": locations.read(path), "path": path}
        except ImageRefused as refusal:
            cells[index] = None
            refused[index] = (images.image_name(index).split(" (")[0], str(refusal))
    label_feature = images.dataset.features[images.label_column]
    dataset = datasets.Dataset.from_dict(
        {images.image_column: cells, images.label_column: list(images.dataset[images.label_column])},
        features=datasets.Features({images.image_column: datasets.Image(), images.label_column: label_feature}))
    return dataclasses.replace(images, dataset=dataset), refused


def _open_url(url: str):
    """A binary file of a Hub (or chained) URL, opened by datasets with the user's token."""
    return xopen(url, "rb")


def _dataset_folder(folder: Path) -> Path:
    """The folder whose files a local dataset may use: ``folder``, or, inside a Hugging Face cache snapshot
    (``<cache>/datasets--owner--name/snapshots/<sha>/...``, whose files link to ``../../blobs``), the repository's
    whole cache folder."""
    folder = folder.absolute()
    for parent in (folder, *folder.parents):
        if parent.parent.name == "snapshots" and parent.parent.parent.name.startswith("datasets--"):
            return parent.parent.parent
    return folder


def _hub_cache_folder(dataset_id: str) -> Path:
    """The Hugging Face cache folder of a Hub dataset (where a non-streamed image-folder dataset's files land)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("datasets--" + dataset_id.replace("/", "--"))


def _printable(text: str) -> str:
    """``text`` with control characters (a corrupt file's bytes quoted by pyarrow) shown as ``?``."""
    return "".join(character if character.isprintable() else "?" for character in text)


@contextlib.contextmanager
def _progress_bars(shown: bool) -> Iterator[None]:
    """datasets' progress bars on (as they were) or off for the block, restored after it."""
    was_enabled = datasets.is_progress_bar_enabled()
    if not shown:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not shown and was_enabled:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _read_errors_named(request: _Request, data_files: dict | None) -> Iterator[None]:
    """Turn a split that cannot be read (no rows, a corrupt parquet file) into one DataSourceError naming it."""
    try:
        yield
    except (DataSourceError, ConnectionError):  # already named; a Hub outage is reported as such by the caller
        raise
    except (DatasetGenerationError, OSError, ValueError, pa.ArrowException) as error:
        files = listed(Path(file).name for file in (data_files or {}).get(request.split, []))
        named = f" ({files})" if files and files != Path(request.source).name else ""
        cause = _printable(error_line(error)[:300])
        raise DataSourceError(f"cannot read split {request.split!r} of {request.source!r}{named}: "
                              f"{type(error).__name__}: {cause}; check that the file is a complete, uncorrupted "
                              "parquet file with rows, or re-export it") from error


def _visible_entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(sub-folders, files) of ``folder``, sorted, without hidden entries and OS metadata."""
    entries = sorted(entry for entry in folder.iterdir()
                     if not entry.name.startswith(".") and not is_os_metadata(entry.name))
    return [entry for entry in entries if entry.is_dir()], [entry for entry in entries if not entry.is_dir()]


def _class_root(root: Path, request: _Request) -> Path:
    """The folder whose sub-folders are the classes: wrapper folders are descended, split folders chosen."""
    folders, files = _visible_entries(root)
    while len(folders) == 1 and not files and _visible_entries(folders[0])[0]:
        root = folders[0]
        folders, files = _visible_entries(root)
    if not folders:
        raise DataSourceError(f"{request.source!r} holds no class folders; lay images out as <root>/<class>/<image>")
    layouts = [_visible_entries(folder) for folder in folders]
    if all(subfolders and not subfiles for subfolders, subfiles in layouts):
        names = [folder.name for folder in folders]
        if request.split not in names:
            raise DataSourceError(f"{request.source!r} has split folders {names} but none named {request.split!r}; "
                                  "pass one of them as split=")
        return root / request.split
    return root


def _class_files(root: Path, source: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image files of every class folder (sorted by class, then path), their labels and the sorted class names."""
    folders, files = _visible_entries(root)
    stray = [file.name for file in files if file.suffix.lower() in IMAGE_EXTENSIONS]
    if stray:
        raise DataSourceError(f"{source!r}: images outside any class folder in {root} (e.g. {stray[:3]}); move them "
                              "into <class>/ folders")
    images, labels = [], []
    for label, folder in enumerate(folders):
        subfolders, class_files = _visible_entries(folder)
        if subfolders:
            raise DataSourceError(f"{source!r}: class folder {folder.name!r} holds folders ({subfolders[0].name!r}, "
                                  "...); expected <class>/<image> with images directly inside each class folder")
        others = [file.name for file in class_files if file.suffix.lower() not in IMAGE_EXTENSIONS]
        if others:
            raise DataSourceError(f"{source!r}: {folder.name}/{others[0]} is not an image; accepted: "
                                  f"{', '.join(sorted(IMAGE_EXTENSIONS))}; move other files out of class folders")
        images += class_files
        labels += [label] * len(class_files)
    return images, np.asarray(labels, dtype=np.int64), _class_names(folders, source)


def _class_names(folders: list[Path], source: str) -> list[str]:
    """The folders' names in Unicode NFC (macOS writes NFD): two folders whose names differ only in that
    normalisation would print alike as two classes, so they are refused; two that differ only in case (``Cat``,
    ``cat``) stay two classes, with a warning."""
    names = [unicodedata.normalize("NFC", folder.name) for folder in folders]
    for name in set(names):
        spellings = [folder.name for folder, normal in zip(folders, names) if normal == name]
        if len(spellings) > 1:
            raise DataSourceError(f"{source!r}: class folders {spellings} are the same name {name!r} in different "
                                  "Unicode normalisations (NFC/NFD); merge them into one folder")
    by_case: dict[str, list[str]] = {}
    for name in names:
        by_case.setdefault(name.casefold(), []).append(name)
    alike = [spellings for spellings in by_case.values() if len(spellings) > 1]
    if alike:  # Cat/ and cat/ are two classes here, one on a case-insensitive file system (macOS, Windows)
        logger.warning("%s: class folders that differ only in case are ranked as separate classes: %s; merge them "
                       "if they are one class", source, listed(" and ".join(spellings) for spellings in alike))
    return names


def _open_split(path: str, data_files: dict | None, request: _Request, streaming: bool, hub: bool):
    """The split as a Dataset (or an IterableDataset when streaming) and, for a Hub id, its commit sha.

    This is ``datasets.load_dataset`` taken apart (the same builder calls) to keep the builder's commit hash.
    """
    try:
        builder = datasets.load_dataset_builder(path, request.config, data_files=data_files,
                                                revision=request.revision)
    except (DatasetNotFoundError, ConnectionError, FileNotFoundError, ValueError) as error:
        not_local = f"there is no local file or folder {request.source!r} (in {Path.cwd()}), and " if hub else ""
        found = network.outage() if hub else None
        if found is not None:  # a runtime failure, not a bad argument: a ConnectionError
            raise network.HubUnreachableError(
                f"cannot open dataset {request.source!r}: {not_local}{found.describe()}. Check the path, or the "
                "network (and HF_ENDPOINT); with HF_HUB_OFFLINE=1 Hub datasets come from the local cache only"
            ) from error
        raise DataSourceError(f"cannot open dataset {request.source!r} (config={request.config!r}, "
                              f"revision={request.revision!r}): {not_local}{error}. Check the path, or the id, "
                              "config and revision, the network and HF_TOKEN for a private or gated dataset") from error
    available = list(builder.info.splits or builder.config.data_files or [])
    if available and request.split not in available:
        raise DataSourceError(f"{request.source!r} has no split {request.split!r}; available splits: {available}; "
                              "pass one of them as split=")
    if streaming:
        dataset = builder.as_streaming_dataset(split=request.split)
    else:
        builder.download_and_prepare()
        split_info = (builder.info.splits or {}).get(request.split)
        if split_info is not None and split_info.num_examples == 0:
            raise DataSourceError(f"split {request.split!r} of {request.source!r} has no rows; pass a dataset (or "
                                  "split=) with labelled images")
        dataset = builder.as_dataset(split=request.split)
    return dataset, builder.hash if hub else None


def _sample_dataset(dataset: datasets.Dataset, request: _Request, revision: str | None) -> LabeledImages:
    image_column, label_column = _resolve_columns(dataset.features, request)
    dataset = _as_image_column(dataset, image_column, request.source)
    labels, class_names = _encode_labels(dataset[label_column], dataset.features[label_column], request)
    indices = stratified_indices(labels, samples_per_class=request.samples_per_class,
                                 max_samples=request.max_samples, seed=request.seed)
    return _labeled(dataset.select(indices.tolist()), image_column, label_column, class_names, labels[indices],
                    indices, request, revision=revision, rows_read=len(dataset))


def _sample_stream(stream: datasets.IterableDataset, request: _Request, revision: str | None,
                   buffer_size: int) -> LabeledImages:
    """Seeded per-class quotas over a stream, stopping once every quota is full (see load_images)."""
    if stream.features is None:
        raise DataSourceError(f"the stream of {request.source!r} does not declare its features, so its image and "
                              "label columns are unknown; pass streaming=False")
    image_column, label_column = _resolve_columns(stream.features, request)
    label_feature = stream.features[label_column]
    stream = _as_image_column(stream, image_column, request.source)
    # Images stay encoded while buffered: only the chosen rows are ever decoded.
    stream = stream.select_columns([image_column, label_column]).cast_column(image_column,
                                                                              datasets.Image(decode=False))
    quota, num_classes = _stream_quota(label_feature, request)
    window: list[tuple[int, int, dict, object]] = []
    taken: dict[object, list[tuple[int, dict, object]]] = {}
    rows_read = 0

    def take(entry: tuple[int, int, dict, object]) -> None:
        _, index, image, label = entry
        chosen = taken.setdefault(label, [])
        if len(chosen) < quota:
            chosen.append((index, image, label))

    def quotas_full() -> bool:
        return num_classes is not None and len(taken) == num_classes and all(
            len(chosen) >= quota for chosen in taken.values())

    for index, row in enumerate(stream):
        rows_read = index + 1
        label = row[label_column]
        _check_stream_label(label, label_feature, index, request.source)
        if len(taken.get(label, ())) >= quota:
            continue
        heapq.heappush(window, (_row_priority(request.seed, index), index, row[image_column], label))
        if len(window) > buffer_size:
            take(heapq.heappop(window))
            if quotas_full():
                break
    while window and not quotas_full():
        take(heapq.heappop(window))
    rows = sorted(row for chosen in taken.values() for row in chosen)
    indices = np.array([index for index, _, _ in rows], dtype=np.int64)
    raw_labels = [label for _, _, label in rows]
    labels, class_names = _encode_labels(raw_labels, label_feature, request)
    dataset = datasets.Dataset.from_dict(
        {image_column: [image for _, image, _ in rows], label_column: raw_labels},
        features=datasets.Features({image_column: datasets.Image(), label_column: label_feature}),
    )
    return _labeled(dataset, image_column, label_column, class_names, labels, indices, request,
                    revision=revision, streamed=True, rows_read=rows_read)


def _stream_quota(label_feature, request: _Request) -> tuple[float, int | None]:
    """Rows to take per class, and the number of classes when the features declare it (else None)."""
    num_classes = label_feature.num_classes if isinstance(label_feature, datasets.ClassLabel) else None
    if request.max_samples is not None:
        if num_classes is None:
            raise DataSourceError(f"max_samples on a stream needs a ClassLabel label column to split it into equal "
                                  f"per-class quotas, and {request.source!r} has none; pass samples_per_class "
                                  "or streaming=False")
        quota = request.max_samples // num_classes
        if quota < 2:
            raise DataSourceError(f"max_samples={request.max_samples} gives {quota} rows to each of the "
                                  f"{num_classes} classes of {request.source!r}; pass at least {2 * num_classes}")
        return quota, num_classes
    if request.samples_per_class is not None:
        if request.samples_per_class < 1:
            raise DataSourceError(f"samples_per_class must be >= 1, got {request.samples_per_class}")
        return request.samples_per_class, num_classes
    return float("inf"), num_classes


def _check_stream_label(label, label_feature, index: int, source: str) -> None:
    if label is None or (isinstance(label_feature, datasets.ClassLabel) and label < 0):
        raise DataSourceError(f"row {index} of {source!r} has no label ({label!r}); this split looks unlabelled, "
                              "pick a labelled split")


def _row_priority(seed: int, index: int) -> int:
    """A 64-bit hash of (seed, row index): the same row keeps its priority whatever was read before it."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _resolve_columns(features: datasets.Features, request: _Request) -> tuple[str, str]:
    columns = list(features)
    for role, name in (("image_column", request.image_column), ("label_column", request.label_column)):
        if name is not None and name not in features:
            raise DataSourceError(f"{request.source!r} has no column {name!r} ({role}); columns: {columns}")
    image_column = request.image_column or _only_column(
        [name for name, feature in features.items() if isinstance(feature, datasets.Image)],
        "image", "a datasets.Image column", columns, request.source)
    if request.label_column is not None:
        if not _is_label_feature(features[request.label_column]):
            raise DataSourceError(f"label_column {request.label_column!r} of {request.source!r} is "
                                  f"{features[request.label_column]}; labels must be ClassLabel, integers or strings")
        return image_column, request.label_column
    candidates = [name for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)]
    if not candidates:
        named = {name: feature for name, feature in features.items() if name.lower() in LABEL_COLUMN_NAMES}
        candidates = [name for name, feature in named.items() if _is_label_feature(feature)]
        if not candidates and named:
            name, feature = next(iter(named.items()))
            raise DataSourceError(f"{request.source!r}: column {name!r} is {feature}, not a label type (ClassLabel, "
                                  "integers or strings); cast it to integers or strings, or pass label_column= "
                                  "(--label-column) naming another column")
    typed = f"a ClassLabel column, or one named {'/'.join(LABEL_COLUMN_NAMES)}"
    return image_column, _only_column(candidates, "label", typed, columns, request.source)


def _only_column(candidates: list[str], role: str, typed: str, columns: list[str], source: str) -> str:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataSourceError(f"{source!r} has no {role} column ({typed}) among {columns}; "
                              f"pass {role}_column= naming it")
    raise DataSourceError(f"{source!r} has several {role} columns {candidates}; pass {role}_column= naming one")


def _is_label_feature(feature) -> bool:
    return isinstance(feature, datasets.ClassLabel) or (
        isinstance(feature, datasets.Value) and feature.dtype in _INTEGER_DTYPES | _STRING_DTYPES)


def _as_image_column(dataset, image_column: str, source: str):
    """Cast a column named by the caller (paths, bytes) to ``datasets.Image``; typed columns pass unchanged."""
    if isinstance(dataset.features[image_column], datasets.Image):
        return dataset
    try:
        return dataset.cast_column(image_column, datasets.Image())
    except (TypeError, ValueError) as error:
        raise DataSourceError(f"column {image_column!r} of {source!r} ({dataset.features[image_column]}) cannot be "
                              f"read as images ({error}); name a column of image bytes or paths") from error


def _encode_labels(values: Iterable, feature, request: _Request) -> tuple[np.ndarray, list[str]]:
    """Labels 0..K-1 and the class names (see load_images for the encoding of each label type)."""
    values = list(values)
    if any(value is None for value in values):
        raise DataSourceError(f"{request.source!r} split {request.split!r} has rows without a label; drop them or "
                              "pick a labelled split")
    if isinstance(feature, datasets.ClassLabel):
        labels = np.asarray(values, dtype=np.int64)
        if (labels < 0).any():
            raise DataSourceError(f"{request.source!r} split {request.split!r} has {(labels < 0).sum()} rows labelled "
                                  "-1 (no label); this split looks unlabelled, pick a labelled split")
        return labels, list(feature.names)
    unique = sorted(set(values))
    position = {value: k for k, value in enumerate(unique)}
    return np.asarray([position[value] for value in values], dtype=np.int64), [str(value) for value in unique]


def _labeled(dataset: datasets.Dataset, image_column: str, label_column: str, class_names: list[str],
             labels: np.ndarray, row_indices: np.ndarray, request: _Request, *, revision: str | None = None,
             rows_read: int, streamed: bool = False) -> LabeledImages:
    """The LabeledImages of a finished sample, once every class kept at least two rows (_with_enough_per_class)."""
    return _with_enough_per_class(LabeledImages(
        dataset=dataset, image_column=image_column, label_column=label_column, class_names=class_names,
        labels=labels, source=request.source, split=request.split, config=request.config, revision=revision,
        seed=request.seed, samples_per_class=request.samples_per_class, max_samples=request.max_samples,
        row_indices=np.asarray(row_indices, dtype=np.int64), streamed=streamed, rows_read=rows_read,
    ), request)


def _with_enough_per_class(images: LabeledImages, request: _Request,
                           unusable: np.ndarray | None = None) -> LabeledImages:
    """``images`` once every class has at least two rows and there are two classes or more, else DataSourceError.

    With ``request.drop_empty_classes`` the classes short of two rows are dropped instead (with a warning) and the
    labels of the others renumbered 0..K'-1. ``unusable[k]``: sampled images of class k skipped as unusable, which
    the error then names as the cause.
    """
    counts = np.bincount(images.labels, minlength=len(images.class_names))
    short = np.flatnonzero(counts < 2)
    if len(short) and request.drop_empty_classes:
        kept = np.flatnonzero(counts >= 2)
        logger.warning("%s: dropping %d of %d classes with fewer than 2 usable images: %s", request.source,
                       len(short), len(images.class_names), listed(images.class_names[k] for k in short))
        renumbered = np.full(len(images.class_names), -1, dtype=np.int64)
        renumbered[kept] = np.arange(len(kept))
        images = images.select(np.flatnonzero(counts[images.labels] >= 2))
        images = dataclasses.replace(images, labels=renumbered[images.labels],
                                     class_names=[images.class_names[k] for k in kept])
        counts, short = counts[kept], short[:0]
    if len(images.class_names) < 2:
        raise DataSourceError(f"{request.source!r} split {request.split!r} has {len(images.class_names)} class"
                              f"{' left' if request.drop_empty_classes else ''}; ranking needs at least 2 classes")
    if not len(short):
        return images
    if unusable is not None and unusable[short].any():
        described = listed(f"{images.class_names[k]} ({counts[k]} usable, {unusable[k]} unusable)" for k in short)
        raise DataSourceError(f"{request.source!r} split {request.split!r}: classes left with fewer than 2 usable "
                              f"images once the unusable ones were skipped: {described}; fix or replace those "
                              "images, or pass drop_empty_classes=True (--drop-empty-classes) to rank the other "
                              "classes")
    described = listed(f"{images.class_names[k]}: {counts[k]}" for k in short)
    raise DataSourceError(f"{request.source!r} split {request.split!r}: {len(short):,} classes with fewer than 2 "
                          f"samples after sampling ({described}); raise samples_per_class/max_samples, add images "
                          "of those classes, or pass drop_empty_classes=True (--drop-empty-classes) to rank the "
                          "other classes")
