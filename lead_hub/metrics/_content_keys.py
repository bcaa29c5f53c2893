"""Seeded pseudo-random keys that depend on a sample's content, not on its position in the array.

Sub-sampling and fold assignment keyed this way make a metric invariant to permuting the samples and to
relabelling the classes, which a positional ``rng.permutation`` is not.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def content_keys(standardized: np.ndarray | Iterable[np.ndarray], seed: int) -> np.ndarray:
    """One key in [0, 1) per row: ``frac(10² · ⟨z, r⟩)`` for rows z of column-standardised features and
    r ~ N(0, I) drawn from ``seed``. Rows that differ get keys that look independent and uniform; equal rows get equal keys.
    The factor 10² keeps keys stable under float32 rounding of the features (a relative perturbation of 1e-7
    moves a key by about 1e-4).
    ``standardized`` is the N×D float64 array, or its rows as consecutive float64 blocks
    (``ColumnScaling.blocks``), so the features need not be standardised whole in float64.
    Constant columns must be dropped first, so that padding a model's features does not move the keys.
    """
    blocks = [standardized] if isinstance(standardized, np.ndarray) else standardized
    keys, direction = [], None
    for block in blocks:
        if direction is None:
            direction = np.random.default_rng([seed, 7919]).standard_normal(block.shape[1])
        projection = 1e2 * (block @ direction)
        keys.append(projection - np.floor(projection))
    return np.concatenate(keys)


def spread_over_folds(labels: np.ndarray, keys: np.ndarray, folds: int) -> np.ndarray:
    """Fold index 0..folds−1 of every sample: within each class, members sorted by key are dealt round-robin."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    fold_of_sample = np.empty(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        fold_of_sample[members[np.argsort(keys[members], kind="stable")]] = np.arange(len(members)) % folds
    return fold_of_sample


def first_by_key(members: np.ndarray, keys: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` indices of ``members`` with the smallest keys (all when fewer), sorted by key."""
    return members[np.argsort(keys[members], kind="stable")[:count]]
