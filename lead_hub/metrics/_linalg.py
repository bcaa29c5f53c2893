"""Numerical pieces shared by the peer metrics, all in float64.

Scatter and covariance matrices are accumulated over blocks of rows, so building one never copies the N×D array.
Eigenvectors come from the D×D covariance (or the N×N Gram matrix when N < D): a full ``eigh`` where many
components are wanted, otherwise a seeded randomized subspace iteration, whose cost is a few D×D×k products
instead of the O(D³) tridiagonalisation. Every eigenvector is signed so that its largest-magnitude entry is
positive, which makes projections reproducible. Components whose variance is below
``max(N, D) · eps · largest variance`` are numerical noise (constant or all-zero feature dimensions produce them)
and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy import sparse

ROWS_PER_BLOCK = 4096
# Below this many wanted eigenvectors (relative to the matrix size) the randomized solver is used.
_RANDOMIZED_FRACTION = 0.25
_POWER_ITERATIONS = 8


def rank_tolerance(num_samples: int, num_features: int) -> float:
    """Relative eigenvalue threshold under which a variance is rounding noise (as ``numpy.linalg.matrix_rank``)."""
    return max(num_samples, num_features) * np.finfo(np.float64).eps


def one_hot(labels: np.ndarray, num_classes: int) -> sparse.csr_array:
    """The N×K sparse indicator matrix of ``labels`` (0..K-1)."""
    rows = np.arange(len(labels))
    return sparse.csr_array((np.ones(len(labels)), (rows, labels)), shape=(len(labels), num_classes))


@dataclass(frozen=True)
class ClassStatistics:
    """Per-class sample counts n_k (K) and means μ_k (K×D)."""

    counts: np.ndarray
    means: np.ndarray

    @property
    def priors(self) -> np.ndarray:
        """Class frequencies n_k / N."""
        return self.counts / self.counts.sum()


def class_statistics(features: np.ndarray, labels: np.ndarray, num_classes: int) -> ClassStatistics:
    """Counts and means of every class, in one sparse product."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    sums = one_hot(labels, num_classes).T @ features
    return ClassStatistics(counts, sums / counts[:, None])


def constant_columns(features: np.ndarray) -> np.ndarray:
    """Boolean mask of the feature dimensions that hold one value in every sample (all-zero ones included)."""
    return np.all(features == features[:1], axis=0)


def column_centre(features: np.ndarray) -> np.ndarray:
    """The column means, except that constant columns get their exact value, so centring makes them exactly 0."""
    centre = features.mean(axis=0)
    constant = constant_columns(features)
    centre[constant] = features[0, constant]
    return centre


def scatter(features: np.ndarray, centres: np.ndarray | None, labels: np.ndarray | None = None) -> np.ndarray:
    """Σ_i (x_i − c_i)(x_i − c_i)ᵀ, D×D, accumulated over row blocks.

    ``c_i`` is 0 when ``centres`` is None (the Gram matrix FᵀF), ``centres`` (a D-vector) for every row, or
    ``centres[labels[i]]`` when ``labels`` is given (``centres`` K×D, e.g. class means: the within-class scatter).
    """
    num_features = features.shape[1]
    total = np.zeros((num_features, num_features))
    for start in range(0, len(features), ROWS_PER_BLOCK):
        stop = start + ROWS_PER_BLOCK
        block = features[start:stop]
        if centres is not None:
            block = block - (centres if labels is None else centres[labels[start:stop]])
        total += block.T @ block
    return total


def within_class_covariance(features: np.ndarray, labels: np.ndarray, stats: ClassStatistics) -> np.ndarray:
    """S_w = Σ_k (n_k/N) Cov_k = (1/N) Σ_i (x_i − μ_{y_i})(x_i − μ_{y_i})ᵀ (biased per-class covariances)."""
    return scatter(features, stats.means, labels) / len(features)


def _signed(vectors: np.ndarray) -> np.ndarray:
    """Columns flipped so that the entry of largest magnitude in each is positive."""
    pivots = np.abs(vectors).argmax(axis=0)
    signs = np.sign(vectors[pivots, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def top_eigenpairs(symmetric: np.ndarray, count: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenvalues (descending) and their unit eigenvectors (columns) of a PSD matrix.

    Full ``eigh`` when ``count`` is a sizeable fraction of the matrix, else seeded randomized subspace iteration
    (Halko et al. 2011: Gaussian start of ``count + max(10, count/2)`` columns, 8 QR-orthonormalised power
    iterations, Rayleigh-Ritz), whose leading eigenpairs agree with ``eigh`` to rounding on decaying spectra.
    """
    size = symmetric.shape[0]
    count = min(count, size)
    block = min(size, count + max(10, count // 2))
    if block >= _RANDOMIZED_FRACTION * size:
        values, vectors = np.linalg.eigh(symmetric)
        order = np.argsort(values)[::-1][:count]
        return np.maximum(values[order], 0.0), _signed(vectors[:, order])
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(symmetric @ rng.standard_normal((size, block)))
    for _ in range(_POWER_ITERATIONS):
        basis, _ = np.linalg.qr(symmetric @ basis)
    projected = basis.T @ symmetric @ basis
    values, vectors = np.linalg.eigh((projected + projected.T) / 2)
    order = np.argsort(values)[::-1][:count]
    return np.maximum(values[order], 0.0), _signed(basis @ vectors[:, order])


def largest_eigenvalue(symmetric: np.ndarray, *, seed: int) -> float:
    """The largest eigenvalue of a PSD matrix (randomized subspace iteration, see :func:`top_eigenpairs`)."""
    return float(top_eigenpairs(symmetric, 1, seed=seed)[0][0])


@dataclass(frozen=True)
class PrincipalAxes:
    """PCA of a feature matrix: ``axes`` D×k (unit columns), their ``variances`` (k, descending, 1/N normalised),
    the ``total_variance`` (trace of the covariance) and the ``mean`` to subtract before projecting."""

    mean: np.ndarray
    axes: np.ndarray
    variances: np.ndarray
    total_variance: float

    def project(self, features: np.ndarray) -> np.ndarray:
        """N×k coordinates of ``features`` on the axes."""
        return features @ self.axes - self.mean @ self.axes


def principal_axes(
    features: np.ndarray,
    *,
    count: int | None = None,
    variance_fraction: float | None = None,
    seed: int = 0,
) -> PrincipalAxes:
    """PCA keeping ``count`` axes, or the fewest axes whose variance reaches ``variance_fraction`` of the total.

    Works on the D×D covariance, or on the N×N Gram matrix of the centred rows when N < D (same nonzero spectrum).
    A variance fraction needs the whole spectrum, so it uses a full ``eigh`` (about as fast as eigenvalues alone
    followed by the wanted eigenvectors). Fewer axes than asked come back when the features have lower numerical rank.
    """
    if (count is None) == (variance_fraction is None):
        raise ValueError("give exactly one of count and variance_fraction")
    num_samples, num_features = features.shape
    mean = column_centre(features)
    if num_samples < num_features:
        centred = features - mean
        matrix = centred @ centred.T / num_samples
    else:
        centred = None
        matrix = scatter(features, mean) / num_samples
    total_variance = float(np.trace(matrix))
    values, vectors = top_eigenpairs(matrix, len(matrix) if count is None else count, seed=seed)
    if count is None:
        reached = np.flatnonzero(np.cumsum(values) >= variance_fraction * total_variance)
        count = reached[0] + 1 if len(reached) else len(values)
        values, vectors = values[:count], vectors[:, :count]
    keep = values > rank_tolerance(num_samples, num_features) * values.max(initial=0.0)
    values, vectors = values[keep], vectors[:, keep]
    if centred is not None:
        vectors = _signed(centred.T @ vectors / np.sqrt(values * num_samples))
    return PrincipalAxes(mean, vectors, values, total_variance)


def ledoit_wolf_shrinkage(features: np.ndarray, centre: np.ndarray, covariance: np.ndarray) -> float:
    """Ledoit–Wolf (2004) shrinkage intensity α of the 1/N covariance S towards μ·I, μ = tr(S)/D.

    With centred rows x_i: δ = ‖S − μI‖²_F / D, β = (Σ_i ‖x_i‖⁴ / N − ‖S‖²_F) / (D·N), α = min(β, δ) / δ
    (0 when δ = 0): the estimator of ``sklearn.covariance.ledoit_wolf_shrinkage``, from S and the row norms.
    """
    num_samples, num_features = features.shape
    fourth_moment = 0.0
    for start in range(0, num_samples, ROWS_PER_BLOCK):
        squared_norms = np.sum((features[start:start + ROWS_PER_BLOCK] - centre) ** 2, axis=1)
        fourth_moment += float(squared_norms @ squared_norms)
    mu = np.trace(covariance) / num_features
    frobenius = float(np.sum(covariance**2))
    delta = (frobenius - 2 * mu * np.trace(covariance) + num_features * mu**2) / num_features
    beta = (fourth_moment / num_samples - frobenius) / (num_features * num_samples)
    return 0.0 if delta == 0 else min(beta, delta) / delta


@dataclass(frozen=True)
class ShrinkageLDA:
    """A fitted linear discriminant with shrunk within-class covariance Σ_λ = (1−λ)S_w + λ·(tr S_w / D)·I.

    ``logits(x) = (x − centre)ᵀ Σ_λ⁻¹ μ̃_k − ½ μ̃_kᵀ Σ_λ⁻¹ μ̃_k + log π_k`` with μ̃_k = μ_k − centre.
    """

    centre: np.ndarray
    weights: np.ndarray
    intercepts: np.ndarray
    shrinkage: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        """N×K discriminant scores; their softmax is the class posterior."""
        return features @ self.weights - self.centre @ self.weights + self.intercepts


def fit_shrinkage_lda(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    shrinkage: float | None = None,
    seed: int = 0,
) -> ShrinkageLDA:
    """Fit the SFDA/ETran discriminant; ``shrinkage=None`` picks λ = max(exp(−5·λ_max(S_w)), 1e-10) (SFDA).

    λ_max is the largest eigenvalue of S_w (randomized subspace iteration with ``seed``; the SFDA reference
    approximates it with 3 power steps). The solve uses a Cholesky factor of Σ_λ. Because the reference's
    generalised eigenvectors V satisfy VVᵀ = Σ_λ⁻¹, its ``coef_ = μ V Vᵀ`` is exactly μ Σ_λ⁻¹, computed here
    directly. Constant dimensions carry exactly zero weight.
    """
    stats = class_statistics(features, labels, num_classes)
    within = within_class_covariance(features, labels, stats)
    num_features = features.shape[1]
    trace = float(np.trace(within))
    if trace <= 0:
        raise ValueError("features have no within-class variance (every class is a single repeated point); "
                         "a discriminant cannot be fitted")
    if shrinkage is None:
        shrinkage = max(np.exp(-5.0 * largest_eigenvalue(within, seed=seed)), 1e-10)
    shrunk = (1.0 - shrinkage) * within
    shrunk.flat[:: num_features + 1] += shrinkage * trace / num_features
    centre = column_centre(features)
    centred_means = stats.means - centre
    centred_means[:, constant_columns(features)] = 0.0
    weights = scipy.linalg.cho_solve(scipy.linalg.cho_factor(shrunk), centred_means.T)
    intercepts = -0.5 * np.sum(centred_means.T * weights, axis=0) + np.log(stats.priors)
    return ShrinkageLDA(centre, weights, intercepts, float(shrinkage))


def true_class_values(matrix: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``matrix[i, labels[i]]`` for every row i."""
    return matrix[np.arange(len(labels)), labels]


def expected_empirical_prediction(posteriors: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """LEEP's expected empirical prediction of the true class, for every sample.

    With soft assignments θ (N×Z) to source classes or mixture components: P(y, z) = (1/N) Σ_i 1[y_i = y] θ_z(x_i),
    P(y | z) = P(y, z) / P(z), and the prediction for sample i is Σ_z P(y_i | z) θ_z(x_i). Components no sample
    uses (P(z) = 0) contribute nothing.
    """
    joint = (one_hot(labels, num_classes).T @ posteriors) / len(labels)
    marginal = joint.sum(axis=0)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    return true_class_values(posteriors @ conditional.T, labels)
