"""LEEP and NCE on hand-computed cases; both need the source classifier's logits."""

from __future__ import annotations

import numpy as np
import pytest

from lead_hub.metrics import MetricNotApplicable, get

SOURCE_PROBABILITIES = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
LABELS = np.array([0, 0, 1, 1])
FEATURES = np.zeros((4, 3))


def test_leep_by_hand():
    # P(y, z) = [[1.4, 0.6], [0.4, 1.6]] / 4, P(z) = (0.45, 0.55), P(y | z) = P(y, z) / P(z).
    p_class0 = np.array([0.35 / 0.45, 0.15 / 0.55])
    p_class1 = np.array([0.10 / 0.45, 0.40 / 0.55])
    predictions = [0.8 * p_class0[0] + 0.2 * p_class0[1], 0.6 * p_class0[0] + 0.4 * p_class0[1],
                   0.3 * p_class1[0] + 0.7 * p_class1[1], 0.1 * p_class1[0] + 0.9 * p_class1[1]]
    logits = np.log(SOURCE_PROBABILITIES) + 3.0  # softmax is shift invariant: these logits give the table above
    leep = get("leep")
    assert leep(FEATURES, LABELS, source_logits=logits) == pytest.approx(np.mean(np.log(predictions)), rel=1e-12)
    assert leep(FEATURES, LABELS, source_logits=logits, log_probability=False) == pytest.approx(np.mean(predictions))


def test_nce_by_hand():
    source_logits = np.eye(3)[[0, 0, 0, 1, 1, 1, 2, 2]]  # argmax z = 0,0,0,1,1,1,2,2
    labels = np.array([0, 0, 1, 1, 1, 1, 0, 1])
    # z=0: y ~ (2/3, 1/3); z=1: y = 1 surely; z=2: y ~ (1/2, 1/2).
    conditional_entropy = (3 / 8) * -(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)) + (2 / 8) * np.log(2)
    assert get("nce")(np.zeros((8, 2)), labels, source_logits=source_logits) == pytest.approx(-conditional_entropy)


def test_nce_is_zero_when_the_source_prediction_determines_the_label():
    logits = np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]]
    assert get("nce")(np.zeros((8, 2)), np.array([0, 0, 1, 1, 0, 0, 1, 1]), source_logits=logits) == 0.0


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_without_source_logits_the_metric_is_not_applicable(name):
    with pytest.raises(MetricNotApplicable, match="source_logits"):
        get(name)(FEATURES, LABELS)


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_source_logits_must_have_one_row_per_sample(name):
    with pytest.raises(ValueError, match="source_logits must be N"):
        get(name)(FEATURES, LABELS, source_logits=np.zeros((3, 2)))
