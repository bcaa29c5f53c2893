"""LEAD steps 3 and 4: the closed-form logit evolution (Eq. 7) and the cross-entropy score.

For a sample x of class k with one-hot label y and rate r_k = η·t·λ̄_k,

    F̂(x) = (1 − e^{−r_k}) · y + e^{−r_k} · log_init(x).

The score is higher-is-better; three forms (METHOD.md §3, open point 5):

``"log_prob"``   F̂ read as probabilities: score = mean log F̂(x)[y]  (needs log_init to be probabilities; the
                 log is floored at the smallest positive float64 so an underflowed 0 gives a finite score).
``"softmax_ce"`` score = mean log softmax(F̂(x))[y], i.e. minus the usual cross-entropy of F̂ as logits.
``"prob"``       score = mean F̂(x)[y], no log (the SFDA / NLEEP reference-code convention).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

CE_FORMS = ("log_prob", "softmax_ce", "prob")


def evolved_true_class_weight(rates: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """e^{−r_{y_i}} for every sample: the weight log_init keeps after the evolution."""
    return np.exp(-rates[labels])


def evolution_score(log_init: np.ndarray, labels: np.ndarray, rates: np.ndarray, ce_form: str) -> float:
    """The LEAD score of ``log_init`` (N×K) evolved with per-class ``rates`` (K), in the form ``ce_form``."""
    keep = evolved_true_class_weight(rates, labels)
    rows = np.arange(len(labels))
    if ce_form == "softmax_ce":
        evolved = keep[:, None] * log_init
        evolved[rows, labels] += 1.0 - keep
        return float(log_softmax(evolved, axis=1)[rows, labels].mean())
    true_class = (1.0 - keep) + keep * log_init[rows, labels]
    if ce_form == "prob":
        return float(true_class.mean())
    if ce_form == "log_prob":
        return float(np.log(np.maximum(true_class, np.finfo(np.float64).tiny)).mean())
    raise ValueError(f"lead: ce_form={ce_form!r} is not one of {', '.join(CE_FORMS)}")
