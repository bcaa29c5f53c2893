"""LEAD step 2: per-class mean NTK eigenvalue λ̄_k, of the random MLP head alone in closed form here, or of the
whole network F = h∘f from per-sample gradient norms computed with the model (``lead(..., ntk="full")``).

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

What the head reads (:class:`NtkHead`): the model's features z on the kept (non-constant) columns, shifted and
scaled, ``h((z[columns] − shift) / scale)``: with ``head_input="standardized"`` shift and scale are the column
mean and standard deviation of the scored sample (``_scaling.ColumnScaling``), with ``"raw"`` 0 and 1.
The rows of class k that enter λ̄_k are :func:`ntk_rows`. The extraction pipeline builds the whole-network NTK
from exactly these two public pieces, so that its λ̄_k and LEAD's head-only λ̄_k are taken on the same rows
through the same head.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from lead_hub.metrics._content_keys import first_by_key, id_keys
from lead_hub.metrics._parallel import blas_workers, map_blas_tasks
from lead_hub.metrics._scaling import ColumnScaling

HEAD_INPUTS = ("standardized", "raw")


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


@dataclass(frozen=True)
class NtkHead:
    """The random head LEAD puts on a model's features and what it reads: ``F = h((z[columns] − shift) / scale)``.

    ``columns`` are the model's non-constant feature columns, ``shift``/``scale`` float64 vectors over them (see the
    module docstring), ``head`` the weights (biases are zero at initialisation and are parameters of F too)."""

    head: RandomHead
    columns: np.ndarray
    shift: np.ndarray
    scale: np.ndarray

    def inputs(self, features: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The head's float64 inputs ``(features[rows][:, columns] − shift) / scale`` (every row when None)."""
        return ColumnScaling(self.shift, self.scale, self.columns).transform(features, rows=rows)


def ntk_head(features: np.ndarray, num_classes: int, *, widths: tuple[int, ...] = (1024, 2048), seed: int = 0,
             head_input: str = "standardized", scaling: ColumnScaling | None = None) -> NtkHead:
    """The head LEAD draws for a model whose features on the scored sample are ``features`` (N×D, all N rows,
    as LEAD receives them): :func:`random_head` over the ``D'`` non-constant columns with K = ``num_classes``
    outputs, and its input transform for ``head_input`` (``"standardized"`` or ``"raw"``).

    ``scaling`` is ``ColumnScaling.fit(features)`` when the caller already has it."""
    if head_input not in HEAD_INPUTS:
        raise ValueError(f"lead: head_input={head_input!r} is not one of {', '.join(HEAD_INPUTS)}")
    scaling = ColumnScaling.fit(features) if scaling is None else scaling
    if head_input == "standardized":
        shift, scale = scaling.mean, scaling.std
    else:
        shift, scale = np.zeros(len(scaling.columns)), np.ones(len(scaling.columns))
    head = random_head(len(scaling.columns), tuple(widths), num_classes, seed)
    return NtkHead(head, scaling.columns, shift, scale)


def ntk_rows(labels: np.ndarray, num_classes: int, *, sample_ids: np.ndarray | None = None,
             keys: np.ndarray | None = None, samples_per_class: int = 64, seed: int = 0) -> list[np.ndarray]:
    """For k = 0..K−1 the indices of the rows of class k that enter λ̄_k: the ``samples_per_class`` members of
    class k (all if fewer) with the smallest keys, sorted by key.

    Give exactly one of ``sample_ids`` (N distinct integers, e.g. each row's index in its source split: the keys are
    then ``_content_keys.id_keys(sample_ids, seed)``, so the choice is an exact function of the sample set and
    follows each sample under permutation) or ``keys`` (N precomputed keys in [0, 1), e.g. ``content_keys``:
    a choice by features' content can move with their round-off when a class has more than
    ``samples_per_class`` members). ``labels`` are N integers in 0..K−1.
    """
    labels = np.asarray(labels)
    if (sample_ids is None) == (keys is None):
        raise ValueError("ntk_rows: give exactly one of sample_ids (stable sample identities) or keys")
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or (len(labels) and (labels.min() < 0
                                                                              or labels.max() >= num_classes)):
        raise ValueError(f"ntk_rows: labels must be a 1-D integer array in 0..{num_classes - 1}; remap class ids "
                         "with numpy.unique(labels, return_inverse=True) first")
    keys = id_keys(sample_ids, seed) if keys is None else np.asarray(keys)
    if len(keys) != len(labels):
        raise ValueError(f"ntk_rows: {len(keys)} sample_ids/keys for {len(labels)} labels; give one per sample")
    return [first_by_key(np.flatnonzero(labels == cls), keys, samples_per_class) for cls in range(num_classes)]


def class_mean_eigenvalues(head: RandomHead, features: np.ndarray, class_sizes: list[int]) -> np.ndarray:
    """λ̄_k for k = 0..K−1: the mean of ‖g_i‖² over the samples of class k, where ``features`` stacks the samples
    class after class (``class_sizes[k]`` rows of class k, e.g. the rows :func:`ntk_rows` chose)."""
    # The norms are row-wise: row blocks are computed side by side (``_parallel``).
    blocks = np.array_split(features, blas_workers())
    norms = np.concatenate(map_blas_tasks(functools.partial(per_sample_gradient_sq_norms, head), blocks))
    boundaries = np.cumsum([0, *class_sizes])
    return np.array([norms[start:stop].mean() for start, stop in zip(boundaries[:-1], boundaries[1:])])
