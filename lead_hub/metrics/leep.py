"""LEEP (Nguyen et al., ICML 2020): log expected empirical prediction from the source classifier's outputs.

θ(x_i) = softmax(source_logits_i) over the C_s source classes. With the empirical joint
P(y, z) = (1/N) Σ_i 1[y_i = y] θ_z(x_i) and P(y | z) = P(y, z) / P(z):

    LEEP = (1/N) Σ_i log Σ_z P(y_i | z) θ_z(x_i).

Higher is better (a mean log-likelihood, ≤ 0). Needs ``source_logits`` (N×C_s raw logits, not probabilities): raises
MetricNotApplicable without them. This is the paper's definition with the log; the SFDA repository's LEEP averages
the probability without the log (``log_probability=False`` gives that variant). Deterministic; ``seed`` unused.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from lead_hub.metrics._linalg import expected_empirical_prediction
from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs


@register(
    "leep",
    summary="How well the model's own original classes predict your labels",
    reference="Nguyen et al., LEEP: A New Measure to Evaluate Transferability of Learned Representations, ICML 2020",
    needs_source_logits=True,
)
def leep(features, labels, *, source_logits=None, seed: int = 0, log_probability: bool = True) -> float:
    """LEEP score (see the module docstring); ``features`` are validated but not used."""
    checked = check_inputs(features, labels, source_logits, metric="leep", needs_source_logits=True)
    source_posteriors = softmax(checked.source_logits, axis=1)
    prediction = expected_empirical_prediction(source_posteriors, checked.labels, checked.num_classes)
    return float(np.mean(np.log(prediction)) if log_probability else np.mean(prediction))
