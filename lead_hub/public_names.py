"""Names that can leave this computer: Hub ids, file and folder names, content hashes; never absolute local paths.

A leaderboard is shared (pushed to the Hub, sent with a bug report), and an absolute path tells a stranger the
publisher's user name and disk layout (``/home/<user>/...``). Provenance is therefore written with public names
from the start (:func:`public_source`), and everything published goes through :func:`public_leaderboard`, which
also catches paths inside free text such as a note quoting an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath
from typing import Any

import pandas as pd

LOCAL_DIR = "local-dir:"

# An absolute POSIX path (a "/" not preceded by a word character, dot, slash or "<" as in a closing HTML tag, and
# not starting "//" as in a URL) or a Windows drive path, up to the next whitespace, quote, bracket or separator.
_ABSOLUTE_PATH = re.compile(r"(?<![\w./<])/(?!/)[^\s'\"<>|,;()\[\]{}]*|\b[A-Za-z]:\\[^\s'\"<>|,;()\[\]{}]*")


def redact_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last component (``/home/me/data/cats`` → ``cats``)."""
    return _ABSOLUTE_PATH.sub(lambda match: _last_component(match.group(0)), text)


def public_model_id(model_id: str) -> str:
    """A model id without an absolute folder: ``local-dir:/home/me/models/vit`` → ``local-dir:vit``; Hub ids,
    timm names and relative folders unchanged."""
    if model_id.startswith(LOCAL_DIR):
        folder = model_id.removeprefix(LOCAL_DIR)
        if Path(folder).is_absolute() or PureWindowsPath(folder).is_absolute():
            return LOCAL_DIR + _last_component(folder)
    return redact_paths(model_id)


def public_source(source: Any) -> str:
    """How a dataset source is named in provenance: a local file or folder by its name, anything else (a Hub id)
    as given, with absolute paths inside it redacted."""
    if isinstance(source, Path) or (isinstance(source, str) and Path(source).exists()):
        return _last_component(str(source))
    return redact_paths(str(source))


def public_value(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, scalars) with :func:`redact_paths` applied to every string in it."""
    if isinstance(value, str):
        return redact_paths(value)
    if isinstance(value, Mapping):
        return {key: public_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(item) for item in value]
    return value


def public_leaderboard(table: pd.DataFrame, provenance: Mapping[str, Any]) -> tuple[pd.DataFrame, dict]:
    """The table and provenance as they may be published: model ids by :func:`public_model_id`, every other text
    cell and every provenance string by :func:`redact_paths`."""
    table = table.copy()
    for column in table.columns:
        if column == "model_id":
            table[column] = table[column].map(public_model_id)
        elif pd.api.types.is_object_dtype(table[column]) or pd.api.types.is_string_dtype(table[column]):
            table[column] = table[column].map(lambda value: redact_paths(value) if isinstance(value, str) else value)
    return table, public_value(dict(provenance))


def _last_component(path: str) -> str:
    parts = [part for part in re.split(r"[\\/]", path) if part]
    return parts[-1] if parts else path
