"""Safe zip extraction: hostile archives are refused before anything is written, images come out intact."""

from __future__ import annotations

import io
import stat
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
    with pytest.raises(ArchiveError, match="more than 3 images"):
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
