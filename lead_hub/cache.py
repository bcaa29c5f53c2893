"""Where lead_hub keeps what it computes: one per-user cache folder, as Hugging Face tools do.

The folder is ``$LEAD_HUB_CACHE`` when that variable is set, else ``$XDG_CACHE_HOME/lead_hub``, else
``~/.cache/lead_hub``. It holds ``features/`` (the feature and NTK cache of :func:`lead_hub.rank` and
``lead-hub rank``) and ``unpublished/`` (leaderboards whose publication failed, kept for ``lead-hub push``).

The variables are read when a folder is used, not at import, so a notebook or a test can set them at any time.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_VARIABLE = "LEAD_HUB_CACHE"


def cache_home() -> Path:
    """The per-user lead_hub folder: ``$LEAD_HUB_CACHE``, else ``$XDG_CACHE_HOME/lead_hub``, else
    ``~/.cache/lead_hub``.

    Returns
    -------
    Path
        The folder (not created here: it is created on the first write).

    Examples
    --------
    >>> import os
    >>> os.environ["LEAD_HUB_CACHE"] = "/tmp/lead-hub-cache"
    >>> str(cache_home())
    '/tmp/lead-hub-cache'
    """
    chosen = os.environ.get(CACHE_VARIABLE, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lead_hub"


class UserCacheFolder(os.PathLike):
    """A sub-folder of :func:`cache_home`, resolved each time it is used as a path (``Path(folder)``, ``open``).

    It is a default argument value that follows the environment: ``rank(cache_dir=DEFAULT_CACHE_DIR)`` uses the
    folder ``$LEAD_HUB_CACHE`` names at the time of the call.
    """

    def __init__(self, name: str):
        self.name = name

    def __fspath__(self) -> str:
        return str(cache_home() / self.name)

    def __str__(self) -> str:
        return self.__fspath__()

    def __repr__(self) -> str:
        return (f"<lead_hub user cache: {self.name}/ under ${CACHE_VARIABLE}, $XDG_CACHE_HOME/lead_hub or "
                "~/.cache/lead_hub>")

    def __eq__(self, other) -> bool:
        return isinstance(other, UserCacheFolder) and other.name == self.name

    def __hash__(self) -> int:
        return hash((UserCacheFolder, self.name))


DEFAULT_CACHE_DIR = UserCacheFolder("features")
"""The feature (and whole-network NTK) cache of :func:`lead_hub.rank` and ``lead-hub rank``."""

UNPUBLISHED_DIR = UserCacheFolder("unpublished")
"""Where ``lead-hub rank --push-to-hub`` keeps a leaderboard whose publication failed (without ``--output``)."""
