"""PARC (Bolya et al., NeurIPS 2021): Pairwise Annotation Representation Comparison.

Project the features on their top ``pca_dims`` = 32 principal axes, standardise every projected dimension, and
compare two N×N dissimilarity matrices over the samples: 1 − corr(f_i, f_j) (Pearson correlation between the
32-dim rows) and 1 − corr(onehot(y_i), onehot(y_j)). PARC = 100 × Spearman correlation between their upper
triangles (i < j). Higher is better, no sign change.

The feature correlations depend on the signs of the principal axes, which PCA leaves arbitrary: each axis is
signed so that its largest-magnitude loading is positive (the convention of ``sklearn.decomposition.PCA``).
The label dissimilarity takes two values (0 within a class, 1 + 1/(K−1) across classes), so the Spearman
correlation equals the Pearson correlation between the average ranks of the feature dissimilarities and the
indicator "different class"; it is computed that way, with no label matrix. (The reference builds the label
matrix with ``np.corrcoef``, whose rounding noise, 0 against 2e-16, splits the tied within-class pairs.)

Memory: PARC is defined on N×N matrices: about 20·N² bytes at the peak (the N×N correlations, then the N²/2 pairs,
their ranks and the rank order). Above ``max_samples`` (default 5,000, ≈ 0.5 GB) it is computed on a class-stratified seeded
subsample of ``max_samples`` rows (``lead_hub.sampling.stratified_indices``, PCA fitted on the subsample as in the
PED/ETran reference code, which caps at 15,000) and a :class:`SubsampledWarning` says so;
``max_samples=None`` uses every sample. ``seed`` drives the subsample and the randomized PCA.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata

from lead_hub.metrics._linalg import principal_axes
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs
from lead_hub.sampling import stratified_indices

PCA_DIMS = 32
MAX_SAMPLES = 5_000


class SubsampledWarning(UserWarning):
    """A metric was computed on a subsample of the given rows (to bound its memory); the message says how many."""


@register(
    "parc",
    summary="How closely the images that look alike to the model share a label",
    reference="Bolya et al., Scalable Diverse Model Selection for Accessible Transfer Learning, NeurIPS 2021",
)
def parc(features, labels, *, source_logits=None, seed: int = 0, pca_dims: int = PCA_DIMS,
         max_samples: int | None = MAX_SAMPLES) -> float:
    """PARC score (see the module docstring)."""
    checked = check_inputs(features, labels, source_logits, metric="parc")
    features, labels = checked.features, checked.labels
    if max_samples is not None and len(labels) > max_samples:
        warnings.warn(f"parc: N={len(labels)} > max_samples={max_samples}; scored on a class-stratified subsample "
                      f"of {max_samples} rows (seed={seed}); pass max_samples=None to use all (memory ~20·N² bytes)",
                      SubsampledWarning, stacklevel=2)
        chosen = stratified_indices(labels, max_samples=max_samples, seed=seed)
        features, labels = features[chosen], labels[chosen]
    axes = principal_axes(features, count=pca_dims, seed=seed)
    if len(axes.variances) < 2:
        raise ValueError("parc: the features have fewer than 2 directions of nonzero variance; "
                         "sample correlations over them are undefined")
    return parc_of_projection(axes.project(features), labels)


def parc_of_projection(projected: np.ndarray, labels: np.ndarray) -> float:
    """PARC from already PCA-projected features (N×P, every column non-constant): standardise each column, then
    100 × Spearman correlation of the sample dissimilarities with the label dissimilarities (module docstring).
    ``parc`` calls it with the exact principal axes; the reference's randomized PCA can be fed in to compare."""
    projected = np.asarray(projected, dtype=np.float64)
    projected = (projected - projected.mean(axis=0)) / projected.std(axis=0)
    rows = projected - projected.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1)
    if np.any(norms == 0):
        raise ValueError("parc: some samples have identical values on every standardised PCA dimension, so their "
                         "correlation with other samples is undefined")
    rows /= norms[:, None]
    upper = np.triu_indices(len(rows), k=1)
    feature_dissimilarity = 1.0 - (rows @ rows.T)[upper]
    different_class = (np.asarray(labels)[:, None] != np.asarray(labels)[None, :])[upper]
    ranks = rankdata(feature_dissimilarity)
    return float(100.0 * np.corrcoef(ranks, different_class)[0, 1])
