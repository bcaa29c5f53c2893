"""The command line shared by the benchmark scripts that compute one table per shared target and judge it against
the ground truth (``lead_diagnostics.py``, ``lead_eigenvalues.py``): where the shared data, the results and the
feature cache are, the options every such script takes, and a clear exit when the shared data is absent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark import DEVELOPMENT_TARGETS, SANITY_TARGETS

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED = REPOSITORY.parent / "shared" / "data"
RESULTS = REPOSITORY / "benchmarks" / "results"
CACHE_DIR = REPOSITORY / ".lead_hub_cache" / "benchmark"


def target_script_parser(description: str, output: Path) -> argparse.ArgumentParser:
    """A parser with ``--targets`` (default: development and sanity targets), ``--cache-dir``, ``--output``
    (default ``output``) and ``--ground-truth``; the script adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--targets", nargs="+", default=[*DEVELOPMENT_TARGETS, *SANITY_TARGETS])
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--output", type=Path, default=output)
    parser.add_argument("--ground-truth", type=Path, default=RESULTS / "ground_truth.csv")
    return parser


def require_shared_data(what: str) -> None:
    """Exit with a message naming ``what`` when the shared models and targets are not beside the repository."""
    if not (SHARED / "zoo").is_dir():
        sys.exit(f"{what} needs the shared data at {SHARED}")
