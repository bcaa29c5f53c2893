"""One registry of transferability metrics and one calling convention for all of them.

Every metric is a function ``metric(features, labels, *, source_logits=None, **options) -> float`` where
higher means "predicted to fine-tune better". A metric whose value is relative to the model set (ETran's
min-max) returns raw parts from the per-model function and registers ``combine`` to turn
``{model: parts}`` into ``{model: score}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

_REGISTRY: dict[str, "MetricInfo"] = {}


@dataclass(frozen=True)
class MetricInfo:
    """What the registry knows of a metric.

    ``needs_source_logits``: the metric is not applicable to headless backbones.
    ``combine``: for set-relative metrics, maps ``{model: raw parts}`` to ``{model: score}``; None otherwise.
    ``orientation``: what a higher score means, and the sign convention when the metric's raw value is negated.
    ``sample_arrays``: names of the optional per-sample keyword arrays the metric accepts (each N long, sliced with
    the feature rows by the caller), e.g. ``("sample_ids", "ntk_sq_norms")`` for LEAD; callers pass only these.
    """

    name: str
    function: Callable[..., Any]
    summary: str
    reference: str
    needs_source_logits: bool = False
    combine: Callable[[dict[str, Any]], dict[str, float]] | None = None
    aliases: tuple[str, ...] = field(default=())
    orientation: str = "higher is better"
    sample_arrays: tuple[str, ...] = ()


def register(
    name: str,
    *,
    summary: str,
    reference: str,
    needs_source_logits: bool = False,
    combine: Callable[[dict[str, Any]], dict[str, float]] | None = None,
    aliases: tuple[str, ...] = (),
    orientation: str = "higher is better",
    sample_arrays: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding a metric function to the registry under ``name`` (lower case) and its aliases."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        info = MetricInfo(name, function, summary, reference, needs_source_logits, combine, aliases, orientation,
                          tuple(sample_arrays))
        for key in (name, *aliases):
            if key.lower() in _REGISTRY:
                raise ValueError(f"metric name {key!r} is registered twice")
            _REGISTRY[key.lower()] = info
        return function

    return decorate


def info(name: str) -> MetricInfo:
    """The registry entry of ``name`` (case-insensitive); KeyError lists the known names."""
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {', '.join(available())}") from None


def get(name: str) -> Callable[..., Any]:
    """The metric function registered as ``name``."""
    return info(name).function


def available() -> list[str]:
    """Primary names of every registered metric, sorted."""
    return sorted({entry.name for entry in _REGISTRY.values()})


def describe() -> list[dict[str, Any]]:
    """One row per registered metric: name, aliases, inputs it needs, orientation, set-relative or not, summary,
    reference. The rows behind ``lead-hub metrics``."""
    rows = []
    for name in available():
        entry = info(name)
        rows.append({
            "name": entry.name,
            "aliases": list(entry.aliases),
            "needs": "features + source logits" if entry.needs_source_logits else "features only",
            "orientation": entry.orientation,
            "set_relative": entry.combine is not None,
            "summary": entry.summary,
            "reference": entry.reference,
        })
    return rows


def score_model_set(name: str, inputs: dict[str, dict[str, Any]], **options: Any) -> dict[str, float]:
    """Score several models with one metric and identical options.

    ``inputs`` maps a model name to keyword arguments of the metric (``features``, ``labels``, optionally
    ``source_logits``). Set-relative metrics are combined across the set; others are scored independently.
    """
    entry = info(name)
    raw = {model: entry.function(**arrays, **options) for model, arrays in inputs.items()}
    return entry.combine(raw) if entry.combine is not None else {model: float(value) for model, value in raw.items()}
