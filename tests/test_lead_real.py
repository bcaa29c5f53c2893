"""LEAD end to end on real features: two real zoo models on a real target, extracted with plain timm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lead_hub import metrics
from lead_hub.data import load_parquet_split
from lead_hub.models import create_timm_model, timm_transform
from lead_hub.sampling import stratified_indices


def timm_features(model_folder, images):
    model = create_timm_model(f"local-dir:{model_folder}").eval()
    transform = timm_transform(model, image_size=64)
    batch = torch.stack([transform(image) for image in images])
    with torch.inference_mode():
        return model.forward_head(model.forward_features(batch), pre_logits=True).numpy()


@pytest.mark.parametrize("target", ["eurosat", "pacs_photo"])
def test_imagenet_model_scores_above_the_person_detection_control(shared_data, target):
    split = load_parquet_split(shared_data / "targets" / target, "train")
    chosen = stratified_indices(split.labels, samples_per_class=20, seed=0)
    images = [split.image(index) for index in chosen]
    labels = split.labels[chosen]
    zoo = shared_data / "zoo"
    imagenet = timm_features(zoo / "mobilenetv2_100.coral_in1k", images)
    control = timm_features(zoo / "mobilenetv1_025.mlperf_vww", images)
    assert imagenet.shape == (len(labels), 1280) and control.shape == (len(labels), 1024)
    imagenet_score, imagenet_diagnostics = metrics.get("lead")(imagenet, labels, return_diagnostics=True)
    control_score, control_diagnostics = metrics.get("lead")(control, labels, return_diagnostics=True)
    assert np.isfinite([imagenet_score, control_score]).all()
    # the control's zero-padded channels are dropped: only its 256 real feature dimensions reach the head
    assert control_diagnostics.feature_dims_used <= 256
    assert imagenet_score > control_score
    assert imagenet_diagnostics.log_init_accuracy > control_diagnostics.log_init_accuracy
