"""Pretrained image models: resolve an id to a network, its preprocessing and its provenance.

This module is the only one that imports ``timm`` and ``transformers``. Every model, whatever its library, becomes
a :class:`Backbone`: one forward pass gives the pooled pre-logit features (N×D) and, when the checkpoint has a
classifier, the source logits (N×C_s).

Model ids:

* ``hf-hub:<repo>[@<revision>]``: a timm model on the Hugging Face Hub (or in the local HF cache when offline).
* ``<org>/<name>``: a Hub repo; its ``config.json`` decides between timm (``architecture`` key) and transformers
  (``model_type`` key).
* ``local-dir:<folder>``: a folder in timm format (the model zoo) or a ``save_pretrained`` transformers folder.
* ``<timm name>`` such as ``resnet18.a1_in1k``: a registered timm weight, fetched from its Hub repo.

Pooled features are what the source classifier reads, so that features and source logits describe the same
representation: timm's ``forward_head(pre_logits=True)``; for a transformers ``*ForImageClassification`` model the
input of its ``classifier`` (the CLS token after the final layernorm for ViT/DeiT; ``concat(CLS, mean of patch
tokens)`` for DINOv2, twice the hidden size, because that is what DINOv2's linear head was trained on; the
normalised pooled map for ConvNeXt/ResNet/Swin). Headless checkpoints: the CLS token after the final layernorm for
ViT/DeiT/DINOv2 (a DINOv2 backbone thus gives the CLS half of its classifier's features), the projected image
embedding for CLIP-style towers, ``pooler_output`` otherwise. No weight that the checkpoint lacks (and
transformers would initialise at random, such as the ViT pooler of a classifier checkpoint) ever reaches a feature.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
import numpy as np
import timm
import timm.data
import torch
import transformers
from PIL import Image
from torchvision import transforms

from lead_hub import network

logger = logging.getLogger(__name__)

MAX_NUM_CLASSES = 1_000_000
"""The largest ``num_classes`` a timm config.json is taken to mean as a class count (ImageNet-21k has 21,843)."""
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")

# transformers families whose image embedding is the CLS token after the final layernorm. Their ``pooler_output``
# is either a dense+tanh layer (ViT, DeiT) that classifier checkpoints never train, or the same CLS (DINOv2).
_CLS_TOKEN_FAMILIES = frozenset({"vit", "deit", "dinov2", "dinov2_with_registers", "vit_msn", "vit_mae", "ijepa"})


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


@dataclass
class Backbone:
    """A pretrained model ready for feature extraction, with its preprocessing and provenance.

    ``network(pixels)`` maps a float batch ``(N, 3, H, W)`` (the output of ``transform``, stacked) to
    ``(features, logits)``: pooled pre-logit features ``(N, feature_dim)`` and source logits
    ``(N, num_source_classes)``, or ``None`` when the checkpoint has no classifier. ``revision`` is the Hub commit
    sha, or ``sha256:<digest>`` of the config and weight files of a local folder. ``num_parameters`` is the true
    parameter count: for the zoo's zero-padded narrow networks the count stated in the folder's config (or the
    zoo's ``zoo.json``), not the padded storage (``parameter_count_source`` says which).
    """

    model_id: str
    library: str
    revision: str
    network: torch.nn.Module
    transform: Callable[[Image.Image], torch.Tensor]
    image_size: int | None
    input_size: tuple[int, int, int]
    feature_dim: int
    num_source_classes: int
    num_parameters: int
    parameter_count_source: str
    details: dict = field(default_factory=dict)

    @property
    def has_head(self) -> bool:
        """Whether the checkpoint carries a trained classifier (so source logits exist)."""
        return self.num_source_classes > 0

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.network(pixels)

    def transform_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``torch.stack([transform(image) for image in images])``, bit for bit, but cheaper.

        When ``transform`` ends in to-tensor + normalise (timm transforms, the ``image_size`` override), those two
        elementwise steps run once on the whole uint8 batch instead of once per image: the same float operations
        in the same order, at a fraction of the per-image overhead that dominates small images.
        """
        steps = getattr(self.transform, "transforms", [])
        if (len(steps) < 2 or not isinstance(steps[-2], transforms.ToTensor)
                or not isinstance(steps[-1], transforms.Normalize)):
            return torch.stack([self.transform(image) for image in images])
        resize_and_crop = transforms.Compose(steps[:-2])
        arrays = [np.asarray(resize_and_crop(image)) for image in images]
        if len({(array.shape, array.dtype) for array in arrays}) != 1 or arrays[0].dtype != np.uint8:
            return torch.stack([self.transform(image) for image in images])
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        pixels = pixels.to(dtype=torch.get_default_dtype()).div(255)
        normalise = steps[-1]
        mean = torch.as_tensor(normalise.mean, dtype=pixels.dtype).view(1, -1, 1, 1)
        std = torch.as_tensor(normalise.std, dtype=pixels.dtype).view(1, -1, 1, 1)
        return pixels.sub_(mean).div_(std)

    def provenance(self) -> dict:
        """The JSON-ready facts a leaderboard records about this model."""
        return {
            "model_id": self.model_id,
            "library": self.library,
            "revision": self.revision,
            "image_size": self.image_size,
            "input_size": list(self.input_size),
            "feature_dim": self.feature_dim,
            "num_source_classes": self.num_source_classes,
            "has_head": self.has_head,
            "num_parameters": self.num_parameters,
            "parameter_count_source": self.parameter_count_source,
            **self.details,
        }


@network.one_run()  # a Hub that cannot be reached is given up at its first failure (lead_hub.network)
def load_backbone(model_id: str, *, revision: str | None = None, image_size: int | None = None) -> Backbone:
    """Resolve ``model_id`` (see the module docstring) to a :class:`Backbone` in eval mode on the CPU.

    ``revision`` pins a Hub model to a branch, tag or commit (default: ``main``; an ``@<revision>`` suffix of a
    ``hf-hub:`` id does the same). ``image_size`` resizes every image to ``image_size`` × ``image_size`` (squash,
    no crop) before the model's own normalisation, for every model alike; ``None`` keeps each model's own
    preprocessing (resize, centre crop, normalisation from its timm data config or HF image processor).
    Hub models resolve offline from the HF cache when ``HF_HUB_OFFLINE=1``.
    """
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    source = _resolve(model_id, revision)
    if "architecture" in source.config:
        return _timm_backbone(source, image_size)
    return _transformers_backbone(source, image_size)


@network.one_run()
def resolve_revision(model_id: str, *, revision: str | None = None) -> str:
    """The revision :func:`load_backbone` would record for ``model_id``, without loading any weights.

    A Hub commit sha (``revision`` may be a branch or tag: it is resolved through the Hub or the HF cache), or
    ``sha256:<hex>`` over the config and weight files of a local folder.
    """
    return _resolve(model_id, revision).revision


@dataclass(frozen=True)
class HubModelCandidate:
    """A model found by :func:`search_hub_models`; ``model_id`` is what :func:`load_backbone` takes."""

    model_id: str
    library: str | None
    pipeline_tag: str | None
    downloads: int | None
    likes: int | None
    num_parameters: int | None
    sha: str | None


_SEARCH_FIELDS = ["downloads", "likes", "pipeline_tag", "library_name", "tags", "gated", "disabled", "safetensors",
                  "sha"]


@network.one_run()
def search_hub_models(
    task: str = "image-classification",
    *,
    library: str | None = None,
    sort: str = "downloads",
    limit: int = 20,
    min_params: int | None = None,
    max_params: int | None = None,
    search: str | None = None,
    author: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> list[HubModelCandidate]:
    """Candidate models from the Hub: the first ``limit`` by ``sort`` (descending) with pipeline tag ``task``.

    ``library`` keeps models of that library (``"timm"``, ``"transformers"``). Gated and disabled repos are left
    out (lead_hub cannot load them unattended). ``min_params`` / ``max_params`` bound the parameter count the Hub
    reports from the safetensors weights; with a bound, models whose count the Hub does not report are left out.
    Filters are sent to the Hub and checked again on every answer, so a partial server cannot widen the result.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    bounds = [f"{name}:{_hub_parameter_bound(value, round_up=name == 'max')}"
              for name, value in (("min", min_params), ("max", max_params)) if value is not None]
    api = huggingface_hub.HfApi(endpoint=endpoint, token=token)
    listing = api.list_models(pipeline_tag=task, filter=library, gated=False, search=search, author=author,
                              num_parameters=",".join(bounds) or None, sort=sort, expand=_SEARCH_FIELDS)
    found = []
    for info in listing:
        total = info.safetensors.total if info.safetensors is not None else None
        if info.gated or info.disabled or info.pipeline_tag != task:
            continue
        if library is not None and library != info.library_name and library not in (info.tags or []):
            continue
        if (min_params is not None or max_params is not None) and total is None:
            continue
        if (min_params is not None and total < min_params) or (max_params is not None and total > max_params):
            continue
        found.append(HubModelCandidate(info.id, info.library_name, info.pipeline_tag, info.downloads, info.likes,
                                       total, info.sha))
        if len(found) == limit:
            break
    return found


def _hub_parameter_bound(count: int, *, round_up: bool) -> str:
    """A count in the Hub's range syntax (``6B``, ``350M``), rounded outward to whole units so that the server-side
    filter never drops a model that the exact client-side check would keep."""
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count >= size:
            whole = -(-count // size) if round_up else count // size
            return f"{whole}{unit}"
    return str(count)


@dataclass(frozen=True)
class _ModelSource:
    """Where a model id points: its config.json, its exact revision, and how each library is told to load it."""

    model_id: str
    config: dict
    revision: str
    timm_id: str
    pretrained: dict
    folder: Path | None


def _resolve(model_id: str, revision: str | None) -> _ModelSource:
    if model_id.startswith("local-dir:"):
        if revision is not None:
            raise ValueError(f"revision={revision!r} was given for the local folder {model_id!r}; local folders have "
                             "no revisions (their revision is the hash of their files)")
        folder = Path(model_id.removeprefix("local-dir:")).expanduser()
        config = _read_config(model_id, folder / "config.json")
        return _ModelSource(model_id, config, _folder_revision(folder), f"local-dir:{folder}",
                            {"pretrained_model_name_or_path": str(folder)}, folder)
    if model_id.startswith("hf-hub:"):
        repo_id, in_id = _split_revision(model_id.removeprefix("hf-hub:"))
        if in_id is not None and revision is not None and in_id != revision:
            raise ValueError(f"{model_id!r} names revision {in_id!r} but revision={revision!r} was passed; give one")
        revision = in_id or revision
    elif "/" in model_id:
        repo_id = model_id
    else:
        repo_id = _timm_hub_repo(model_id)
    config_path = _hub_config(model_id, repo_id, revision)
    commit = config_path.parent.name
    if not _COMMIT_SHA.match(commit):
        raise RuntimeError(f"could not read the commit of {model_id!r} from the HF cache path {config_path}")
    return _ModelSource(model_id, _read_config(model_id, config_path), commit, f"hf-hub:{repo_id}@{commit}",
                        {"pretrained_model_name_or_path": repo_id, "revision": commit}, None)


def _timm_hub_repo(model_id: str) -> str:
    """The Hub repo holding the weights of a registered timm name (``resnet18`` or ``resnet18.a1_in1k``)."""
    if not timm.is_model(model_id):
        raise ValueError(f"unknown model id {model_id!r}: not a registered timm model; use 'hf-hub:<repo>', "
                         "'<org>/<repo>' for a Hub repo or 'local-dir:<folder>'")
    pretrained_cfg = timm.models.get_pretrained_cfg(model_id)
    if pretrained_cfg is None or pretrained_cfg.hf_hub_id is None:
        raise ValueError(f"timm model {model_id!r} has no Hugging Face Hub weights; pass its folder as "
                         "'local-dir:<folder>'")
    return pretrained_cfg.hf_hub_id


def _read_config(model_id: str, config_file: Path) -> dict:
    if not config_file.is_file():
        raise FileNotFoundError(f"{model_id!r}: no {config_file}; a model folder is a timm folder "
                                "(timm.models.save_for_hf) or a transformers folder (save_pretrained)")
    config = json.loads(config_file.read_text())
    if "architecture" not in config and "model_type" not in config:
        raise ValueError(f"{model_id!r}: {config_file} has neither 'architecture' (timm) nor 'model_type' "
                         "(transformers); lead_hub cannot tell which library builds it")
    classes = config.get("num_classes")
    if "architecture" in config and classes is not None and (
            not isinstance(classes, int) or isinstance(classes, bool) or not 0 <= classes <= MAX_NUM_CLASSES):
        logger.warning("%s: config.json num_classes=%.40r is not a class count (0 to %s); ignored, the classifier is "
                       "built from the weights", model_id, classes, f"{MAX_NUM_CLASSES:,}")
    return config


def _hub_config(model_id: str, repo_id: str, revision: str | None) -> Path:
    """Download (or find in the HF cache) ``config.json`` of ``repo_id`` at ``revision``; its folder is a snapshot."""
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, "config.json", revision=revision))
    except huggingface_hub.errors.GatedRepoError as error:
        raise PermissionError(f"{model_id!r} is gated on the Hub: accept its terms on huggingface.co and log in "
                              "(`hf auth login`), or pick another model") from error
    except huggingface_hub.errors.RepositoryNotFoundError as error:
        raise LookupError(f"{model_id!r}: no model repo {repo_id!r} on the Hub (or it is private); check the id "
                          "or log in") from error
    except huggingface_hub.errors.RevisionNotFoundError as error:
        raise LookupError(f"{model_id!r}: the Hub repo {repo_id!r} has no revision {revision!r}") from error
    except huggingface_hub.errors.LocalEntryNotFoundError as error:  # before its parent class EntryNotFoundError
        raise LookupError(f"{model_id!r} (revision {revision or 'main'}) is not in the local HF cache and the Hub "
                          "cannot be reached (HF_HUB_OFFLINE=1 or no network): download it once online, "
                          "or point HF_HUB_CACHE at a cache that holds it") from error
    except huggingface_hub.errors.EntryNotFoundError as error:
        raise LookupError(f"{model_id!r}: the Hub repo {repo_id!r} has no config.json, so it is not a timm or "
                          "transformers model") from error


# ---- timm --------------------------------------------------------------------------------------------------------

class _TimmPooledHead(torch.nn.Module):
    """A timm model returning ``(forward_head(f, pre_logits=True), forward_head(f))`` from one ``forward_features``."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feature_map = self.model.forward_features(pixels)
        features = self.model.forward_head(feature_map, pre_logits=True)
        logits = self.model.forward_head(feature_map) if self.model.num_classes > 0 else None
        return features, logits


def _timm_backbone(source: _ModelSource, image_size: int | None) -> Backbone:
    model = timm.create_model(source.timm_id, pretrained=True)
    if image_size is not None and hasattr(model, "set_input_size"):
        # Transformers with absolute position embeddings (ViT, Swin, ...) resample them to the new grid.
        model.set_input_size(img_size=(image_size, image_size))
    model.eval()
    transform = timm_transform(model, image_size=image_size)
    input_size = (3, image_size, image_size) if image_size else timm.data.resolve_model_data_config(model)["input_size"]
    num_parameters, count_source = _timm_parameter_count(model, source.config, source.folder)
    return _finish(source, "timm", _TimmPooledHead(model), transform, image_size, input_size, num_parameters,
                   count_source, {"architecture": source.config["architecture"]})


def _timm_parameter_count(model: torch.nn.Module, config: dict, folder: Path | None) -> tuple[int, str]:
    """The true parameter count: the folder config's ``zoo.true_params``, else ``params.true`` of a ``zoo.json``
    beside the folder, else the count of the loaded tensors (the zoo's zero-padded narrow networks store more)."""
    stated = config.get("zoo", {}).get("true_params")
    if stated is not None:
        return int(stated), "config.json zoo.true_params"
    zoo_index = folder.parent / "zoo.json" if folder is not None else None
    if zoo_index is not None and zoo_index.is_file():
        for entry in json.loads(zoo_index.read_text()).get("models", []):
            if entry.get("folder") == folder.name and "true" in entry.get("params", {}):
                return int(entry["params"]["true"]), "zoo.json params.true"
    return _count_parameters(model), "counted"


# ---- transformers ------------------------------------------------------------------------------------------------

class _TransformersClassifier(torch.nn.Module):
    """A ``*ForImageClassification`` model returning (input of its classifier, logits) from one forward pass.

    The classifier's input is by definition the representation the source head was trained on: the CLS token after
    the final layernorm for ViT/DeiT, ``concat(CLS, mean of patch tokens)`` for DINOv2 (2 × hidden size), the
    pooled, normalised feature map for ConvNeXt/ResNet/Swin.
    """

    def __init__(self, model: torch.nn.Module, head: torch.nn.Module, forward_options: dict):
        super().__init__()
        self.model = model
        self.forward_options = forward_options
        self._head_input: list[torch.Tensor] = []
        head.register_forward_pre_hook(self._keep_head_input)

    def _keep_head_input(self, module, inputs):
        self._head_input.append(inputs[0])

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._head_input.clear()
        logits = self.model(pixel_values=pixels, **self.forward_options).logits
        features = self._head_input.pop().flatten(1)
        self._head_input.clear()
        return features, logits


class _TransformersEncoder(torch.nn.Module):
    """A headless transformers image model returning (pooled embedding, None).

    Pooling: ``cls``, the CLS token after the final layernorm (ViT, DeiT, DINOv2: the token their classifiers
    read; for DINOv2 this is the backbone's own ``pooler_output``); ``image_embeds`` / ``image_features``, the
    projected image embedding of a CLIP-style vision tower; ``pooler``, the model's ``pooler_output`` (global
    average pooling, plus the final layernorm for ConvNeXt; the post-layernorm CLS of a CLIP vision model).
    """

    def __init__(self, model: torch.nn.Module, pooling: str, forward_options: dict):
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.forward_options = forward_options

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, None]:
        if self.pooling == "image_features":
            output = self.model.get_image_features(pixel_values=pixels, **self.forward_options)
            return (output if isinstance(output, torch.Tensor) else output.pooler_output), None
        output = self.model(pixel_values=pixels, **self.forward_options)
        if self.pooling == "cls":
            return output.last_hidden_state[:, 0], None
        if self.pooling == "image_embeds":
            return output.image_embeds, None
        if getattr(output, "pooler_output", None) is None:
            raise NotImplementedError(f"{type(self.model).__name__} returns no pooler_output and lead_hub has no "
                                      "pooling rule for it; use a checkpoint with a classification head")
        return output.pooler_output.flatten(1), None


def _transformers_backbone(source: _ModelSource, image_size: int | None) -> Backbone:
    model_type = source.config["model_type"]
    model = _load_transformers_model(source)
    if "ForImageClassification" in type(model).__name__:
        head = getattr(model, "classifier", None)
        if not isinstance(head, torch.nn.Module) or model.config.num_labels == 0:
            raise NotImplementedError(f"{source.model_id!r}: {type(model).__name__} has no single trained "
                                      "'classifier' module whose input lead_hub can read as the pooled features; "
                                      "rank the checkpoint's base model instead (save it without the "
                                      "ForImageClassification wrapper)")
        network = _TransformersClassifier(model, head, _forward_options(model, image_size))
    else:
        network = _TransformersEncoder(model, _pooling(model, model_type), _forward_options(model, image_size))
    model.eval()
    transform, input_size = _processor_transform(_image_processor(source), image_size)
    details = {"architecture": type(model).__name__, "model_type": model_type}
    return _finish(source, "transformers", network, transform, image_size, input_size, _count_parameters(model),
                   "counted", details)


def _load_transformers_model(source: _ModelSource) -> torch.nn.Module:
    """The class the checkpoint was saved from (``architectures[0]``), else ``AutoModel``; every weight trained.

    A weight missing from the checkpoint is randomly initialised by transformers, which would make features
    differ between loads: refused, except a ViT/DeiT pooler (dense + tanh) that lead_hub never uses.
    """
    architectures = source.config.get("architectures") or []
    model_class = getattr(transformers, architectures[0], None) if architectures else None
    if model_class is None:
        model_class = transformers.AutoModel
    model, loading = model_class.from_pretrained(**source.pretrained, output_loading_info=True)
    random_weights = sorted(loading["missing_keys"])
    if source.config["model_type"] in _CLS_TOKEN_FAMILIES and any(key.startswith("pooler.") for key in random_weights):
        # The ViT pooler trap: AutoModel adds a dense+tanh pooler that a classifier checkpoint never trained.
        # Drop it (ViTModel/DeiTModel skip a None pooler) so that it neither runs nor counts as a parameter.
        model.pooler = None
        random_weights = [key for key in random_weights if not key.startswith("pooler.")]
    if random_weights:
        raise ValueError(f"{source.model_id!r}: the checkpoint lacks {len(random_weights)} weights of "
                         f"{type(model).__name__} (e.g. {random_weights[:3]}), which would be randomly initialised; "
                         "use a checkpoint saved from this architecture")
    return model


def _pooling(model: torch.nn.Module, model_type: str) -> str:
    """How a headless model's output becomes one embedding per image (see :class:`_TransformersEncoder`)."""
    if type(model).__name__.endswith("VisionModelWithProjection"):
        return "image_embeds"
    if hasattr(model, "get_image_features"):
        return "image_features"
    if model_type in _CLS_TOKEN_FAMILIES:
        return "cls"
    return "pooler"


def _forward_options(model: torch.nn.Module, image_size: int | None) -> dict:
    """ViT-style models need ``interpolate_pos_encoding`` to accept a resolution other than their training one."""
    accepts = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
    return {"interpolate_pos_encoding": True} if image_size is not None and accepts else {}


def _image_processor(source: _ModelSource):
    try:
        return transformers.AutoImageProcessor.from_pretrained(**source.pretrained)
    except OSError as error:
        raise FileNotFoundError(f"{source.model_id!r} has no image processor config (preprocessor_config.json), so its "
                                "preprocessing is unknown; save one with AutoImageProcessor.save_pretrained") from error


def _processor_transform(processor, image_size: int | None):
    """A PIL → tensor transform from an HF image processor, and the input size it produces.

    With ``image_size``: resize to ``image_size`` × ``image_size`` with the processor's resampling filter, scale
    pixels to [0, 1] and apply the processor's normalisation (if it normalises), like ``timm_transform``.
    """
    if image_size is not None:
        if getattr(processor, "do_rescale", True) and not math.isclose(processor.rescale_factor, 1 / 255):
            raise NotImplementedError(f"{type(processor).__name__} rescales pixels by {processor.rescale_factor}, "
                                      "not 1/255; lead_hub cannot apply an image_size override to it: leave "
                                      "image_size (--image-size) unset to use the model's own preprocessing")
        resample = getattr(processor, "resample", Image.Resampling.BILINEAR)
        interpolation = (resample if isinstance(resample, transforms.InterpolationMode)
                         else transforms.InterpolationMode[Image.Resampling(resample).name])
        steps = [transforms.Resize((image_size, image_size), interpolation=interpolation), transforms.ToTensor()]
        if getattr(processor, "do_normalize", True):
            steps.append(transforms.Normalize(tuple(processor.image_mean), tuple(processor.image_std)))
        return transforms.Compose(steps), (3, image_size, image_size)

    def transform(image: Image.Image) -> torch.Tensor:
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    probe = transform(Image.new("RGB", (32, 32)))
    return transform, tuple(probe.shape)


# ---- shared ------------------------------------------------------------------------------------------------------

def _finish(source: _ModelSource, library: str, network: torch.nn.Module, transform, image_size: int | None,
            input_size: tuple, num_parameters: int, count_source: str, details: dict) -> Backbone:
    """Probe the network once to learn the feature and logit widths (and fail now if the input size is unusable)."""
    network.eval()
    try:
        with torch.no_grad():
            features, logits = network(torch.zeros(1, *input_size))
    except NotImplementedError:
        raise
    except RuntimeError as error:
        raise ValueError(f"{source.model_id!r} cannot run on {input_size[1]}×{input_size[2]} inputs: {error}") from error
    return Backbone(
        model_id=source.model_id,
        library=library,
        revision=source.revision,
        network=network,
        transform=transform,
        image_size=image_size,
        input_size=tuple(int(size) for size in input_size),
        feature_dim=int(features.shape[1]),
        num_source_classes=0 if logits is None else int(logits.shape[1]),
        num_parameters=num_parameters,
        parameter_count_source=count_source,
        details=details,
    )


def _count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def _split_revision(repo: str) -> tuple[str, str | None]:
    repo_id, _, revision = repo.partition("@")
    return repo_id, revision or None


def _folder_revision(folder: Path) -> str:
    """``sha256:<hex>`` over the names and bytes of the folder's config and weight files (a content revision).

    Hashing reads every weight byte, so the digest is remembered for the files' (path, size, mtime): a second
    ranking in the same process reads nothing again, and a changed file is hashed anew."""
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    files = tuple((str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns)
                  for path in sorted(folder.iterdir())
                  if path.name == "config.json" or path.suffix in _WEIGHT_SUFFIXES)
    return _files_revision(files)


@functools.lru_cache(maxsize=256)
def _files_revision(files: tuple[tuple[str, int, int], ...]) -> str:
    """The content revision of :func:`_folder_revision` for files given as (path, size, mtime in ns)."""
    digest = hashlib.sha256()
    for path, _, _ in files:
        digest.update(Path(path).name.encode() + b"\0")
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()}"
