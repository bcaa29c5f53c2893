"""Safe zip extraction: hostile archives are refused before anything is written, images come out intact."""

from __future__ import annotations

import io
import stat
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from lead_hub.archive import ArchiveError, ArchiveLimits, extract_image_archive


def png_bytes(value: int = 0, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value, value, value)).save(buffer, "PNG")
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes], *, file_types: dict[str, int] | None = None,
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip of ``members``; ``file_types`` gives some members a Unix file type (stat.S_IFLNK, ...)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = compression
            info.external_attr = ((file_types or {}).get(name, stat.S_IFREG) | 0o644) << 16
            archive.writestr(info, content)
    return path


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_extracts_images_and_skips_os_metadata(tmp_path):
    archive = write_zip(tmp_path / "upload.zip", {
        "set/cat/1.png": png_bytes(10),
        "set/dog/2.png": png_bytes(200),
        "__MACOSX/set/cat/._1.png": b"\x00\x05\x16\x07 resource fork",
        "set/.DS_Store": b"Bud1 finder metadata",
        "set/dog/Thumbs.db": b"thumbnail cache",
        "set/dog/._2.png": b"\x00\x05\x16\x07 apple double",
    })
    destination = tmp_path / "out"
    extracted = extract_image_archive(archive, destination)
    assert files_under(destination) == ["set/cat/1.png", "set/dog/2.png"]
    assert [path.relative_to(destination.resolve()).as_posix() for path in extracted] == ["set/cat/1.png",
                                                                                           "set/dog/2.png"]
    assert Image.open(destination / "set" / "dog" / "2.png").getpixel((0, 0)) == (200, 200, 200)


@pytest.mark.parametrize("name", ["../evil.png", "cats/../../evil.png", "/etc/evil.png", "C:/evil.png",
                                  "C:evil.png", "cats\\..\\..\\evil.png"])
def test_refuses_paths_that_leave_the_destination(tmp_path, name):
    archive = write_zip(tmp_path / "upload.zip", {"cats/ok.png": png_bytes(), name: png_bytes()})
    destination = tmp_path / "inner" / "out"
    with pytest.raises(ArchiveError, match="member"):
        extract_image_archive(archive, destination)
    assert not destination.exists()
    assert files_under(tmp_path) == ["upload.zip"]


@pytest.mark.parametrize("file_type, message", [(stat.S_IFLNK, "symbolic link"), (stat.S_IFIFO, "not a regular"),
                                                (stat.S_IFCHR, "not a regular")])
def test_refuses_links_and_special_files(tmp_path, file_type, message):
    archive = write_zip(tmp_path / "upload.zip", {"cats/ok.png": png_bytes(), "cats/link.png": b"/etc/passwd"},
                        file_types={"cats/link.png": file_type})
    with pytest.raises(ArchiveError, match=message):
        extract_image_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_more_files_than_the_limit_before_extracting(tmp_path):
    archive = write_zip(tmp_path / "upload.zip", {f"cats/{index}.png": png_bytes(index) for index in range(4)})
    with pytest.raises(ArchiveError, match="holds more than 3 entries"):
        extract_image_archive(archive, tmp_path / "out", ArchiveLimits(max_files=3))
    assert not (tmp_path / "out").exists()
    assert len(extract_image_archive(archive, tmp_path / "out", ArchiveLimits(max_files=4))) == 4


def test_refuses_more_bytes_than_the_limit_before_extracting(tmp_path):
    members = {f"cats/{index}.png": png_bytes(index, size=32) for index in range(3)}
    archive = write_zip(tmp_path / "upload.zip", members)
    total = sum(len(content) for content in members.values())
    with pytest.raises(ArchiveError, match="max_total_bytes"):
        extract_image_archive(archive, tmp_path / "out", ArchiveLimits(max_total_bytes=total - 1))
    assert not (tmp_path / "out").exists()
    assert len(extract_image_archive(archive, tmp_path / "out", ArchiveLimits(max_total_bytes=total))) == 3


def test_refuses_a_zip_bomb_by_its_compression_ratio(tmp_path):
    archive = write_zip(tmp_path / "upload.zip", {"cats/flat.bmp": bytes(4 * 1024**2)})
    assert zipfile.ZipFile(archive).getinfo("cats/flat.bmp").compress_size < 20_000
    with pytest.raises(ArchiveError, match="zip bomb"):
        extract_image_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_a_member_that_expands_past_its_declared_size(tmp_path):
    """The central directory and local header say 1,000 bytes; the deflate stream holds 3 MiB."""
    real_size = 3 * 1024**2
    archive = write_zip(tmp_path / "upload.zip", {"cats/liar.bmp": bytes(real_size)})
    data = bytearray(archive.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = (1000).to_bytes(4, "little")  # uncompressed size, central directory
    data[22:26] = (1000).to_bytes(4, "little")  # uncompressed size, local header
    archive.write_bytes(bytes(data))
    assert zipfile.ZipFile(archive).getinfo("cats/liar.bmp").file_size == 1000
    destination = tmp_path / "out"
    with pytest.raises(ArchiveError):
        extract_image_archive(archive, destination, ArchiveLimits(max_total_bytes=2000))
    assert files_under(destination) == []


@pytest.mark.parametrize("name", ["cats/more.zip", "cats/more.tar", "cats/more.tar.gz", "cats/more.7z"])
def test_refuses_nested_archives(tmp_path, name):
    archive = write_zip(tmp_path / "upload.zip", {"cats/ok.png": png_bytes(), name: b"PK\x03\x04 nested"})
    with pytest.raises(ArchiveError, match="nested archive"):
        extract_image_archive(archive, tmp_path / "out")


def test_refuses_non_image_files_and_names_the_accepted_extensions(tmp_path):
    archive = write_zip(tmp_path / "upload.zip", {"cats/ok.png": png_bytes(), "cats/notes.txt": b"hello"})
    with pytest.raises(ArchiveError, match=r"notes\.txt.*accepted: .*\.jpg.*\.png"):
        extract_image_archive(archive, tmp_path / "out")


def test_refuses_a_file_that_does_not_open_as_an_image_and_removes_what_was_extracted(tmp_path):
    archive = write_zip(tmp_path / "upload.zip", {"cats/ok.png": png_bytes(), "cats/fake.png": b"not a png at all"})
    destination = tmp_path / "out"
    with pytest.raises(ArchiveError, match="fake.png.*does not open as an image"):
        extract_image_archive(archive, destination)
    assert files_under(destination) == []


@pytest.mark.parametrize("size", [12, 16])  # 144 px: PIL's warning level; 256 px: above twice the limit
def test_pil_decompression_bomb_guard_applies(tmp_path, monkeypatch, size):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    archive = write_zip(tmp_path / "upload.zip", {"cats/big.png": png_bytes(size=size)})
    with pytest.raises(ArchiveError, match="decompression bomb"):
        extract_image_archive(archive, tmp_path / "out")


def test_refuses_duplicate_member_names(tmp_path):
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("cats/a.png", png_bytes(1))
        archive.writestr("cats/a.png", png_bytes(2))
    with pytest.raises(ArchiveError, match="appears twice"):
        extract_image_archive(path, tmp_path / "out")


def test_refuses_a_non_empty_destination_and_a_file_that_is_not_a_zip(tmp_path):
    archive = write_zip(tmp_path / "upload.zip", {"cats/ok.png": png_bytes()})
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="not an empty folder"):
        extract_image_archive(archive, occupied)
    assert files_under(occupied) == ["keep.txt"]
    not_zip = tmp_path / "photo.zip"
    not_zip.write_bytes(png_bytes())
    with pytest.raises(ArchiveError, match="not a readable zip"):
        extract_image_archive(not_zip, tmp_path / "out")


def test_refuses_an_archive_without_images(tmp_path):
    archive = write_zip(tmp_path / "upload.zip", {"__MACOSX/._x.png": b"meta", ".DS_Store": b"meta"})
    with pytest.raises(ArchiveError, match="no image files"):
        extract_image_archive(archive, tmp_path / "out")


# -- issue 13: entries, names and compressions that used to crash or slip through ---------------------------------


def test_a_zip_whose_end_record_understates_its_entries_is_refused_while_counting(tmp_path, monkeypatch):
    """Issue 20: a zip claiming 1 entry but holding 600,016 was refused only after zipfile parsed every entry. The
    entries are now counted as the central directory is walked, stopping at the limit, before zipfile opens it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_hostile import forged_entry_count

    archive = write_zip(tmp_path / "forged.zip", {f"cats/{index}.png": png_bytes(index) for index in range(30)})
    archive.write_bytes(forged_entry_count(archive.read_bytes(), 1))
    assert zipfile.ZipFile(archive).infolist().__len__() == 30  # zipfile itself ignores the claimed count

    def never_parsed(*args, **kwargs):
        raise AssertionError("zipfile parsed the directory before the count was checked")

    monkeypatch.setattr(zipfile, "ZipFile", never_parsed)
    with pytest.raises(ArchiveError, match="holds more than 10 entries"):
        extract_image_archive(archive, tmp_path / "out", ArchiveLimits(max_files=10))


def test_every_entry_counts_against_max_files_folders_and_metadata_too(tmp_path):
    members = {f"cats/empty{index}/": b"" for index in range(5)} | {"cats/a.png": png_bytes()}
    members |= {f"__MACOSX/._{index}": b"m" for index in range(5)}
    archive = write_zip(tmp_path / "upload.zip", members, file_types={name: stat.S_IFDIR for name in members
                                                                        if name.endswith("/")})
    with pytest.raises(ArchiveError, match="holds more than 10 entries \\(files, folders and metadata"):
        extract_image_archive(archive, tmp_path / "out", ArchiveLimits(max_files=10))
    assert not (tmp_path / "out").exists()


def test_many_members_just_under_the_member_ratio_check_are_refused_as_a_whole(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (590, 590), (9, 9, 9)).save(buffer, "BMP")  # one colour, just under 1 MiB
    flat = buffer.getvalue()
    assert len(flat) < ArchiveLimits().ratio_check_min_bytes  # so no member alone is ratio-checked
    archive = write_zip(tmp_path / "upload.zip", {f"cats/{index}.bmp": flat for index in range(4)})
    with pytest.raises(ArchiveError, match="images expand from .* bytes in all, more than 200 times"):
        extract_image_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    two = write_zip(tmp_path / "two.zip", {"cats/0.bmp": flat})
    assert len(extract_image_archive(two, tmp_path / "out")) == 1  # under 1 MiB in all: not ratio-checked


@pytest.mark.parametrize("twin", ["cats/./a.png", "cats//a.png", "./cats/a.png"])
def test_members_landing_on_the_same_path_are_refused(tmp_path, twin):
    archive = write_zip(tmp_path / "upload.zip", {"cats/a.png": png_bytes(1), twin: png_bytes(2)})
    with pytest.raises(ArchiveError, match="lands on the same path as 'cats/a.png'"):
        extract_image_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("order", [("cats/a.png", "cats/a.png/b.png"), ("cats/a.png/b.png", "cats/a.png")])
def test_a_file_named_like_a_folder_is_refused(tmp_path, order):
    archive = write_zip(tmp_path / "upload.zip", {name: png_bytes() for name in order})
    with pytest.raises(ArchiveError, match="'cats/a.png' is a file, but 'cats/a.png/b.png' uses the same name"):
        extract_image_archive(archive, tmp_path / "out")


def test_a_name_part_over_255_bytes_is_refused(tmp_path):
    archive = write_zip(tmp_path / "upload.zip", {"cats/" + "é" * 128 + ".png": png_bytes()})
    with pytest.raises(ArchiveError, match="name part of 260 bytes, more than the 255"):
        extract_image_archive(archive, tmp_path / "out")


def test_a_deflate64_member_is_refused_with_the_way_to_rezip(tmp_path):
    path = write_zip(tmp_path / "upload.zip", {"cats/a.png": png_bytes()}, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    for signature, method_offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local header, central entry
        at = data.index(signature)
        data[at + method_offset:at + method_offset + 2] = (9).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="'cats/a.png' is compressed with Deflate64.*re-zip with standard Deflate"):
        extract_image_archive(path, tmp_path / "out")


def test_a_name_flagged_utf8_that_is_not_is_named_escaped(tmp_path):
    path = write_zip(tmp_path / "upload.zip", {"cats/ab.png": png_bytes()})
    data = path.read_bytes().replace(b"cats/ab.png", b"cats/a\xff.png")
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature)
        flags = int.from_bytes(data[at + flag_offset:at + flag_offset + 2], "little") | 0x800
        data = data[:at + flag_offset] + flags.to_bytes(2, "little") + data[at + flag_offset + 2:]
    path.write_bytes(data)
    with pytest.raises(ArchiveError, match=r"upload.zip: member name 'cats/a\\\\xff.png' is flagged UTF-8"):
        extract_image_archive(path, tmp_path / "out")
