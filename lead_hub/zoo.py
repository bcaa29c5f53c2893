"""Model zoos: named lists of candidate models, stored as YAML files in ``model_zoos/``.

A zoo file holds ``name``, ``description``, an optional ``base_dir`` and ``models``, a list of entries with
``id`` (a model id as ``lead_hub.models.load_backbone`` takes it, or null when the model has no loadable copy),
and optionally ``revision``, ``label`` (a human name), ``params`` (the true parameter count, when the stored
network is larger than the real one) and ``note``::

    name: demo
    base_dir: ..
    models:
      - id: local-dir:demo/models/mobilenetv1_025.coral_in1k
        label: MobileNetV1 0.25 (ImageNet-1k)
        params: 470329

A relative ``local-dir:`` path resolves against ``base_dir``, which is itself relative to the zoo file and
defaults to the file's folder; the shipped zoos set ``base_dir: ..``, the repository root, so their paths read
as paths from the repository root whatever the working directory.

A zoo file may come from anyone, so it is read defensively: at most ``MAX_ZOO_FILE_BYTES``, YAML aliases and
anchors refused (a few hundred bytes of nested aliases expand to gigabytes), every field type-checked and its
length bounded (``FIELD_MAX_CHARS``), at most ``MAX_ZOO_MODELS`` models; a YAML syntax error is one line naming
``file:line``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

ZOO_DIR = Path(__file__).resolve().parents[1] / "model_zoos"
"""The shipped zoos: ``model_zoos/`` at the repository root (present in a clone and an editable install)."""

NOT_A_CLONE_HINT = ("the shipped zoos and the demo come with a clone of the repository, which this install lacks (a "
                    "regular, non-editable pip install leaves them out): clone it and `pip install -e .` there, or "
                    "name your own models and dataset (--models or --zoo FILE.yaml, --dataset)")
"""What to do when ``model_zoos/`` or ``demo/`` is missing."""

LOCAL_DIR_PREFIX = "local-dir:"
_ENTRY_KEYS = {"id", "revision", "label", "params", "note"}
_ZOO_KEYS = {"name", "description", "base_dir", "models"}
MAX_ZOO_FILE_BYTES = 1024**2
MAX_ZOO_MODELS = 1000
MAX_PARAMS = 10**13
FIELD_MAX_CHARS = {"name": 200, "description": 5000, "base_dir": 1000, "id": 1000, "revision": 200, "label": 200,
                   "note": 2000}
"""The longest string each zoo field may hold."""


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases: a zoo never needs them, and nested ones are a memory bomb."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: YAML aliases (*name) are not accepted in a zoo file; "
                                 "write each value out")
        return super().compose_node(parent, index)


@dataclass(frozen=True)
class ZooEntry:
    """One candidate of a zoo.

    ``model_id`` is the id as written in the zoo (what a leaderboard shows); ``load_id`` is the id to load,
    with a relative ``local-dir:`` path made absolute. Both are None for a model with no loadable copy.
    """

    model_id: str | None
    load_id: str | None
    revision: str | None = None
    label: str | None = None
    params: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class Zoo:
    """A named list of candidates, read from ``path`` (None for a zoo built by a Hub search)."""

    name: str
    description: str
    path: Path | None
    entries: tuple[ZooEntry, ...]

    @property
    def loadable(self) -> tuple[ZooEntry, ...]:
        """The entries that have a model id."""
        return tuple(entry for entry in self.entries if entry.model_id is not None)

    @property
    def unavailable(self) -> tuple[ZooEntry, ...]:
        """The entries without a loadable copy (kept in the zoo to document the set, with a note)."""
        return tuple(entry for entry in self.entries if entry.model_id is None)


def zoo_path(name_or_path: str | Path) -> Path:
    """The YAML file of a shipped zoo name (``demo``) or of a path to a zoo file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"zoo file {path} does not exist")
        return path
    shipped = ZOO_DIR / f"{name_or_path}.yaml"
    if not ZOO_DIR.is_dir():
        raise FileNotFoundError(f"no zoo named {str(name_or_path)!r}: {NOT_A_CLONE_HINT}")
    if not shipped.is_file():
        raise FileNotFoundError(f"no zoo named {str(name_or_path)!r}; shipped zoos: {', '.join(zoo_names())} "
                                f"(in {ZOO_DIR}), or pass the path of a zoo YAML file")
    return shipped


def zoo_names() -> list[str]:
    """Names of the shipped zoos, sorted."""
    return sorted(path.stem for path in ZOO_DIR.glob("*.yaml"))


def load_zoo(name_or_path: str | Path) -> Zoo:
    """Read and validate a zoo by shipped name or by path; ValueError names the bad entry and the fix."""
    path = zoo_path(name_or_path)
    document = _read_yaml(path)
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise ValueError(f"zoo file {path}: expected a mapping with a 'models' list")
    unknown = set(document) - _ZOO_KEYS
    if unknown:
        raise ValueError(f"zoo file {path}: unknown keys {sorted(map(str, unknown))}; allowed: {sorted(_ZOO_KEYS)}")
    for key in ("name", "description", "base_dir"):
        _check_text(document.get(key), key, f"zoo file {path}")
    if len(document["models"]) > MAX_ZOO_MODELS:
        raise ValueError(f"zoo file {path}: {len(document['models'])} models, more than {MAX_ZOO_MODELS}; split it")
    base_dir = (path.parent / str(document.get("base_dir", "."))).resolve()
    entries = tuple(_read_entry(raw, base_dir, f"zoo file {path}, model {index}")
                    for index, raw in enumerate(document["models"]))
    seen: set[str] = set()
    for entry in entries:
        if entry.model_id is not None and entry.model_id in seen:
            raise ValueError(f"zoo file {path}: model {entry.model_id!r} is listed twice")
        seen.add(entry.model_id or "")
    return Zoo(str(document.get("name", path.stem)), str(document.get("description", "")).strip(), path, entries)


def _read_yaml(path: Path):
    """The YAML document of ``path``, within MAX_ZOO_FILE_BYTES and without aliases; errors are one line."""
    size = path.stat().st_size
    if size > MAX_ZOO_FILE_BYTES:
        raise ValueError(f"zoo file {path} is {size:,} bytes, more than {MAX_ZOO_FILE_BYTES:,}; a zoo lists models, "
                         "it should be a few kilobytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"zoo file {path} is not UTF-8 text ({error.reason} at byte {error.start})") from error
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(part for part in (error.context, error.problem) if part)
        raise ValueError(f"zoo file {path}{line}: YAML syntax error: {problem} (tabs cannot indent YAML; use spaces)"
                         if "\t" in text else f"zoo file {path}{line}: YAML syntax error: {problem}") from error
    except yaml.YAMLError as error:
        raise ValueError(f"zoo file {path}:{str(error).removeprefix('line ')}") from error
    except RecursionError as error:  # the YAML parser recurses once per nesting level: 100,000 '[' exhaust it
        raise ValueError(f"zoo file {path}: YAML nested too deeply to read; a zoo is a flat list of models") \
            from error


def _check_text(value, key: str, where: str) -> None:
    """A zoo string field: None, or a string of at most FIELD_MAX_CHARS[key] characters."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{where}: '{key}' must be a string, got {type(value).__name__} {str(value)[:60]!r}")
    if len(value) > FIELD_MAX_CHARS[key]:
        raise ValueError(f"{where}: '{key}' is {len(value):,} characters, more than {FIELD_MAX_CHARS[key]:,}; "
                         "shorten it")


def search_zoo(query: str | None, *, limit: int = 10, library: str | None = None, min_params: int | None = None,
               max_params: int | None = None, task: str = "image-classification") -> Zoo:
    """A zoo of the ``limit`` most downloaded Hub models for ``task`` matching ``query`` (None: any name).

    The search is :func:`lead_hub.models.search_hub_models` (gated and disabled repos left out; ``library``,
    ``min_params`` and ``max_params`` filter); each entry is pinned to the commit the search found. Raises
    LookupError when nothing matches.
    """
    from lead_hub.models import search_hub_models

    found = search_hub_models(task, library=library, limit=limit, min_params=min_params, max_params=max_params,
                              search=query)
    if not found:
        raise LookupError(f"no Hub model for task {task!r} matches search {query!r} (library={library}, "
                          f"min_params={min_params}, max_params={max_params}); widen the search")
    entries = tuple(ZooEntry(model_id=model.model_id, load_id=model.model_id, revision=model.sha,
                             params=model.num_parameters) for model in found)
    description = f"the {len(entries)} most downloaded {task} models on the Hub matching {query!r}"
    return Zoo(f"hub-search:{query or ''}", description, None, entries)


def resolve_local_dir(model_id: str, base_dir: Path) -> str:
    """``model_id`` with a relative ``local-dir:`` path made absolute against ``base_dir``; other ids unchanged."""
    if not model_id.startswith(LOCAL_DIR_PREFIX):
        return model_id
    folder = Path(model_id[len(LOCAL_DIR_PREFIX):]).expanduser()
    return LOCAL_DIR_PREFIX + str(folder if folder.is_absolute() else (base_dir / folder).resolve())


def _read_entry(raw: object, base_dir: Path, where: str) -> ZooEntry:
    if isinstance(raw, str):
        raw = {"id": raw}
    if not isinstance(raw, dict) or "id" not in raw:
        raise ValueError(f"{where}: expected a mapping with an 'id' (null when the model has no loadable copy), "
                         f"got {raw!r}")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(map(str, unknown))}; allowed: {sorted(_ENTRY_KEYS)}")
    model_id = raw["id"]
    if model_id is not None and (not isinstance(model_id, str) or not model_id.strip()):
        raise ValueError(f"{where}: 'id' must be a non-empty string or null, got {str(model_id)[:60]!r}")
    if isinstance(raw.get("revision"), (int, float)) and not isinstance(raw.get("revision"), bool):
        raw = {**raw, "revision": str(raw["revision"])}  # an unquoted tag such as 1.0 or 2
    for key in ("id", "revision", "label", "note"):
        _check_text(raw.get(key), key, where)
    if model_id is None and not raw.get("note"):
        raise ValueError(f"{where}: an entry without an id needs a 'note' saying why and where the weights are")
    params = raw.get("params")
    if params is not None and (not isinstance(params, int) or isinstance(params, bool) or not 0 < params <= MAX_PARAMS):
        raise ValueError(f"{where}: 'params' must be a positive integer up to {MAX_PARAMS:.0e} (the true parameter "
                         f"count), got {str(params)[:60]!r}")
    revision = raw.get("revision")
    return ZooEntry(
        model_id=model_id,
        load_id=None if model_id is None else resolve_local_dir(model_id, base_dir),
        revision=revision,
        label=raw.get("label"),
        params=params,
        note=raw.get("note"),
    )
