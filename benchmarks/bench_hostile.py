"""Hostile and broken inputs through the command line: each corpus is generated here (never committed), run in a
fresh process, and its outcome, first error line and peak memory recorded.

Each case runs ``lead-hub`` (``lead_hub.cli.main``) in its own process: ``rank`` with one embedded demo model
(MobileNetV1 0.25, ``--image-size 64``, no cache) for the datasets, ``zoo show`` for zoo files, ``push`` for a
folder. Peak memory is the largest resident set size summed over that process and its DataLoader workers,
sampled every 20 ms (``peak_tree_mb``; it counts the pages a forked worker shares with its parent twice), the same
sum of proportional set sizes (``peak_tree_pss_mb``: a shared page counted once in all, so the tree's real
footprint), and the kernel's exact peak of the largest single process (``peak_process_mb``, from ``wait4``). The ``baseline`` case ranks the embedded 300-image demo zip the same way:
what the model and the libraries cost by themselves. A case passes when it exits with a clear one-line error
(code 1 or 2) or a result, and never prints a Python traceback.

    nice -n 10 python benchmarks/bench_hostile.py              # every case; writes benchmarks/results/hostile_inputs.csv
    nice -n 10 python benchmarks/bench_hostile.py --cases baseline png_9000_zip
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import psutil
from PIL import Image

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
RESULT_CSV = REPOSITORY_ROOT / "benchmarks" / "results" / "hostile_inputs.csv"
DEMO_ZIP = REPOSITORY_ROOT / "demo" / "eurosat_mini.zip"
MODEL = f"local-dir:{REPOSITORY_ROOT / 'demo' / 'models' / 'mobilenetv1_025.coral_in1k'}"
RANK = ["rank", "--models", MODEL, "--image-size", "64", "--no-cache", "--quiet"]


# ---- corpus writers ----------------------------------------------------------------------------------------------

def flat_png(width: int, height: int, channels: int = 3, value: int = 0) -> bytes:
    """A one-colour 8-bit PNG of any size (every sample ``value``), written row by row: never holds the pixels in
    memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    colour_type = {1: 0, 3: 2}[channels]
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour_type, 0, 0, 0])
    compressor, row = zlib.compressobj(9), bytes(1) + bytes([value]) * (width * channels)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def small_png(value: int = 0, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value, 2 * value % 256, 7)).save(buffer, "PNG")
    return buffer.getvalue()


def small_jpeg(value: int = 0, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value, 40, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def class_folders(root: Path, per_class: int = 4) -> Path:
    for name in ("a", "b"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            (root / name / f"{index}.png").write_bytes(small_png(index + (100 if name == "b" else 0)))
    return root


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def patch_zip(path: Path, field_offsets: dict[bytes, int], value: int, *, or_mask: bool = False) -> None:
    """Set a 2-byte field of every local header and central-directory entry (offsets by signature)."""
    data = bytearray(path.read_bytes())
    for signature, offset in field_offsets.items():
        start = 0
        while (at := data.find(signature, start)) >= 0:
            old = int.from_bytes(data[at + offset:at + offset + 2], "little")
            data[at + offset:at + offset + 2] = ((old | value) if or_mask else value).to_bytes(2, "little")
            start = at + 4
    path.write_bytes(bytes(data))


def two_class_members(extra: dict[str, bytes]) -> dict[str, bytes]:
    members = {f"data/{name}/{index}.png": small_png(index) for name in ("a", "b") for index in range(3)}
    return {**members, **extra}


# ---- cases: each returns (description, argv of lead-hub) ---------------------------------------------------------

def case_baseline(work: Path):
    return "embedded demo zip, 300 EuroSAT JPEGs of 64x64 (reference footprint)", [*RANK, "--dataset", str(DEMO_ZIP)]


def nine_thousand_squares() -> dict[str, bytes]:
    """32 PNGs of 9000x9000, 16 per class, each its own grey level (a ranking needs images that differ)."""
    return {f"data/{name}/{index}.png": flat_png(9000, 9000, value=8 * index + (128 if name == "b" else 0))
            for name in ("a", "b") for index in range(16)}


def case_png_9000_zip(work: Path):
    members = nine_thousand_squares()
    path = write_zip(work / "png9000.zip", members)
    return f"32 PNGs of 9000x9000 in a {path.stat().st_size // 1024} KB zip", [*RANK, "--dataset", str(path)]


def case_png_9000_folder(work: Path):
    for name, picture in nine_thousand_squares().items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(picture)
    return "32 PNGs of 9000x9000 in a folder, one batch of 32", [*RANK, "--dataset", str(work / "data")]


def case_bmp_1000_folder(work: Path):
    buffer = io.BytesIO()
    Image.new("RGB", (590, 590), (9, 9, 9)).save(buffer, "BMP")
    for index in range(1000):
        folder = work / "data" / "ab"[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.bmp").write_bytes(buffer.getvalue())
    return "1,000 one-colour BMPs of 1.05 MB in a folder", [*RANK, "--dataset", str(work / "data")]


def case_bmp_1000_zip(work: Path):
    buffer = io.BytesIO()
    Image.new("RGB", (590, 590), (9, 9, 9)).save(buffer, "BMP")
    members = {f"data/{'ab'[index % 2]}/{index}.bmp": buffer.getvalue() for index in range(1000)}
    path = write_zip(work / "bmp1000.zip", members)
    return (f"1,000 one-colour BMPs of {len(buffer.getvalue()) / 1e6:.2f} MB in a {path.stat().st_size / 1e6:.2f} MB "
            "zip", [*RANK, "--dataset", str(path)])


def write_directory_entries(archive: zipfile.ZipFile, count: int) -> None:
    """``count`` empty directory entries ``d0/``, ``d1/``, ... (the cheapest entries a zip can hold)."""
    for index in range(count):
        info = zipfile.ZipInfo(f"d{index}/")
        info.external_attr = (stat.S_IFDIR | 0o755) << 16
        archive.writestr(info, b"")


def case_dirs_1m_zip(work: Path):
    path = work / "dirs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        write_directory_entries(archive, 1_000_000)
        archive.writestr("data/a/0.png", small_png())
    return f"1,000,000 folder entries in a {path.stat().st_size / 1e6:.0f} MB zip", [*RANK, "--dataset", str(path)]


def case_png_30000_folder(work: Path):
    root = class_folders(work / "huge")
    (root / "a" / "huge.png").write_bytes(flat_png(30000, 30000, channels=1))
    return "a 30000x30000 PNG (grey) among 8 small ones, in a folder", [*RANK, "--dataset", str(root)]


def case_png_30000_zip(work: Path):
    path = write_zip(work / "huge.zip", two_class_members({"data/a/huge.png": flat_png(30000, 30000, channels=1)}))
    return "a 30000x30000 PNG in a zip", [*RANK, "--dataset", str(path)]


def case_truncated_jpeg_folder(work: Path):
    root = class_folders(work / "truncated")
    (root / "a" / "cut.jpg").write_bytes(small_jpeg(size=256)[:400])
    return "a truncated JPEG in a folder", [*RANK, "--dataset", str(root)]


def case_truncated_jpeg_strict(work: Path):
    description, argv = case_truncated_jpeg_folder(work)
    return description + ", --strict", [*argv, "--strict"]


def case_truncated_jpeg_zip(work: Path):
    path = write_zip(work / "truncated.zip", two_class_members({"data/a/cut.jpg": small_jpeg(size=256)[:400]}))
    return "a truncated JPEG in a zip", [*RANK, "--dataset", str(path)]


def case_empty_and_text_jpg(work: Path):
    root = class_folders(work / "liars")
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "b" / "notes.jpg").write_text("this is text")
    return "a zero-byte and a text file named .jpg in a folder", [*RANK, "--dataset", str(root)]


def case_garbage_parquet(work: Path):
    import datasets

    cells = [{"bytes": small_png(index), "path": None} for index in range(8)]
    cells[3] = {"bytes": b"\x89PNG\r\n\x1a\n" + os.urandom(200), "path": None}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    path = work / "garbage.parquet"
    datasets.Dataset.from_dict({"image": cells, "label": [index % 2 for index in range(8)]},
                               features=features).to_parquet(str(path))
    return "garbage image bytes in one parquet row", [*RANK, "--dataset", str(path)]


def case_float_label_parquet(work: Path):
    import datasets

    path = work / "float.parquet"
    datasets.Dataset.from_dict({"image": [{"bytes": small_png(index), "path": None} for index in range(6)],
                                "label": [0.0, 1.0] * 3},
                               features=datasets.Features({"image": datasets.Image(),
                                                           "label": datasets.Value("float64")})).to_parquet(str(path))
    return "a float64 'label' column in parquet", [*RANK, "--dataset", str(path)]


def case_collision_dot(work: Path):
    path = write_zip(work / "dot.zip", two_class_members({"data/a/./0.png": small_png(9)}))
    return "zip members data/a/0.png and data/a/./0.png", [*RANK, "--dataset", str(path)]


def case_collision_slashes(work: Path):
    path = write_zip(work / "slashes.zip", two_class_members({"data/a//0.png": small_png(9)}))
    return "zip members data/a/0.png and data/a//0.png", [*RANK, "--dataset", str(path)]


def case_file_and_folder(work: Path):
    path = write_zip(work / "shadow.zip", two_class_members({"data/a/x.png": small_png(), "data/a/x.png/y.png":
                                                             small_png(1)}))
    return "a zip file member and a folder of the same name", [*RANK, "--dataset", str(path)]


def case_long_name(work: Path):
    path = write_zip(work / "long.zip", two_class_members({"data/a/" + "n" * 300 + ".png": small_png()}))
    return "a zip member name part of 304 bytes", [*RANK, "--dataset", str(path)]


def case_deflate64(work: Path):
    path = write_zip(work / "deflate64.zip", two_class_members({}), compression=zipfile.ZIP_STORED)
    patch_zip(path, {b"PK\x03\x04": 8, b"PK\x01\x02": 10}, 9)
    return "zip members compressed with Deflate64 (method 9)", [*RANK, "--dataset", str(path)]


def case_bad_utf8_name(work: Path):
    path = write_zip(work / "utf8.zip", two_class_members({"data/a/ab.png": small_png()}))
    path.write_bytes(path.read_bytes().replace(b"data/a/ab.png", b"data/a/a\xff.png"))
    patch_zip(path, {b"PK\x03\x04": 6, b"PK\x01\x02": 8}, 0x800, or_mask=True)
    return "a zip member name flagged UTF-8 that is not", [*RANK, "--dataset", str(path)]


def case_nfc_nfd_folders(work: Path):
    root = work / "accents"
    for name in (unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")):
        (root / name).mkdir(parents=True)
        for index in range(2):
            (root / name / f"{index}.png").write_bytes(small_png(index))
    return "class folders café in NFC and in NFD", [*RANK, "--dataset", str(root)]


def case_yaml_alias_bomb(work: Path):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        levels.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    path = work / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nname: *h\nmodels: [x]\n")
    return f"a zoo YAML whose name is a nested-alias bomb ({path.stat().st_size} bytes)", ["zoo", "show", str(path)]


def case_yaml_tabs(work: Path):
    path = work / "tabs.yaml"
    path.write_text("name: mine\nmodels:\n\t- id: timm/resnet18.a1_in1k\n")
    return "a zoo YAML indented with a tab", ["zoo", "show", str(path)]


def case_output_is_a_file(work: Path):
    (work / "board.csv").write_text("keep me")
    return "--output naming an existing file", [*RANK, "--dataset", str(DEMO_ZIP), "--output",
                                                 str(work / "board.csv")]


def case_push_a_folder(work: Path):
    (work / "results").mkdir()
    return "lead-hub push <folder>", ["push", str(work / "results"), "owner/board"]


def case_corrupt_cache(work: Path):
    """Rank once into a cache, truncate the entry's features.npz, then the measured run ranks again."""
    cache = work / "cache"
    root = class_folders(work / "cached")
    argv = [arg for arg in RANK if arg != "--no-cache"] + ["--dataset", str(root), "--cache-dir", str(cache)]
    subprocess.run([sys.executable, "-m", "lead_hub.cli", *argv], check=True, capture_output=True)
    (features,) = cache.rglob("features.npz")
    features.write_bytes(features.read_bytes()[:100])
    return "a truncated features.npz in the feature cache", argv


# ---- issue 20: hostile datasets (image cells that are paths, broken parquet, forged zips, deep YAML) ----------------

def image_parquet(path: Path, cells: list, labels: list[int], class_names: list[str] = ("a", "b")) -> Path:
    """A parquet file whose datasets Image column holds ``cells`` (``{"bytes", "path"}`` or None), written with
    pyarrow: datasets itself would open the paths while writing."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(class_names))})
    table = pa.table({"image": pa.array(cells, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array(labels, pa.int64())})
    pq.write_table(table.replace_schema_metadata(
        {"huggingface": json.dumps({"info": {"features": features.to_dict()}})}), path)
    return path


def case_path_cells_parquet(work: Path):
    """Rows whose image is a path: 8 inside the dataset folder, 7 pointing out of it (what a hostile Hub dataset
    gives a server): another image on the machine (absolute and as ../), /dev/zero, a FIFO, a URL, a missing file,
    a symbolic link out of the folder."""
    outside = work / "server" / "photo.png"
    outside.parent.mkdir(parents=True)
    outside.write_bytes(small_png(250))
    os.mkfifo(work / "server" / "pipe.png")
    folder = work / "dataset"
    (folder / "images").mkdir(parents=True)
    for index in range(8):
        (folder / "images" / f"{index}.png").write_bytes(small_png(30 * index))
    (folder / "images" / "link.png").symlink_to(outside)
    paths = [f"images/{index}.png" for index in range(8)] + [
        str(outside), "../" * len(folder.parts) + str(outside).lstrip("/"), "/dev/zero", str(work / "server" /
        "pipe.png"), "http://127.0.0.1:9/photo.png", "images/missing.png", "images/link.png"]
    image_parquet(folder / "train.parquet", [{"bytes": None, "path": path} for path in paths],
                  [index % 2 for index in range(len(paths))])
    return ("a parquet whose image cells are paths: 8 inside its folder; absolute, ../, /dev/zero, a FIFO, a URL, "
            "a missing file and a symlink pointing out", [*RANK, "--dataset", str(folder)])


def case_null_cells_parquet(work: Path):
    cells = [{"bytes": small_png(20 * index), "path": None} for index in range(8)]
    cells[2] = cells[5] = None
    path = image_parquet(work / "nulls.parquet", cells, [index % 2 for index in range(8)])
    return "a parquet with 2 null image cells among 8", [*RANK, "--dataset", str(path)]


def case_zero_row_parquet(work: Path):
    return "a parquet with no rows", [*RANK, "--dataset", str(image_parquet(work / "empty.parquet", [], []))]


def case_bit_flipped_parquet(work: Path):
    path = image_parquet(work / "flipped.parquet", [{"bytes": small_png(index), "path": None} for index in range(6)],
                         [index % 2 for index in range(6)])
    data = bytearray(path.read_bytes())
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little") + 10  # inside the footer's metadata
    data[start:start + 50] = bytes(byte ^ 0x5A for byte in data[start:start + 50])
    path.write_bytes(bytes(data))
    return "a parquet with 50 bytes of its footer flipped", [*RANK, "--dataset", str(path)]


def case_classlabel_100k(work: Path):
    names = [f"class{index}" for index in range(100_000)]
    path = image_parquet(work / "many.parquet", [{"bytes": small_png(index), "path": None} for index in range(4)],
                         [0, 1, 0, 1], class_names=names)
    return "a parquet whose ClassLabel has 100,000 names, 2 used", [*RANK, "--dataset", str(path)]


def case_long_path_zip(work: Path):
    members = two_class_members({"data/a/" + "d/" * 2100 + "x.png": small_png(9)})
    return "a zip member path of 4 KB of 1-byte parts", [*RANK, "--dataset", str(write_zip(work / "deep.zip",
                                                                                                 members))]


def case_forged_count_zip(work: Path):
    """600,016 entries behind an end record that claims 1."""
    path = work / "forged.zip"
    with zipfile.ZipFile(path, "w") as archive:
        write_directory_entries(archive, 600_000)
        for name, content in two_class_members({}).items():
            archive.writestr(name, content)
    path.write_bytes(forged_entry_count(path.read_bytes(), 1))
    return (f"a {path.stat().st_size / 1e6:.0f} MB zip of 600,006 entries whose end record claims 1",
            [*RANK, "--dataset", str(path)])


def forged_entry_count(data: bytes, claimed: int) -> bytes:
    """The zip ``data`` with its end records (classic, and zip64 when present) claiming ``claimed`` entries."""
    data = bytearray(data)
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 12] = min(claimed, 0xFFFF).to_bytes(2, "little") * 2  # entries on this disk, in all
    end64 = data.rfind(b"PK\x06\x06")
    if end64 >= 0:
        data[end64 + 24:end64 + 40] = claimed.to_bytes(8, "little") * 2
    return bytes(data)


def case_yaml_nested_100k(work: Path):
    path = work / "deep.yaml"
    path.write_text("name: deep\nmodels: " + "[" * 100_000 + "\n")
    return "a zoo YAML of 100,000 nested '['", ["zoo", "show", str(path)]


def case_classes_1000_folder(work: Path):
    """1,000 classes of 3 distinct 32x32 PNGs each, ranked with LogME (LEAD's cost grows with the classes)."""
    for label in range(1000):
        folder = work / "data" / f"class{label:04d}"
        folder.mkdir(parents=True)
        for index in range(3):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), (label % 256, label // 256 * 60 + index * 10, index * 80)).save(buffer, "PNG")
            (folder / f"{index}.png").write_bytes(buffer.getvalue())
    return ("1,000 classes of 3 PNGs in a folder, ranked with LogME", [*RANK, "--dataset", str(work / "data"),
                                                                        "--metrics", "logme"])


CASES = {name.removeprefix("case_"): function for name, function in globals().items() if name.startswith("case_")}


# ---- running -----------------------------------------------------------------------------------------------------

RUNNER = """import atexit, json, os, resource, sys
def report():
    peaks = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    with open(os.environ["BENCH_HOSTILE_RUSAGE"], "w") as handle:
        json.dump(peaks, handle)
atexit.register(report)
from lead_hub.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``lead-hub`` in a process that records, at exit, the kernel's peak RSS (KiB) of itself and of its largest
finished child (a DataLoader worker)."""


def run_case(name: str, work: Path) -> dict:
    description, argv = CASES[name](work)
    rusage_file = work / "rusage.json"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", RUNNER, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=work, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                              "BENCH_HOSTILE_RUSAGE": str(rusage_file)})
    watched, peak, peak_pss = psutil.Process(process.pid), 0, 0
    output = {"stdout": [], "stderr": []}
    readers = [threading.Thread(target=lambda stream, key: output[key].append(stream.read()),
                                args=(getattr(process, key), key)) for key in output]
    for reader in readers:
        reader.start()
    while process.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(member.memory_info().rss for member in tree if member.is_running()))
            peak_pss = max(peak_pss, sum(member.memory_full_info().pss for member in tree if member.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    for reader in readers:
        reader.join()
    seconds = time.perf_counter() - started
    usage = round(max(json.loads(rusage_file.read_text())) / 1024) if rusage_file.exists() else None
    stderr = output["stderr"][0].decode(errors="replace")
    lines = [line for line in stderr.splitlines() if line.strip()]
    message = next((line for line in lines if ": error:" in line), None) or next(
        (line for line in lines if "skipping" in line or "unreadable" in line or "means the built-in" in line), "")
    return {"case": name, "input": description, "exit_code": process.returncode,
            "outcome": outcome(process.returncode, stderr), "message": message[:400],
            "traceback": "Traceback" in stderr, "peak_tree_mb": round(peak / 2**20),
            "peak_tree_pss_mb": round(peak_pss / 2**20),
            "peak_process_mb": usage, "seconds": round(seconds, 1)}


def outcome(code: int, stderr: str) -> str:
    if code == 0:
        return "ranked, with a warning" if "skipping" in stderr or "unreadable" in stderr else "ranked"
    return "refused" if code in (1, 2) and "Traceback" not in stderr else "crashed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--output", type=Path, default=RESULT_CSV)
    parser.add_argument("--append", action="store_true",
                        help="keep the other cases' rows already in --output (rows of the cases run are replaced)")
    arguments = parser.parse_args()
    rows = []
    if arguments.append and arguments.output.exists():
        with open(arguments.output, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row["case"] not in arguments.cases]
    for name in arguments.cases:
        with tempfile.TemporaryDirectory(prefix=f"hostile_{name}_") as folder:
            row = run_case(name, Path(folder))
        rows.append(row)
        print(json.dumps(row), flush=True)
    rows.sort(key=lambda row: list(CASES).index(row["case"]))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(arguments.output, index=False)
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
