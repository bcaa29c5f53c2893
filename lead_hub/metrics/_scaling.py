"""Per-column standardisation ``(Z − μ) / σ`` with constant columns dropped, streamed over blocks of rows.

μ is the column mean and σ the population standard deviation, both accumulated in float64 in two passes over
blocks of rows (the sums, then the squared deviations from μ: the two-pass formula of ``numpy.std``).
Standardised rows are computed in float64 one block at a time and only then stored, in the dtype the caller
asks for, so float32 features are never copied whole into float64 (at N = 50k, D = 2048 that copy and each of
its temporaries are 0.8 GB, and cost seconds in page faults and memory traffic).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: Bytes of one float64 block: 1 MiB stays in the per-core cache between the cast, the subtraction and the
#: division (at N = 50k, D = 1843, 64-row blocks standardise twice as fast as 1024-row ones).
BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class ColumnScaling:
    """Column means ``mean`` and standard deviations ``std`` (float64) of the ``columns`` kept.

    ``columns`` are the indices of the non-constant input columns: a column is constant, and dropped, when
    σ ≤ 1e-12 · max(1, |μ|).
    """

    mean: np.ndarray
    std: np.ndarray
    columns: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> ColumnScaling:
        """μ and σ of every column of ``features`` (N×D, any real dtype), accumulated in float64."""
        blocks = list(_row_blocks(len(features), features.shape[1]))
        mean = sum(features[block].sum(axis=0, dtype=np.float64) for block in blocks) / len(features)
        std = np.sqrt(sum(_squared_deviations(features[block], mean) for block in blocks) / len(features))
        kept = std > 1e-12 * np.maximum(1.0, np.abs(mean))
        if not kept.any():
            raise ValueError("every feature dimension is constant: the model's features carry no information")
        return cls(mean[kept], std[kept], np.flatnonzero(kept))

    def blocks(self, features: np.ndarray, rows: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The standardised rows ``features[rows]`` (every row when None) in float64, one block after another."""
        num_rows = len(features) if rows is None else len(rows)
        for block in _row_blocks(num_rows, len(self.columns)):
            selected = features[block] if rows is None else features[rows[block]]
            standardized = np.take(selected, self.columns, axis=1).astype(np.float64)
            standardized -= self.mean
            standardized /= self.std
            yield standardized

    def transform(self, features: np.ndarray, rows: np.ndarray | None = None, dtype=np.float64) -> np.ndarray:
        """``(features[rows] − μ) / σ`` on the kept columns, computed in float64 and stored as ``dtype``."""
        num_rows = len(features) if rows is None else len(rows)
        standardized = np.empty((num_rows, len(self.columns)), dtype=dtype)
        start = 0
        for block in self.blocks(features, rows):
            standardized[start:start + len(block)] = block
            start += len(block)
        return standardized


def standardize_columns(features: np.ndarray) -> np.ndarray:
    """``(Z − mean) / std`` per column in float64, constant columns dropped (:class:`ColumnScaling`)."""
    return ColumnScaling.fit(features).transform(features)


def _row_blocks(num_rows: int, num_columns: int) -> Iterator[slice]:
    step = max(16, BLOCK_BYTES // (8 * max(1, num_columns)))
    return (slice(start, min(start + step, num_rows)) for start in range(0, num_rows, step))


def _squared_deviations(block: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Σ over the rows of ``block`` of (z − μ)², per column, in float64."""
    deviations = block.astype(np.float64)
    deviations -= mean
    np.square(deviations, out=deviations)
    return deviations.sum(axis=0)
