"""Where the image of a dataset row may come from: the dataset itself, never the rest of the machine.

A dataset cell holds an image as bytes, or as a ``path`` with no bytes (an image folder, or a parquet file written
with paths). A path is chosen by whoever wrote the dataset, so on a server it is hostile: ``/dev/zero`` would be
read until memory runs out, ``/etc/passwd`` or another user's image would be read and echoed, a URL would make the
server fetch it. :class:`ImageLocations` says which paths of one dataset may be read, and reads them:

* a local file only inside the dataset's own folder (the image folder, the extracted zip, the parquet file's
  folder, or the Hub dataset's own cache folder), after resolving symbolic links; a relative path is read from that
  folder, never from the working directory; it must be a regular file (no device, FIFO or socket), and it is
  opened non-blocking and checked again once open, so a file swapped after the check is not read either;
* a remote file only inside the Hub dataset's own repository (``hf://datasets/<id>``; a relative path of a Hub
  dataset is read from there), or any ``http(s)`` URL when the user opted in (``allow_remote_urls``);
* every read is bounded: all the images a dataset reads through its paths share the byte budget of a zip's
  members (:attr:`lead_hub.archive.ArchiveLimits.max_total_bytes`).

A refused path raises :class:`ImageRefused`, a one-line :class:`~lead_hub.decoding.ImageDecodeError` that never
repeats the path: a missing file and a refused one get the same message, so nobody can learn from it which files
exist on the machine.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from lead_hub.archive import ArchiveLimits
from lead_hub.decoding import ImageDecodeError

IMAGE_BYTE_BUDGET = ArchiveLimits().max_total_bytes
"""Bytes all of one dataset's path images may read together: the budget of a zip's members."""
REMOTE_URL_SCHEMES = ("http://", "https://")
HUB_DATASET_URL = "hf://datasets/"
OUTSIDE = "image path refused: not a readable file inside the dataset"
"""The one message of every refused or missing local path (the same for both: see the module docstring)."""
_CHUNK_BYTES = 1 << 20


class ImageRefused(ImageDecodeError):
    """A row's image path points outside the dataset, at something that is not a regular file, at a URL the user
    did not allow, or past the byte budget. The message is one line and never holds the path."""


@dataclass
class ImageLocations:
    """The places one dataset's image paths may be read from (see the module docstring).

    ``folder``: the dataset's own local folder (None: no local file may be read). ``repository``: the Hub
    dataset's ``hf://datasets/<id>`` root, with ``@<revision>`` where known (relative paths are read from it).
    ``allow_remote_urls``: read ``http(s)`` URLs too. ``byte_budget``: bytes all reads may return together.
    ``repository`` set to ``hf://datasets/`` accepts any Hub dataset's files (a caller's own dataset object).
    ``open_url``: how a repository URL (``hf://``, or chained ``zip://...::hf://...``) is opened for reading
    (:mod:`lead_hub.data` passes ``datasets``' ``xopen``, which carries the user's token).

    Examples
    --------
    >>> locations = ImageLocations(folder=Path("/data/pets"))
    >>> try:
    ...     locations.read("../../etc/passwd")
    ... except ImageRefused as refusal:
    ...     print(str(refusal).split(";")[0])
    image path refused: not a readable file inside the dataset
    """

    folder: Path | None = None
    repository: str | None = None
    allow_remote_urls: bool = False
    byte_budget: int = IMAGE_BYTE_BUDGET
    open_url: Callable[[str], BinaryIO] | None = None
    _bytes_read: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def local_file(self, path: str) -> Path:
        """The regular file ``path`` names inside :attr:`folder` (a relative path is read from there), without
        opening it; raises :class:`ImageRefused` otherwise (a missing file included)."""
        if self.folder is None or _is_url(path):
            raise ImageRefused(OUTSIDE)
        root = self.folder.resolve()
        candidate = Path(path) if Path(path).is_absolute() else root / path
        try:
            real = candidate.resolve(strict=True)
            regular = stat.S_ISREG(real.stat().st_mode)
        except (OSError, RuntimeError):  # missing, a link loop, a name too long: all read as "not a file here"
            raise ImageRefused(OUTSIDE) from None
        if not regular or not real.is_relative_to(root):
            raise ImageRefused(OUTSIDE)
        return real

    def read(self, path: str) -> bytes:
        """The bytes of the image at ``path`` (a local file or a URL, see the class docstring), read within the
        remaining byte budget; raises :class:`ImageRefused`."""
        reads_relative_from_repository = self.repository is not None and self.repository != HUB_DATASET_URL
        if _is_url(path) or (reads_relative_from_repository and not Path(path).is_absolute()):
            url = self._allowed_url(path)
            try:
                if url.lower().startswith(REMOTE_URL_SCHEMES):
                    return self._downloaded(url)
                if self.open_url is None:
                    raise ValueError("no opener for repository URLs")
                with self.open_url(url) as handle:
                    return self._bounded(handle)
            except ImageRefused:
                raise
            except Exception as error:  # noqa: BLE001 - fsspec and HTTP raise many types; one line, no URL
                if not _is_url(path):  # a path of the repository: missing reads like refused, as for local files
                    raise ImageRefused(OUTSIDE) from None
                raise ImageRefused(f"image URL could not be read ({type(error).__name__})") from None
        real = self.local_file(path)
        try:
            descriptor = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise ImageRefused(OUTSIDE) from None
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped for a FIFO or device since the check
                raise ImageRefused(OUTSIDE)
            return self._bounded(handle)

    def _allowed_url(self, path: str) -> str:
        """The URL to read for ``path``: inside the dataset's repository, or any http(s) URL when allowed."""
        location = path.split("::")[-1]  # a chained URL (zip://member::hf://...) reads from its last part
        if not _is_url(path):
            if self.repository is None or PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
                raise ImageRefused(OUTSIDE)
            return f"{self.repository.rstrip('/')}/{path}"
        if any(".." in PurePosixPath(part.split("://", 1)[-1]).parts for part in path.split("::")):
            raise ImageRefused("image URL refused: it has '..' in it")
        if self.repository is not None and _inside_repository(location, self.repository):
            return path
        if self.allow_remote_urls and location.lower().startswith(REMOTE_URL_SCHEMES):
            return path
        raise ImageRefused("image URL refused: outside the dataset (--allow-remote-image-urls, or "
                           "allow_remote_image_urls=True, fetches http(s) URLs)")

    def _downloaded(self, url: str) -> bytes:
        """An http(s) URL's body, through huggingface_hub's HTTP client (lead_hub.network's timeouts), bounded."""
        from huggingface_hub import get_session

        with get_session().stream("GET", url, follow_redirects=True) as response:
            response.raise_for_status()
            return self._bounded(_ChunkReader(response.iter_bytes(_CHUNK_BYTES)))

    def _bounded(self, handle) -> bytes:
        """Read ``handle`` to its end, refusing it once the dataset's reads pass the byte budget."""
        parts = []
        while chunk := handle.read(_CHUNK_BYTES):
            with self._lock:
                self._bytes_read += len(chunk)
                over = self._bytes_read > self.byte_budget
            if over:
                raise ImageRefused(f"image refused: the dataset's path images exceed the {self.byte_budget:,}-byte "
                                   "budget (ArchiveLimits.max_total_bytes)")
            parts.append(chunk)
        return b"".join(parts)


class _ChunkReader:
    """``read()`` over an iterator of byte chunks (one chunk per call, b"" at the end)."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)

    def read(self, _size: int) -> bytes:
        return next(self._chunks, b"")


def hub_repository(dataset_id: str, revision: str | None) -> str:
    """The ``hf://`` root of a Hub dataset repository, at ``revision`` when given."""
    return f"{HUB_DATASET_URL}{dataset_id}" + (f"@{revision}" if revision else "")


def _inside_repository(url: str, repository: str) -> bool:
    """Whether ``url`` lies in ``repository`` (``hf://datasets/<id>[@<rev>]``) at any revision, or on the endpoint's
    ``/datasets/<id>/resolve/`` URLs; ``<id>-other`` is another repository."""
    from huggingface_hub import constants

    dataset_id = repository[len(HUB_DATASET_URL):].split("@")[0]
    if not dataset_id:  # the caller's own dataset object: any Hub dataset it streams from
        return url.startswith(HUB_DATASET_URL)
    prefixes = (f"{HUB_DATASET_URL}{dataset_id}@", f"{HUB_DATASET_URL}{dataset_id}/",
                f"{constants.ENDPOINT.rstrip('/')}/datasets/{dataset_id}/resolve/")
    return url.startswith(prefixes)


def _is_url(path: str) -> bool:
    return "://" in path
