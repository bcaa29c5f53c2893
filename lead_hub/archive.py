"""Safe extraction of an uploaded zip of images: every archive is hostile until each check below has passed.

Checks, all made from the central directory before a single byte is written, then enforced again on the bytes
actually decompressed (so a header that lies about sizes cannot get past them; CPython's zipfile also stops a
member at its declared size and then fails its CRC check, which is reported the same way):

* entries: at most ``max_files`` entries of any kind (folders and OS metadata count too), counted by walking the
  central directory entry by entry and stopping at the limit, before zipfile parses it (the end record's count
  is not trusted: a zip may claim one entry and hold 600,000);
* names: valid UTF-8 when the archive flags them so; no absolute paths, drive letters, backslashes, ``..`` parts
  or NUL bytes; no name component over 255 bytes and no name over 1,024 bytes in all (longer paths fail to
  extract under most file systems' 4 KB path limit); no two members that land on the same path once ``.`` and empty
  parts are dropped (``cls/./a.png``, ``cls//a.png`` and ``cls/a.png``), and no file named like a folder;
* compression: stored, Deflate, bzip2 or LZMA only (Deflate64, which Windows writes for large folders, is
  refused with the way to re-zip);
* entry types: regular files and folders only (no symlinks, devices, FIFOs); no encrypted members;
* contents: image files only (``IMAGE_EXTENSIONS``); nested archives are named as such and refused;
  OS metadata (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``, ``desktop.ini``, ``._*``) is skipped, not extracted;
* sizes: at most ``max_total_bytes`` uncompressed bytes; no member above ``ratio_check_min_bytes`` expanding
  more than ``max_compression_ratio`` times (a zip bomb), and the same bound on the archive as a whole, so many
  members each just under the ratio cannot add up to a bomb.

Every extracted file must then open as an image with PIL, with PIL's decompression-bomb guard left on and its
warning (images above ``Image.MAX_IMAGE_PIXELS`` pixels) treated as an error.
"""

from __future__ import annotations

import shutil
import stat
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

IMAGE_EXTENSIONS = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})
ARCHIVE_EXTENSIONS = frozenset({".7z", ".bz2", ".gz", ".lz", ".lzma", ".rar", ".tar", ".tbz2", ".tgz", ".txz",
                                ".xz", ".z", ".zip", ".zst"})
METADATA_FOLDERS = frozenset({"__MACOSX"})
METADATA_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_CHUNK_BYTES = 1 << 20


class ArchiveError(ValueError):
    """An archive was refused: unsafe, too large, or holding something other than images."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Upper bounds on what one archive may expand to.

    ``max_files`` counts every entry of the archive (images, folders, OS metadata). ``max_compression_ratio``
    applies to members whose uncompressed size exceeds ``ratio_check_min_bytes``, and to the whole archive once
    it expands past that size: small flat images (a blank BMP, a mask) legitimately compress hundreds of times,
    and the byte budget already bounds what a few small members can cost.
    """

    max_files: int = 50_000
    max_total_bytes: int = 2 * 1024**3
    max_compression_ratio: float = 200.0
    ratio_check_min_bytes: int = 1024**2


def extract_image_archive(archive: str | Path, destination: str | Path,
                          limits: ArchiveLimits | None = None) -> list[Path]:
    """Extract the images of the zip ``archive`` into ``destination`` and return their paths, in archive order.

    ``destination`` must not exist or be an empty folder. Raises :class:`ArchiveError` naming the offending
    member and the limit or rule it breaks; on any failure what was extracted so far is removed again.
    """
    limits = limits or ArchiveLimits()
    archive, destination = Path(archive), Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ArchiveError(f"cannot extract {archive} into {destination}: it exists and is not an empty folder; "
                           "pass a new or empty folder")
    _check_entry_count(archive, limits)
    try:
        with _open_zip(archive) as zip_file:
            members = _checked_members(zip_file, archive, limits)
            destination.mkdir(parents=True, exist_ok=True)
            try:
                return _extract(zip_file, members, archive, destination.resolve(), limits)
            except BaseException:
                _empty_folder(destination)
                raise
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{archive} is not a readable zip archive, or a corrupt or forged one ({error}); upload "
                           "a .zip of class folders") from error


def _check_entry_count(archive: Path, limits: ArchiveLimits) -> None:
    """Refuse an archive of more than ``max_files`` entries before zipfile builds one object per entry.

    The entries are counted as zipfile would find them: walking the central directory from the offset the end
    record gives, one fixed-size header and its variable-length fields at a time, until the directory's size is
    used up. The walk stops at ``max_files + 1`` entries, so a forged count in the end record (zipfile ignores it
    too) cannot make zipfile parse hundreds of thousands of entries first. zipfile offers no public way to do this,
    so its end-record reader and header layout are used.
    """
    try:
        with open(archive, "rb") as handle:
            record = zipfile._EndRecData(handle)
            if not record:
                return  # not a zip: zipfile says so, with its own message
            entries = _count_entries(handle, record, limits.max_files + 1)
    except OSError as error:
        raise ArchiveError(f"cannot read {archive} ({error}); check the path") from error
    if entries > limits.max_files:
        raise ArchiveError(f"{archive} holds more than {limits.max_files:,} entries (files, folders and metadata; "
                           "ArchiveLimits.max_files); sample fewer images per class before zipping")


def _count_entries(handle, record: list, stop_at: int) -> int:
    """Entries of the central directory described by the end record ``record``, counted up to ``stop_at``."""
    size = record[zipfile._ECD_SIZE]
    # Data prepended to the zip (a self-extractor) shifts every offset, as zipfile's own reader allows.
    start = record[zipfile._ECD_LOCATION] - size
    if record[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    handle.seek(start)
    walked = entries = 0
    while walked < size and entries < stop_at:
        header = handle.read(zipfile.sizeCentralDir)
        if len(header) != zipfile.sizeCentralDir or header[:4] != zipfile.stringCentralDir:
            break  # a broken directory: zipfile raises BadZipFile on it, reported as such
        fields = struct.unpack(zipfile.structCentralDir, header)
        variable = (fields[zipfile._CD_FILENAME_LENGTH] + fields[zipfile._CD_EXTRA_FIELD_LENGTH]
                    + fields[zipfile._CD_COMMENT_LENGTH])
        handle.seek(variable, 1)
        walked += zipfile.sizeCentralDir + variable
        entries += 1
    return entries


def _open_zip(archive: Path) -> zipfile.ZipFile:
    """``zipfile.ZipFile(archive)``; a member name that is not the UTF-8 its flag claims is named, escaped."""
    try:
        return zipfile.ZipFile(archive)
    except UnicodeDecodeError as error:
        escaped = error.object.decode("utf-8", "backslashreplace") if isinstance(error.object, bytes) else "?"
        raise ArchiveError(f"{archive}: member name {escaped!r} is flagged UTF-8 but is not valid UTF-8; re-zip "
                           "with a tool that writes UTF-8 names (or rename the file)") from error


SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "Deflate", zipfile.ZIP_BZIP2: "bzip2",
                         zipfile.ZIP_LZMA: "LZMA"}
"""Compression methods CPython's zipfile reads (method numbers of the zip specification)."""
_COMPRESSION_NAMES = {9: "Deflate64", 6: "Implode", 98: "PPMd", 93: "Zstandard", 95: "XZ", 99: "AES-encrypted"}
_MAX_NAME_COMPONENT_BYTES = 255
"""The longest file or folder name most file systems accept, in bytes."""
_MAX_NAME_BYTES = 1024
"""The longest member path accepted, in bytes: well inside the 4 KB path limit once joined to the destination."""


def _checked_members(zip_file: zipfile.ZipFile, archive: Path, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    """The image members to extract, after every check that the central directory alone allows."""
    members, seen_paths, folders, total_bytes, total_compressed = [], {}, {}, 0, 0
    entries = zip_file.infolist()
    if len(entries) > limits.max_files:
        raise ArchiveError(f"{archive} holds {len(entries):,} entries (files, folders and metadata), more than "
                           f"{limits.max_files:,} (ArchiveLimits.max_files); sample fewer images per class before "
                           "zipping")
    for info in entries:
        name = info.filename
        _check_name(name, archive)
        path = _normalised(name)
        if path in seen_paths:
            clash = "appears twice" if seen_paths[path] == name else f"lands on the same path as {seen_paths[path]!r}"
            raise ArchiveError(f"{archive}: member {name!r} {clash}; rebuild the zip without duplicates")
        seen_paths[path] = name
        for depth in range(1, len(path) - (0 if info.is_dir() else 1) + 1):
            folders.setdefault(path[:depth], name)
        _check_entry_type(info, archive)
        if info.is_dir() or is_os_metadata(name):
            continue
        _check_extension(name, archive)
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{archive}: member {name!r} is encrypted; upload an unencrypted zip")
        _check_compression(info, archive)
        _check_ratio(name, info.file_size, info.compress_size, archive, limits)
        members.append(info)
        total_bytes += info.file_size
        total_compressed += info.compress_size
        if total_bytes > limits.max_total_bytes:
            raise ArchiveError(f"{archive} expands to more than {limits.max_total_bytes} bytes "
                               "(ArchiveLimits.max_total_bytes); upload fewer or smaller images")
    for info in members:
        path = _normalised(info.filename)
        if path in folders:
            raise ArchiveError(f"{archive}: member {info.filename!r} is a file, but {folders[path]!r} uses the same "
                               "name as a folder; rename one of them")
    _check_total_ratio(total_bytes, total_compressed, archive, limits)
    if not members:
        raise ArchiveError(f"{archive} holds no image files ({_accepted_extensions()}); zip class folders of images")
    return members


def _normalised(name: str) -> tuple[str, ...]:
    """The path a member lands on: its parts without empty and ``.`` parts (``a//./b/`` → ``("a", "b")``)."""
    return tuple(part for part in name.split("/") if part not in ("", "."))


def _check_compression(info: zipfile.ZipInfo, archive: Path) -> None:
    if info.compress_type not in SUPPORTED_COMPRESSION:
        method = _COMPRESSION_NAMES.get(info.compress_type, f"method {info.compress_type}")
        raise ArchiveError(f"{archive}: member {info.filename!r} is compressed with {method}, which cannot be read "
                           f"here; re-zip with standard Deflate (e.g. `zip -r data.zip folder`, or 7-Zip with "
                           "Deflate; Windows' 'Send to > Compressed folder' uses Deflate64 for large folders)")


def _check_total_ratio(uncompressed: int, compressed: int, archive: Path, limits: ArchiveLimits) -> None:
    if uncompressed > limits.ratio_check_min_bytes and uncompressed > limits.max_compression_ratio * compressed:
        raise ArchiveError(f"{archive}: its images expand from {compressed} to {uncompressed} bytes in all, more "
                           f"than {limits.max_compression_ratio:g} times (ArchiveLimits.max_compression_ratio); "
                           "this looks like a zip bomb")


def _check_name(name: str, archive: Path) -> None:
    path = PurePosixPath(name)
    if "\\" in name or "\x00" in name:
        raise ArchiveError(f"{archive}: member {name!r} has a backslash or NUL byte in its name; "
                           "zip with forward slashes only")
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{archive}: member {name!r} has an absolute path or drive letter; "
                           "zip with paths relative to the archive root")
    if ".." in path.parts:
        raise ArchiveError(f"{archive}: member {name!r} points outside the archive ('..'); refusing to extract")
    long_parts = [part for part in path.parts if len(part.encode("utf-8", "surrogateescape"))
                  > _MAX_NAME_COMPONENT_BYTES]
    if long_parts:
        raise ArchiveError(f"{archive}: member {name[:80]!r}... has a name part of "
                           f"{len(long_parts[0].encode('utf-8', 'surrogateescape'))} bytes, more than the "
                           f"{_MAX_NAME_COMPONENT_BYTES} file systems accept; shorten it")
    length = len(name.encode("utf-8", "surrogateescape"))
    if length > _MAX_NAME_BYTES:
        raise ArchiveError(f"{archive}: member {name[:80]!r}... has a path of {length:,} bytes, more than the "
                           f"{_MAX_NAME_BYTES:,} accepted; use shallower folders and shorter names")


def _check_entry_type(info: zipfile.ZipInfo, archive: Path) -> None:
    """Only regular files and folders: a symlink member could redirect later writes outside the destination.

    The Unix file type sits in the high 16 bits of ``external_attr``; zero there (zips made on Windows, or with
    permission bits only) means a plain file.
    """
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        raise ArchiveError(f"{archive}: member {info.filename!r} is {kind}; zip regular image files only")


def is_os_metadata(name: str) -> bool:
    """Whether ``name`` (a "/"-separated path) is OS metadata rather than data: skipped, never extracted."""
    parts = PurePosixPath(name).parts
    return (any(part in METADATA_FOLDERS for part in parts) or parts[-1] in METADATA_FILES
            or parts[-1].startswith("._"))


def _check_extension(name: str, archive: Path) -> None:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in ARCHIVE_EXTENSIONS:
        raise ArchiveError(f"{archive}: member {name!r} is a nested archive; extract it and zip the images "
                           "themselves")
    if suffix not in IMAGE_EXTENSIONS:
        raise ArchiveError(f"{archive}: member {name!r} is not an image file; accepted: {_accepted_extensions()}")


def _check_ratio(name: str, uncompressed: int, compressed: int, archive: Path, limits: ArchiveLimits) -> None:
    if uncompressed > limits.ratio_check_min_bytes and uncompressed > limits.max_compression_ratio * compressed:
        raise ArchiveError(f"{archive}: member {name!r} expands from {compressed} to at least {uncompressed} bytes, "
                           f"more than {limits.max_compression_ratio:g} times (ArchiveLimits.max_compression_ratio)"
                           "; this looks like a zip bomb")


def _accepted_extensions() -> str:
    return ", ".join(sorted(IMAGE_EXTENSIONS))


def _extract(zip_file: zipfile.ZipFile, members: list[zipfile.ZipInfo], archive: Path, destination: Path,
             limits: ArchiveLimits) -> list[Path]:
    extracted, total_bytes, total_compressed = [], 0, 0
    for info in members:
        total_compressed += info.compress_size
        target = destination.joinpath(*PurePosixPath(info.filename).parts).resolve()
        if not target.is_relative_to(destination):
            raise ArchiveError(f"{archive}: member {info.filename!r} resolves outside {destination}; refusing it")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            sink = open(target, "xb")  # "xb" never overwrites and never follows a link planted at the target
        except OSError as error:  # a path the file system refuses (too long, a name it cannot store)
            raise ArchiveError(f"{archive}: member {info.filename[:80]!r} cannot be written here ({error.strerror}); "
                               "rename it with a shorter, plainer path") from error
        written = 0
        with zip_file.open(info) as source, sink:
            while chunk := source.read(_CHUNK_BYTES):
                written += len(chunk)
                total_bytes += len(chunk)
                if written > info.file_size:
                    raise ArchiveError(f"{archive}: member {info.filename!r} expands past the {info.file_size} "
                                       "bytes its header declares; refusing a lying archive")
                if total_bytes > limits.max_total_bytes:
                    raise ArchiveError(f"{archive} expands to more than {limits.max_total_bytes} bytes "
                                       "(ArchiveLimits.max_total_bytes); upload fewer or smaller images")
                _check_ratio(info.filename, written, info.compress_size, archive, limits)
                _check_total_ratio(total_bytes, total_compressed, archive, limits)
                sink.write(chunk)
        _check_image(target, info.filename, archive)
        extracted.append(target)
    return extracted


def _check_image(path: Path, name: str, archive: Path) -> None:
    """Open and verify the file with PIL; a decompression bomb (even PIL's warning level) is an error here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ArchiveError(f"{archive}: member {name!r} is a decompression bomb ({error}); upload smaller images") \
            from error
    except Exception as error:
        raise ArchiveError(f"{archive}: member {name!r} does not open as an image ({error}); remove or re-save it") \
            from error


def _empty_folder(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
