"""Transferability metrics behind one registry: ``metrics.get("lead")(features, labels, **options)``.

Every public module of this package (a name without a leading underscore) defines one metric and registers it
on import; importing the package imports them all, so adding a metric needs no edit here.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from lead_hub.metrics._options import check_options, option_names
from lead_hub.metrics._registry import MetricInfo, available, describe, get, info, register, score_model_set
from lead_hub.metrics._validation import CheckedInputs, MetricNotApplicable, check_inputs

for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "CheckedInputs",
    "MetricInfo",
    "MetricNotApplicable",
    "available",
    "check_inputs",
    "check_options",
    "describe",
    "get",
    "info",
    "option_names",
    "register",
    "score_model_set",
]
