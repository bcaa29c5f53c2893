"""Seeded, stratified choice of sample indices: the one sampler used for metrics and fine-tuning alike."""

from __future__ import annotations

import numpy as np


def stratified_indices(
    labels: np.ndarray,
    *,
    samples_per_class: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices of a class-stratified random subset, sorted ascending.

    Exactly one of ``samples_per_class`` (take ``min(n_k, samples_per_class)`` from every class k, the paper's
    N/K) and ``max_samples`` (take about ``max_samples * n_k / N`` from class k, rounded by largest remainder so
    the total is exactly ``min(max_samples, N)`` and every class keeps at least one sample) may be given; with
    neither, every index is returned. The draw depends only on ``labels`` and ``seed``.
    """
    labels = np.asarray(labels)
    if samples_per_class is not None and max_samples is not None:
        raise ValueError("give samples_per_class or max_samples, not both")
    if samples_per_class is None and max_samples is None:
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    if samples_per_class is not None:
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be >= 1, got {samples_per_class}")
        quotas = np.minimum(counts, samples_per_class)
    else:
        if max_samples < len(classes):
            raise ValueError(f"max_samples={max_samples} is smaller than the number of classes ({len(classes)})")
        quotas = _proportional_quotas(counts, min(max_samples, len(labels)))
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == cls), size=quota, replace=False)
        for cls, quota in zip(classes, quotas)
    ]
    return np.sort(np.concatenate(chosen))


def _proportional_quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder split of ``total`` in proportion to ``counts``, each quota in [1, count]."""
    exact = counts * total / counts.sum()
    quotas = np.clip(np.floor(exact).astype(int), 1, counts)
    remainder_order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    position = 0
    while quotas.sum() < total:
        cls = remainder_order[position % len(counts)]
        if quotas[cls] < counts[cls]:
            quotas[cls] += 1
        position += 1
    while quotas.sum() > total:
        cls = int(np.argmax(quotas))
        quotas[cls] -= 1
    return quotas
