"""Shared test fixtures: the location of ../shared/data, skipped with a reason where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before any test module imports huggingface_hub or datasets: both read these once, at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEAD_HUB_SHARED_DATA", REPOSITORY_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $LEAD_HUB_SHARED_DATA); the test is skipped when it is absent (a user's clone)."""
    if not (SHARED_DATA / "zoo").is_dir() or not (SHARED_DATA / "targets").is_dir():
        pytest.skip(f"needs the shared benchmark data at {SHARED_DATA} (present in the developers' checkout and CI, "
                    "absent from a user's clone)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    """No test reaches the real Hugging Face Hub: tests that need a Hub use a loopback server or a seeded cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored after it: on a shared CPU, OpenMP threads waiting for each other make
    small passes (tiny models, a few images) up to 30x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
