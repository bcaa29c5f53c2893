"""LEAD step 2: per-class mean NTK eigenvalue λ̄_k of a random MLP head, in closed form.

The head h maps features z (D) through hidden ReLU layers of ``widths`` to K outputs,
``a_0 = z``, ``a_l = relu(W_l a_{l−1} + b_l)``, ``F = W_out a_L + b_out``, with He-normal weights
(N(0, 2 / fan_in)) and zero biases, drawn from ``numpy.random.default_rng([seed, D])`` so every model with the
same feature dimension gets the identical head.

Following the pNTK of Mohamadi & Sutherland, the per-sample gradient is that of the summed logit
``s(x) = (1/√K) Σ_j F_j(x)`` w.r.t. every head parameter, g_x = ∇_θ s(x). For a class with S samples the
empirical NTK is the S×S Gram matrix G_ij = g_iᵀ g_j, and its mean eigenvalue is exactly
``λ̄ = trace(G) / S = (1/S) Σ_i ‖g_i‖²``: no eigendecomposition and no S×S matrix is needed.

‖g‖² itself has a closed form from one forward pass. Back-propagating δ_out = ∂s/∂F = 1/√K (all K entries),
``δ_L = (W_outᵀ δ_out) ⊙ 1[h_L > 0]`` and ``δ_{l−1} = (W_lᵀ δ_l) ⊙ 1[h_{l−1} > 0]``; a weight matrix's gradient is
the outer product δ_l a_{l−1}ᵀ, whose squared Frobenius norm is ‖δ_l‖²‖a_{l−1}‖², and a bias's is ‖δ_l‖². So

    ‖g‖² = (‖a_L‖² + 1) · ‖δ_out‖² + Σ_l ‖δ_l‖² (‖a_{l−1}‖² + 1),    with ‖δ_out‖² = 1.

Everything is vectorised over samples in float64, blocks of samples side by side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from lead_hub.metrics._content_keys import first_by_key
from lead_hub.metrics._parallel import blas_workers, map_blas_tasks


@dataclass(frozen=True)
class RandomHead:
    """Weights of the random MLP head: ``hidden[l]`` is width_l × width_{l−1}; ``output`` is K × width_L."""

    hidden: tuple[np.ndarray, ...]
    output: np.ndarray


@functools.lru_cache(maxsize=8)
def random_head(input_dim: int, widths: tuple[int, ...], num_outputs: int, seed: int) -> RandomHead:
    """He-normal (fan-in) weights, zero biases; identical for every model with the same ``input_dim``.

    Cached (the arrays are read-only): every model of a ranking with the same D reuses one draw."""
    if any(width < 1 for width in widths):
        raise ValueError(f"head widths must be positive, got {widths}")
    rng = np.random.default_rng([seed, input_dim])
    fan_ins = (input_dim, *widths)
    hidden = tuple(rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)
                   for fan_in, fan_out in zip(fan_ins[:-1], fan_ins[1:]))
    output = rng.standard_normal((num_outputs, fan_ins[-1])) * np.sqrt(2.0 / fan_ins[-1])
    for weights in (*hidden, output):
        weights.flags.writeable = False
    return RandomHead(hidden, output)


def per_sample_gradient_sq_norms(head: RandomHead, features: np.ndarray) -> np.ndarray:
    """‖∇_θ (1/√K) Σ_j F_j(x)‖² for every row x of ``features`` (N×D), as an N-vector (float64)."""
    activations = [np.asarray(features, dtype=np.float64)]
    masks = []
    for weights in head.hidden:
        pre_activation = activations[-1] @ weights.T
        masks.append(pre_activation > 0)
        activations.append(np.maximum(pre_activation, 0.0))
    num_outputs = head.output.shape[0]
    squared_norm = (activations[-1] ** 2).sum(axis=1) + 1.0
    delta = np.broadcast_to(head.output.sum(axis=0) / np.sqrt(num_outputs), activations[-1].shape) * masks[-1]
    for layer in range(len(head.hidden) - 1, -1, -1):
        input_norm = (activations[layer] ** 2).sum(axis=1) + 1.0
        squared_norm += (delta ** 2).sum(axis=1) * input_norm
        if layer > 0:
            delta = (delta @ head.hidden[layer]) * masks[layer - 1]
    return squared_norm


def ntk_samples(labels: np.ndarray, num_classes: int, *, keys: np.ndarray,
                samples_per_class: int = 64) -> list[np.ndarray]:
    """For k = 0..K−1 the indices of the ``samples_per_class`` samples of class k (all if fewer) with the smallest
    content ``keys`` (``_content_keys``), so the choice does not depend on sample order."""
    return [first_by_key(np.flatnonzero(labels == cls), keys, samples_per_class) for cls in range(num_classes)]


def class_mean_eigenvalues(head: RandomHead, features: np.ndarray, class_sizes: list[int]) -> np.ndarray:
    """λ̄_k for k = 0..K−1: the mean of ‖g_i‖² over the samples of class k, where ``features`` stacks the samples
    class after class (``class_sizes[k]`` rows of class k, e.g. the rows :func:`ntk_samples` chose)."""
    # The norms are row-wise: row blocks are computed side by side (``_parallel``).
    blocks = np.array_split(features, blas_workers())
    norms = np.concatenate(map_blas_tasks(functools.partial(per_sample_gradient_sq_norms, head), blocks))
    boundaries = np.cumsum([0, *class_sizes])
    return np.array([norms[start:stop].mean() for start, stop in zip(boundaries[:-1], boundaries[1:])])
