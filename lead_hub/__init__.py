"""lead_hub: predict which pretrained vision model fine-tunes best on your data.

>>> from lead_hub import rank
>>> board = rank("demo", "demo", image_size=64)      # doctest: +SKIP
>>> board.table[["rank", "model_id", "lead"]]          # doctest: +SKIP

Public API: :func:`rank`, :class:`Leaderboard`, the metric registry :mod:`lead_hub.metrics`, ``__version__`` and
``DEFAULT_CACHE_DIR`` (the feature cache of ``rank`` and ``lead-hub rank``: ``features/`` in the per-user cache,
``$LEAD_HUB_CACHE``, else ``$XDG_CACHE_HOME/lead_hub``, else ``~/.cache/lead_hub``; see :mod:`lead_hub.cache`).
They are imported on first use, so ``import lead_hub`` (and every ``lead-hub`` command) stays fast.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from lead_hub.cache import DEFAULT_CACHE_DIR

try:
    __version__ = importlib.metadata.version("lead-hub")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"

_PUBLIC = {"rank": "lead_hub.ranking", "Leaderboard": "lead_hub.leaderboard", "metrics": "lead_hub.metrics"}

__all__ = ["DEFAULT_CACHE_DIR", "Leaderboard", "__version__", "metrics", "rank"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'lead_hub' has no attribute {name!r}")
    module = importlib.import_module(_PUBLIC[name])
    return module if name == "metrics" else getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
