"""Assemble the files of the Hugging Face Space repository into a folder, ready for ``hf upload``.

A Space runs ``app.py`` from its repository root, so the Space's own files go to the root, beside a copy of the
``lead_hub`` package and of ``model_zoos/`` and ``demo/``: ``rank()`` finds the shipped zoos and the embedded demo
next to the package (``lead_hub.zoo.ZOO_DIR``, ``lead_hub.ranking.DEMO_DATASET``), exactly as in a clone.

    python space/assemble.py build/space
    hf upload spaces/OWNER/NAME build/space . --repo-type space
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

SPACE_DIR = Path(__file__).resolve().parent
REPOSITORY_ROOT = SPACE_DIR.parent
SPACE_FILES = ("app.py", "ranking_job.py", "hub_publish.py", "visitor_messages.py", "README.md", "requirements.txt")
REPOSITORY_FOLDERS = ("lead_hub", "model_zoos", "demo")
_NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def assemble(destination: Path) -> list[Path]:
    """Copy the Space's files and the repository folders it needs into ``destination`` (new or empty); return the
    top-level paths written."""
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise FileExistsError(f"{destination} is not empty; pass a new or empty folder")
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SPACE_FILES:
        written.append(Path(shutil.copy2(SPACE_DIR / name, destination / name)))
    for name in REPOSITORY_FOLDERS:
        written.append(Path(shutil.copytree(REPOSITORY_ROOT / name, destination / name, ignore=_NOT_SHIPPED)))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description="Assemble the lead_hub Space repository into a folder.")
    parser.add_argument("destination", type=Path, help="a new or empty folder")
    for path in assemble(parser.parse_args().destination):
        print(path)


if __name__ == "__main__":
    main()
