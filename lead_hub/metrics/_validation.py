"""Input checks at the metric boundary: metrics receive float64 features (float32 on request), labels 0..K-1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class MetricNotApplicable(ValueError):
    """The metric cannot score this model (e.g. it needs source logits and the model has no classifier head)."""


@dataclass(frozen=True)
class CheckedInputs:
    """Validated metric inputs.

    ``features`` is N×D float64 (float32 features stay float32 when the caller asks for ``keep_float32``),
    ``labels`` N int64 in 0..K-1 (remapped in sorted order of the given labels),
    ``source_logits`` N×C_s float64 or None, ``num_classes`` K.
    """

    features: np.ndarray
    labels: np.ndarray
    source_logits: np.ndarray | None
    num_classes: int


def check_inputs(
    features,
    labels,
    source_logits=None,
    *,
    metric: str,
    needs_source_logits: bool = False,
    min_samples_per_class: int = 2,
    keep_float32: bool = False,
) -> CheckedInputs:
    """Validate and normalise the inputs of ``metric``; raise ValueError naming the problem and the fix.

    ``keep_float32`` spares the float64 copy of float32 features, for a metric that accumulates in float64 itself.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"{metric}: features must be a 2-D array N×D, got shape {features.shape}")
    if not np.issubdtype(features.dtype, np.number) or np.iscomplexobj(features):
        raise ValueError(f"{metric}: features must be real numbers, got dtype {features.dtype}")
    if not (keep_float32 and features.dtype == np.float32):
        features = features.astype(np.float64, copy=False)
    if not np.isfinite(features).all():
        bad_rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
        raise ValueError(f"{metric}: features hold NaN or inf in {len(bad_rows)} rows (first: {bad_rows[:5].tolist()}); "
                         "check the feature extraction (mixed-precision overflow?) or drop those samples")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(features):
        raise ValueError(f"{metric}: labels must be a 1-D array with one label per feature row "
                         f"({len(features)}), got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise ValueError(f"{metric}: labels must be integers, got non-integer floats")
    elif labels.dtype.kind not in "iub":
        raise ValueError(f"{metric}: labels must be integers, got dtype {labels.dtype}; encode string labels first")
    _, labels, counts = np.unique(labels, return_inverse=True, return_counts=True)
    labels = labels.astype(np.int64)
    if len(counts) < 2:
        raise ValueError(f"{metric}: needs at least 2 classes, got {len(counts)}")
    if counts.min() < min_samples_per_class:
        lonely = np.flatnonzero(counts < min_samples_per_class)
        raise ValueError(f"{metric}: every class needs at least {min_samples_per_class} samples; classes (after "
                         f"remapping to 0..K-1) {lonely[:10].tolist()} have fewer; sample more per class or drop them")
    if source_logits is not None:
        source_logits = np.asarray(source_logits, dtype=np.float64)
        if source_logits.ndim != 2 or len(source_logits) != len(features):
            raise ValueError(f"{metric}: source_logits must be N×C_s with N={len(features)}, "
                             f"got shape {source_logits.shape}")
        if not np.isfinite(source_logits).all():
            raise ValueError(f"{metric}: source_logits hold NaN or inf")
    elif needs_source_logits:
        raise MetricNotApplicable(f"{metric} needs the source model's logits (source_logits=N×C_s); this model has no "
                                  "classifier head, so the metric is not applicable to it")
    return CheckedInputs(features, labels, source_logits, len(counts))
