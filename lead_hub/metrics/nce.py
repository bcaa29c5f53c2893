"""NCE (Tran et al., ICCV 2019): negative conditional entropy of target labels given source labels.

Z_i = argmax of the source logits (the source model's hard prediction; ties go to the lowest index). With the
empirical joint P(y, z) over the N samples:

    NCE = −H(Y | Z) = Σ_{y,z} P(y, z) · log P(y | z).

Higher is better (≤ 0; 0 when the source prediction determines the target label). Needs ``source_logits``
(N×C_s): raises MetricNotApplicable without them. Deterministic; ``seed`` unused.
"""

from __future__ import annotations

import numpy as np

from lead_hub.metrics._registry import register
from lead_hub.metrics._validation import check_inputs


@register(
    "nce",
    summary="How predictable your labels are from the class the model's original classifier picks",
    reference="Tran et al., Transferability and Hardness of Supervised Classification Tasks, ICCV 2019",
    needs_source_logits=True,
)
def nce(features, labels, *, source_logits=None, seed: int = 0) -> float:
    """NCE score (see the module docstring); ``features`` are validated but not used."""
    checked = check_inputs(features, labels, source_logits, metric="nce", needs_source_logits=True)
    source_labels = np.argmax(checked.source_logits, axis=1)
    num_classes = checked.num_classes
    joint = np.bincount(source_labels * num_classes + checked.labels,
                        minlength=checked.source_logits.shape[1] * num_classes).reshape(-1, num_classes)
    joint = joint / len(source_labels)
    source_marginal = joint.sum(axis=1, keepdims=True)
    used = joint > 0
    conditional = joint[used] / np.broadcast_to(source_marginal, joint.shape)[used]
    return float(np.sum(joint[used] * np.log(conditional)))
