"""Every peer metric on real features: two zoo models on a real target, one of them with 768 all-zero dimensions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lead_hub import metrics
from lead_hub.data import load_parquet_split
from lead_hub.models import load_backbone
from lead_hub.sampling import stratified_indices

PEERS = ["logme", "leep", "nleep", "nce", "hscore", "regularized_hscore", "transrate", "parc", "gbc", "sfda", "ped",
         "pactran"]


@pytest.fixture(scope="module")
def real_features(shared_data):
    split = load_parquet_split(shared_data / "targets" / "eurosat", "train")
    chosen = stratified_indices(split.labels, samples_per_class=12, seed=0)
    images = [split.image(index) for index in chosen]
    extracted = {}
    for slug in ("mobilenetv2_100.coral_in1k", "mobilenetv1_025.mlperf_vww"):
        backbone = load_backbone(f"local-dir:{shared_data / 'zoo' / slug}", image_size=64)
        with torch.inference_mode():
            features, logits = backbone(torch.stack([backbone.transform(image) for image in images]))
        extracted[slug] = {"features": features.numpy(), "labels": split.labels[chosen],
                           "source_logits": logits.numpy()}
    return extracted


def test_the_person_detector_really_has_hundreds_of_all_zero_dimensions(real_features):
    features = real_features["mobilenetv1_025.mlperf_vww"]["features"]
    assert np.sum(np.all(features == 0, axis=0)) >= 768


@pytest.mark.parametrize("name", PEERS)
def test_every_peer_scores_the_zero_padded_real_model(real_features, name):
    arrays = real_features["mobilenetv1_025.mlperf_vww"]
    if not metrics.info(name).needs_source_logits:
        arrays = {key: value for key, value in arrays.items() if key != "source_logits"}
    assert np.isfinite(metrics.get(name)(**arrays))


def test_etran_scores_the_real_model_set(real_features):
    inputs = {slug: {"features": arrays["features"], "labels": arrays["labels"]}
              for slug, arrays in real_features.items()}
    scores = metrics.score_model_set("etran", inputs)
    # With two models each min-max part is 0 for one and 1 for the other: scores {0, 1} or {0.15, 0.85}.
    assert sorted(scores.values()) in (pytest.approx([0.0, 1.0]), pytest.approx([0.15, 0.85]))
