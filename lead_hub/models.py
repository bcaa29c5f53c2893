"""Pretrained image models: resolve an id to a network and its preprocessing.

This module is the only one that imports ``timm`` and ``transformers``.
"""

from __future__ import annotations

import timm
import timm.data
import torch


def create_timm_model(model_id: str, *, num_classes: int | None = None) -> torch.nn.Module:
    """A pretrained timm model from ``hf-hub:<repo>``, ``local-dir:<folder>`` or a timm name.

    ``num_classes`` replaces the classifier with a freshly initialised one of that size (0 removes it).
    """
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return timm.create_model(model_id, pretrained=True, **kwargs)


def timm_transform(model: torch.nn.Module, *, image_size: int | None = None, training: bool = False):
    """The model's own eval preprocessing (its timm data config); ``image_size`` overrides the resolution.

    With ``image_size`` the image is resized to ``image_size`` × ``image_size`` (squash, no crop), then normalised
    with the model's mean and std: the protocol of the offline benchmark.
    """
    config = timm.data.resolve_model_data_config(model)
    if image_size is not None:
        config = {**config, "input_size": (3, image_size, image_size), "crop_pct": 1.0, "crop_mode": "squash"}
    return timm.data.create_transform(**config, is_training=training)


def model_normalisation(model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) per RGB channel that the model expects after scaling pixels to [0, 1]."""
    config = timm.data.resolve_model_data_config(model)
    return tuple(config["mean"]), tuple(config["std"])
