"""PED (Li, Hu et al., ICCV 2023): potential-energy descent of the features, then a base metric.

Physics-inspired preprocessing: classes whose clusters overlap repel each other for a few steps, the way the
features would move during fine-tuning; then any features-only metric scores the moved features (``base``,
SFDA by default, as in the paper's main results).

Every step works in standardised coordinates z = (x − m) / max(s, 1e-3), where m and s are the per-dimension
mean and standard deviation of the **target features themselves**, fixed before the first step. (The reference
standardises with the model's statistics on ImageNet val, which needs source data; this implementation does not
have them.) With class means μ_k and class radii R_k = √(Σ_j Var_k,j) (biased variances), for every pair of classes
a ≠ b at distance d_ab = ‖μ_a − μ_b‖ the overlap is F_ab = max(ν(R_a + R_b) − d_ab, 0), and class a moves away
from b by min(½ τ² κ F_ab, F_ab) along (μ_a − μ_b)/d_ab; every sample of a class moves with it. The step's
position change is Σ_a ‖move_a‖₁. The first step always applies; a later step applies while its change is more
than ``exit_ratio`` × the first step's change, at most ``max_steps`` steps in all. Defaults: τ = 0.1, ν = 0.6,
κ = 1, 6 steps, exit ratio 0.5 (the reference's evaluation settings). Pairs with identical means have no direction
and do not move (the reference divides by zero there); when no class overlaps, the features are unchanged.

Orientation, log convention and seed use are those of the base metric (SFDA: higher is better, mean probability
without log); ``base_options`` are passed to it.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from lead_hub.metrics._linalg import class_statistics, one_hot
from lead_hub.metrics._registry import info, register
from lead_hub.metrics._validation import check_inputs

TIME_STEP = 0.1
RADIUS_SCALE = 0.6
FORCE_CONSTANT = 1.0
MAX_STEPS = 6
EXIT_RATIO = 0.5
STD_FLOOR = 1e-3


@register(
    "ped",
    summary="SFDA after moving the features as fine-tuning would, by a simple physical model of the classes",
    reference="Li, Hu et al., Exploring Model Transferability through the Lens of Potential Energy, ICCV 2023",
)
def ped(features, labels, *, source_logits=None, seed: int = 0, base: str = "sfda", base_options: dict | None = None,
        time_step: float = TIME_STEP, radius_scale: float = RADIUS_SCALE, force_constant: float = FORCE_CONSTANT,
        max_steps: int = MAX_STEPS, exit_ratio: float = EXIT_RATIO) -> float:
    """PED score: ``base`` metric of the features after potential-energy descent (see the module docstring)."""
    base_metric = info(base)
    if base_metric.needs_source_logits or base_metric.combine is not None or base_metric.name == "ped":
        raise ValueError(f"ped: base must be a features-only metric scored per model, got {base!r}")
    checked = check_inputs(features, labels, source_logits, metric="ped")
    moved = descend(checked.features, checked.labels, checked.num_classes, time_step=time_step,
                    radius_scale=radius_scale, force_constant=force_constant, max_steps=max_steps,
                    exit_ratio=exit_ratio)
    return float(base_metric.function(moved, checked.labels, seed=seed, **(base_options or {})))


def descend(features: np.ndarray, labels: np.ndarray, num_classes: int, *, time_step: float = TIME_STEP,
            radius_scale: float = RADIUS_SCALE, force_constant: float = FORCE_CONSTANT, max_steps: int = MAX_STEPS,
            exit_ratio: float = EXIT_RATIO) -> np.ndarray:
    """The features after the potential-energy descent steps, in their original units.

    A step translates every class as a whole, so class radii never change and the steps run on the K class
    means alone; the summed translation is applied to the samples once at the end.
    """
    scale = np.maximum(features.std(axis=0), STD_FLOOR)
    stats = class_statistics(features, labels, num_classes)
    squared_deviations = one_hot(labels, num_classes).T @ (features - stats.means[labels]) ** 2
    radii = np.sqrt(np.sum(squared_deviations / scale**2, axis=1) / stats.counts)
    means = (stats.means - features.mean(axis=0)) / scale
    translation = np.zeros_like(means)
    first_change = None
    for _ in range(max_steps):
        moves = _class_moves(means, radii, time_step, radius_scale, force_constant)
        change = float(np.abs(moves).sum())
        if first_change is None:
            first_change = change
        if first_change == 0 or change / first_change <= exit_ratio:
            break
        means += moves
        translation += moves
    return features + (translation * scale)[labels]


def _class_moves(means, radii, time_step, radius_scale, force_constant) -> np.ndarray:
    """K×D displacement of every class for one step (sum of its repulsions from the overlapping classes)."""
    distances = cdist(means, means)
    overlap = np.maximum(radius_scale * (radii[:, None] + radii[None, :]) - distances, 0.0)
    step = np.minimum(0.5 * time_step**2 * force_constant * overlap, overlap)
    np.fill_diagonal(step, 0.0)
    weights = np.divide(step, distances, out=np.zeros_like(step), where=distances > 0)
    return weights.sum(axis=1)[:, None] * means - weights @ means
