"""Transferability metrics behind one registry: ``metrics.get("lead")(features, labels, **options)``."""

from lead_hub.metrics._registry import MetricInfo, available, get, info, register, score_model_set
from lead_hub.metrics._validation import CheckedInputs, MetricNotApplicable, check_inputs
from lead_hub.metrics import lead  # noqa: F401  (registers "lead")

__all__ = [
    "CheckedInputs",
    "MetricInfo",
    "MetricNotApplicable",
    "available",
    "check_inputs",
    "get",
    "info",
    "register",
    "score_model_set",
]
