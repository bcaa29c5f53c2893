"""Check a metric's options before any model is loaded: unknown keys by name, bad values on a small problem.

The options a metric accepts are its keyword-only parameters (other than ``source_logits``, the per-sample arrays
and ``return_diagnostics``) or, for a metric taking ``**options``, the fields of the frozen dataclass named
``<Name>Options`` in its module (``LeadOptions`` for ``lead``). Values are checked by scoring a small seeded
synthetic problem (3 classes of 40 samples, 8 feature dimensions, 5 source logits, and 1..N for each per-sample
array the metric declares) with and without the options:
an error only with them is the options' fault. That costs well under a second and catches what only the metric
knows (``rate_scale="bogus"``, ``rate_constant="bogus"``), before minutes of feature extraction.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from lead_hub.metrics._registry import MetricInfo, info
from lead_hub.metrics._validation import MetricNotApplicable

_NOT_OPTIONS = ("source_logits", "return_diagnostics")
_PROBE_CLASSES, _PROBE_PER_CLASS, _PROBE_DIMS, _PROBE_LOGITS = 3, 40, 8, 5


def option_names(name: str) -> list[str]:
    """The option keys metric ``name`` accepts, in declaration order."""
    entry = info(name)
    parameters = inspect.signature(entry.function).parameters.values()
    keys = [parameter.name for parameter in parameters if parameter.kind is inspect.Parameter.KEYWORD_ONLY
            and parameter.name not in (*_NOT_OPTIONS, *getattr(entry, "sample_arrays", ()))]
    options_class = _options_class(entry)
    if options_class is not None:
        keys += [field.name for field in dataclasses.fields(options_class) if field.name not in keys]
    return keys


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ValueError naming the metric, the offending option and the valid keys when ``options`` cannot work."""
    entry = info(name)
    valid = option_names(name)
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise ValueError(f"{entry.name}: unknown option(s) {', '.join(map(repr, unknown))}; the options of "
                         f"{entry.name} are {', '.join(valid) or '(none)'}")
    if not options:
        return
    features, labels, logits = _probe_problem()
    if _probe_error(entry, features, labels, logits, {}) is not None:
        return  # the metric cannot score the probe at all: its options are checked when it runs on the data
    error = _probe_error(entry, features, labels, logits, dict(options))
    if error is not None:
        raise ValueError(f"{entry.name}: the options {dict(options)} are not valid: {error}") from error


def _options_class(entry: MetricInfo) -> type | None:
    """The ``<Name>Options`` dataclass of a metric taking ``**options``, or None."""
    parameters = inspect.signature(entry.function).parameters.values()
    if not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    module = sys.modules.get(entry.function.__module__)
    candidate = getattr(module, f"{entry.name.replace('_', ' ').title().replace(' ', '')}Options", None)
    return candidate if dataclasses.is_dataclass(candidate) else None


def _probe_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separable seeded features, their labels and source logits."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(_PROBE_CLASSES), _PROBE_PER_CLASS)
    features = rng.normal(size=(len(labels), _PROBE_DIMS)) + labels[:, None]
    return features, labels, rng.normal(size=(len(labels), _PROBE_LOGITS))


def _probe_error(entry: MetricInfo, features, labels, logits, options: dict) -> Exception | None:
    """The error scoring the probe raises with ``options`` (None if it scores or the metric does not apply)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arrays = {name: np.arange(1.0, len(labels) + 1) for name in getattr(entry, "sample_arrays", ())}
            raw = entry.function(features, labels, source_logits=logits, **arrays, **options)
            if entry.combine is not None:
                entry.combine({"probe": raw})
    except MetricNotApplicable:
        return None
    except Exception as error:  # noqa: BLE001 - any error of the metric is reported to the caller
        return error
    return None
