"""Seeded pseudo-random keys that travel with a sample, not with its position in the array.

Sub-sampling and fold assignment keyed this way make a metric invariant to permuting the samples and to
relabelling the classes, which a positional ``rng.permutation`` is not. Two kinds of key:

* :func:`id_keys` hash a sample's stable identity (its row in the source split): they cannot move with the
  features' round-off, so choices made by them are exact functions of the sample set.
* :func:`content_keys` hash the sample's features, for callers that have no identities; a feature perturbation
  of relative size ε moves a key by about 10²·ε·√D, so a choice between two samples whose keys are that close
  can flip under round-off (another batch size, device or BLAS).
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


_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def id_keys(sample_ids, seed: int) -> np.ndarray:
    """One key in [0, 1) per sample: the SplitMix64 finaliser of ``id + (seed mixed by SplitMix64)``, top 53 bits.

    ``sample_ids`` are N distinct integers (any integer dtype, or whole floats; negative ids are read modulo 2⁶⁴). SplitMix64
    (Steele, Lea & Flood 2014) is a bijective 64-bit mixer whose outputs pass BigCrush; it is written out here
    because it vectorises over numpy uint64 arrays in a few operations, where hashlib or a per-id
    ``numpy.random.default_rng`` would cost a Python call per sample. Distinct ids give distinct keys.
    """
    ids = np.asarray(sample_ids)
    if ids.dtype.kind == "f" and np.isfinite(ids).all() and (ids == np.round(ids)).all():
        ids = ids.astype(np.int64)  # whole numbers stored as floats, as labels are accepted
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"sample_ids must be a 1-D array of integers (e.g. each row's index in its source split), "
                         f"got shape {ids.shape} and dtype {ids.dtype}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("sample_ids must be distinct: each identifies one sample (e.g. its row in the source split); "
                         "duplicates would make the choice of samples depend on their order")
    mixed_seed = _splitmix64(np.array([int(seed) % 2**64], dtype=np.uint64))
    hashed = _splitmix64(ids.astype(np.int64, copy=False).view(np.uint64) + mixed_seed)
    return (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's step and finaliser on a uint64 array (arithmetic modulo 2⁶⁴)."""
    z = values + _GOLDEN_GAMMA
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


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
