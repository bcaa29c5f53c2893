"""load_backbone on tiny timm and transformers models: features and logits equal a direct forward pass, the right
pooling per family, provenance (revision, parameter counts), Hub ids from a seeded offline HF cache, Hub search."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import timm
import torch
import transformers
from PIL import Image

from lead_hub.models import load_backbone, resolve_revision, search_hub_models

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


# ---- builders shared with test_features.py -----------------------------------------------------------------------

def save_tiny_timm(folder: Path, *, name: str = "test_efficientnet", num_classes: int = 3, seed: int = 0) -> Path:
    """A randomly initialised tiny timm model saved in timm's Hub folder format (config.json + safetensors)."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    timm.models.save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def save_tiny_transformers(folder: Path, family: str, *, head: bool, seed: int = 0) -> Path:
    """A tiny randomly initialised transformers image model plus its image processor, via save_pretrained."""
    torch.manual_seed(seed)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                  patch_size=8)
    square = {"height": 32, "width": 32}
    if family == "vit":
        config = transformers.ViTConfig(**vision, num_labels=4)
        model = (transformers.ViTForImageClassification(config) if head
                 else transformers.ViTModel(config, add_pooling_layer=False))
        processor = transformers.ViTImageProcessor(size=square)
    elif family == "dinov2":
        config = transformers.Dinov2Config(**vision, num_labels=5)
        model = transformers.Dinov2ForImageClassification(config) if head else transformers.Dinov2Model(config)
        processor = transformers.BitImageProcessor(size={"shortest_edge": 32}, crop_size=square)
    elif family == "convnext":
        config = transformers.ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_labels=3)
        model = transformers.ConvNextForImageClassification(config) if head else transformers.ConvNextModel(config)
        processor = transformers.ConvNextImageProcessor(size={"shortest_edge": 32})
    elif family == "clip":
        config = transformers.CLIPVisionConfig(**vision, projection_dim=16)
        model = transformers.CLIPVisionModelWithProjection(config)
        processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=square)
    else:
        raise ValueError(family)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def seed_hf_cache(cache: Path, repo_id: str, folder: Path, commit: str = FAKE_COMMIT) -> None:
    """Lay ``folder`` out as snapshot ``commit`` of model repo ``repo_id`` (branch main) in an HF cache."""
    repo_folder = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo_folder / "snapshots" / commit)
    (repo_folder / "refs").mkdir(parents=True, exist_ok=True)
    (repo_folder / "refs" / "main").write_text(commit)


def random_pixels(count: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_timm(tmp_path_factory) -> Path:
    return save_tiny_timm(tmp_path_factory.mktemp("timm") / "tiny")


@pytest.fixture()
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty HF cache, with the Hub client in offline mode: Hub ids resolve from the cache only."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


# ---- timm --------------------------------------------------------------------------------------------------------

def test_timm_features_and_logits_equal_the_models_own_forward(tiny_timm):
    backbone = load_backbone(f"local-dir:{tiny_timm}", image_size=48)
    reference = timm.create_model(f"local-dir:{tiny_timm}", pretrained=True).eval()
    pixels = random_pixels(4, 48)
    features, logits = backbone(pixels)
    with torch.no_grad():
        expected_features = reference.forward_head(reference.forward_features(pixels), pre_logits=True)
        expected_logits = reference(pixels)
    torch.testing.assert_close(features, expected_features)
    torch.testing.assert_close(logits, expected_logits)
    assert (backbone.library, backbone.feature_dim, backbone.num_source_classes) == ("timm", 256, 3)
    assert backbone.has_head and backbone.input_size == (3, 48, 48)
    assert backbone.num_parameters == sum(p.numel() for p in reference.parameters())
    assert backbone.parameter_count_source == "counted"


def test_timm_model_without_classifier_gives_no_logits(tmp_path):
    folder = save_tiny_timm(tmp_path / "headless", num_classes=0)
    backbone = load_backbone(f"local-dir:{folder}")
    features, logits = backbone(random_pixels(2, 64))
    assert logits is None and not backbone.has_head and backbone.num_source_classes == 0
    assert features.shape == (2, 256)


def test_image_size_override_squashes_every_image_to_a_square(tiny_timm):
    backbone = load_backbone(f"local-dir:{tiny_timm}", image_size=40)
    assert backbone.transform(Image.new("RGB", (90, 30), (200, 10, 10))).shape == (3, 40, 40)
    native = load_backbone(f"local-dir:{tiny_timm}")
    assert native.transform(Image.new("RGB", (90, 30))).shape == (3, 160, 160)  # test_efficientnet's input size


def test_timm_vision_transformer_runs_at_a_new_resolution(tmp_path):
    folder = save_tiny_timm(tmp_path / "vit", name="test_vit")
    backbone = load_backbone(f"local-dir:{folder}", image_size=64)
    features, logits = backbone(random_pixels(2, 64))
    assert features.shape == (2, backbone.feature_dim) and logits.shape == (2, 3)


def test_folder_revision_is_a_content_hash(tmp_path):
    first = save_tiny_timm(tmp_path / "a", seed=0)
    same = save_tiny_timm(tmp_path / "b", seed=0)
    other = save_tiny_timm(tmp_path / "c", seed=1)
    revisions = [resolve_revision(f"local-dir:{folder}") for folder in (first, same, other)]
    assert revisions[0].startswith("sha256:") and revisions[0] == revisions[1] != revisions[2]
    assert load_backbone(f"local-dir:{first}").revision == revisions[0]


def test_true_parameter_count_comes_from_the_folder_config(tmp_path):
    folder = save_tiny_timm(tmp_path / "padded")
    config = json.loads((folder / "config.json").read_text())
    config["zoo"] = {"true_params": 1234}
    (folder / "config.json").write_text(json.dumps(config))
    backbone = load_backbone(f"local-dir:{folder}")
    assert (backbone.num_parameters, backbone.parameter_count_source) == (1234, "config.json zoo.true_params")


def test_true_parameter_count_comes_from_a_zoo_index_beside_the_folder(tmp_path):
    folder = save_tiny_timm(tmp_path / "zoo" / "narrow")
    index = {"models": [{"folder": "other", "params": {"true": 1}}, {"folder": "narrow", "params": {"true": 777}}]}
    (tmp_path / "zoo" / "zoo.json").write_text(json.dumps(index))
    backbone = load_backbone(f"local-dir:{folder}")
    assert (backbone.num_parameters, backbone.parameter_count_source) == (777, "zoo.json params.true")


def test_zoo_narrow_model_reports_its_true_parameter_count(shared_data):
    zoo = json.loads((shared_data / "zoo" / "zoo.json").read_text())
    entry = next(model for model in zoo["models"] if model["zero_padded"])
    backbone = load_backbone(f"local-dir:{shared_data / 'zoo' / entry['folder']}", image_size=64)
    assert backbone.num_parameters == entry["params"]["true"] < entry["params"]["stored"]
    assert backbone.feature_dim == entry["num_features"] and backbone.num_source_classes == entry["num_classes"]


# ---- transformers ------------------------------------------------------------------------------------------------

def test_vit_classifier_features_are_the_cls_token_after_the_final_layernorm(tmp_path):
    folder = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    backbone = load_backbone(f"local-dir:{folder}")
    reference = transformers.ViTForImageClassification.from_pretrained(folder).eval()
    pixels = random_pixels(3, 32)
    features, logits = backbone(pixels)
    with torch.no_grad():
        tokens = reference.vit(pixels).last_hidden_state
        expected_logits = reference(pixel_values=pixels).logits
    torch.testing.assert_close(features, tokens[:, 0])
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(logits, reference.classifier(features))
    assert (backbone.library, backbone.feature_dim, backbone.num_source_classes) == ("transformers", 32, 4)


def test_vit_backbone_never_uses_the_untrained_pooler(tmp_path):
    """A ViT checkpoint without pooler weights: AutoModel would add a random dense+tanh pooler; the features must be
    the CLS token, identical however the random generator is seeded."""
    folder = save_tiny_transformers(tmp_path / "vit-backbone", "vit", head=False)
    pixels = random_pixels(2, 32)
    torch.manual_seed(1)
    first = load_backbone(f"local-dir:{folder}")
    torch.manual_seed(2)
    second = load_backbone(f"local-dir:{folder}")
    features, logits = first(pixels)
    torch.testing.assert_close(features, second(pixels)[0])
    reference = transformers.ViTModel.from_pretrained(folder, add_pooling_layer=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(features, reference(pixels).last_hidden_state[:, 0])
    assert logits is None and first.network.model.pooler is None
    assert first.num_parameters == sum(p.numel() for p in reference.parameters())


def test_vit_classifier_checkpoint_read_as_a_backbone_keeps_the_cls_token(tmp_path):
    """The trap itself: a classifier checkpoint loaded through AutoModel (its config names no architecture) gets a
    randomly initialised pooler; lead_hub must give the classifier's own features instead."""
    folder = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    config = json.loads((folder / "config.json").read_text())
    del config["architectures"]
    (folder / "config.json").write_text(json.dumps(config))
    backbone = load_backbone(f"local-dir:{folder}")
    reference = transformers.ViTForImageClassification.from_pretrained(folder).eval()
    pixels = random_pixels(2, 32)
    with torch.no_grad():
        expected = reference.vit(pixels).last_hidden_state[:, 0]
    torch.testing.assert_close(backbone(pixels)[0], expected)
    assert not backbone.has_head and backbone.details["architecture"] == "ViTModel"


def test_dinov2_classifier_features_concatenate_cls_and_mean_patch_tokens(tmp_path):
    folder = save_tiny_transformers(tmp_path / "dino", "dinov2", head=True)
    backbone = load_backbone(f"local-dir:{folder}", image_size=48)
    reference = transformers.Dinov2ForImageClassification.from_pretrained(folder).eval()
    pixels = random_pixels(2, 48)
    features, logits = backbone(pixels)
    with torch.no_grad():
        tokens = reference.dinov2(pixels).last_hidden_state
    torch.testing.assert_close(features, torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1))
    assert backbone.feature_dim == 64 and logits.shape == (2, 5)


def test_dinov2_backbone_features_are_the_cls_token(tmp_path):
    folder = save_tiny_transformers(tmp_path / "dino", "dinov2", head=False)
    backbone = load_backbone(f"local-dir:{folder}")
    reference = transformers.Dinov2Model.from_pretrained(folder).eval()
    pixels = random_pixels(2, 32)
    with torch.no_grad():
        expected = reference(pixels).last_hidden_state[:, 0]
    torch.testing.assert_close(backbone(pixels)[0], expected)
    assert not backbone.has_head


@pytest.mark.parametrize("head", [True, False])
def test_convnext_features_are_the_normalised_pooled_map(tmp_path, head):
    folder = save_tiny_transformers(tmp_path / "convnext", "convnext", head=head)
    backbone = load_backbone(f"local-dir:{folder}", image_size=64)
    base = transformers.ConvNextModel.from_pretrained(folder).eval()
    pixels = random_pixels(2, 64)
    with torch.no_grad():
        expected = base(pixels).pooler_output
    features, logits = backbone(pixels)
    torch.testing.assert_close(features, expected)
    assert (logits is not None) == head and backbone.feature_dim == 64


def test_clip_vision_tower_features_are_the_projected_image_embedding(tmp_path):
    folder = save_tiny_transformers(tmp_path / "clip", "clip", head=False)
    backbone = load_backbone(f"local-dir:{folder}")
    reference = transformers.CLIPVisionModelWithProjection.from_pretrained(folder).eval()
    pixels = random_pixels(2, 32)
    with torch.no_grad():
        expected = reference(pixel_values=pixels).image_embeds
    torch.testing.assert_close(backbone(pixels)[0], expected)
    assert backbone.feature_dim == 16


def test_checkpoint_missing_weights_is_refused(tmp_path):
    folder = save_tiny_transformers(tmp_path / "convnext", "convnext", head=False)
    from safetensors.torch import load_file, save_file
    weights = load_file(folder / "model.safetensors")
    weights.pop(next(name for name in weights if name.startswith("layernorm")))
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="randomly initialised"):
        load_backbone(f"local-dir:{folder}")


def test_hf_image_processor_preprocessing_is_used_without_override(tmp_path):
    folder = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    backbone = load_backbone(f"local-dir:{folder}")
    image = Image.fromarray(np.arange(50 * 70 * 3, dtype=np.uint8).reshape(50, 70, 3))
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    torch.testing.assert_close(backbone.transform(image), processor(images=image, return_tensors="pt")["pixel_values"][0])


def test_hf_image_size_override_resizes_then_applies_the_processors_normalisation(tmp_path):
    folder = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    backbone = load_backbone(f"local-dir:{folder}", image_size=24)
    image = Image.fromarray(np.arange(50 * 70 * 3, dtype=np.uint8).reshape(50, 70, 3))
    resized = np.asarray(image.resize((24, 24), Image.Resampling.BILINEAR), dtype=np.float64) / 255
    expected = torch.from_numpy(((resized - 0.5) / 0.5).transpose(2, 0, 1)).float()  # ViT processor: mean = std = 0.5
    torch.testing.assert_close(backbone.transform(image), expected, rtol=0, atol=1e-6)


def test_image_size_override_is_refused_for_a_processor_that_does_not_rescale_by_1_over_255(tmp_path):
    folder = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    config_path = folder / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    config["rescale_factor"] = 1 / 127.5
    config_path.write_text(json.dumps(config))
    with pytest.raises(NotImplementedError, match="rescales pixels by 0.00784.*leave image_size"):
        load_backbone(f"local-dir:{folder}", image_size=24)
    load_backbone(f"local-dir:{folder}")  # its own preprocessing still works


def test_classifier_checkpoint_without_a_trained_head_is_refused_with_the_way_out(tmp_path):
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                    image_size=32, patch_size=8, num_labels=0)
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    with pytest.raises(NotImplementedError, match="no single trained 'classifier'.*base model instead"):
        load_backbone(f"local-dir:{tmp_path / 'vit'}")


def test_batched_preprocessing_is_bit_identical_to_the_per_image_transform(tmp_path, tiny_timm):
    rng = np.random.default_rng(0)
    same_size = [Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)) for _ in range(5)]
    mixed_sizes = same_size[:2] + [Image.fromarray(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8))]
    vit_folder = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    for backbone in (load_backbone(f"local-dir:{tiny_timm}"), load_backbone(f"local-dir:{tiny_timm}", image_size=24),
                     load_backbone(f"local-dir:{vit_folder}", image_size=24), load_backbone(f"local-dir:{vit_folder}")):
        for images in (same_size, mixed_sizes):
            assert torch.equal(backbone.transform_batch(images), torch.stack([backbone.transform(i) for i in images]))


# ---- Hub ids from an offline cache -------------------------------------------------------------------------------

def test_hub_ids_load_offline_from_a_seeded_cache(tmp_path, offline_cache, tiny_timm):
    seed_hf_cache(offline_cache, "lead-hub-tests/tiny-timm", tiny_timm)
    vit = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    seed_hf_cache(offline_cache, "lead-hub-tests/tiny-vit", vit, commit="f" * 40)

    timm_backbone = load_backbone("hf-hub:lead-hub-tests/tiny-timm", image_size=32)
    assert (timm_backbone.library, timm_backbone.revision) == ("timm", FAKE_COMMIT)
    local = load_backbone(f"local-dir:{tiny_timm}", image_size=32)
    pixels = random_pixels(2, 32)
    torch.testing.assert_close(timm_backbone(pixels)[0], local(pixels)[0])

    vit_backbone = load_backbone("lead-hub-tests/tiny-vit", revision="main")
    assert (vit_backbone.library, vit_backbone.revision) == ("transformers", "f" * 40)
    assert resolve_revision("hf-hub:lead-hub-tests/tiny-timm@main") == FAKE_COMMIT


def test_registered_timm_name_resolves_to_its_hub_repo(offline_cache, tiny_timm):
    seed_hf_cache(offline_cache, "timm/test_efficientnet.r160_in1k", tiny_timm)
    backbone = load_backbone("test_efficientnet", image_size=32)
    assert (backbone.model_id, backbone.library, backbone.revision) == ("test_efficientnet", "timm", FAKE_COMMIT)


def test_hub_id_missing_from_the_offline_cache_names_the_fix(offline_cache):
    with pytest.raises(LookupError, match="not in the local HF cache"):
        load_backbone("hf-hub:lead-hub-tests/absent")


def test_unknown_bare_name_is_rejected_with_the_accepted_forms():
    with pytest.raises(ValueError, match="local-dir:"):
        load_backbone("no_such_timm_model_name")


# ---- Hub search --------------------------------------------------------------------------------------------------

def test_search_hub_models_keeps_loadable_image_classifiers_in_the_parameter_range(monkeypatch):
    from hub_server import LoopbackHub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with LoopbackHub() as hub:
        def add(repo_id, downloads, params, **info):
            hub.store.create_repo("model", repo_id, info={
                "downloads": downloads, "pipeline_tag": "image-classification", "library_name": "timm",
                "tags": ["timm", "image-classification"],
                "safetensors": None if params is None else {"parameters": {"F32": params}, "total": params},
                **info})

        add("org/small", 50, 2_000_000)
        add("org/popular", 900, 5_000_000)
        add("org/gated", 1000, 3_000_000, gated="auto")
        add("org/disabled", 800, 3_000_000, disabled=True)
        add("org/huge", 700, 90_000_000)
        add("org/unknown-size", 600, None)
        add("org/detector", 950, 4_000_000, pipeline_tag="object-detection")
        add("org/hf", 400, 4_000_000, library_name="transformers", tags=["transformers"])

        found = search_hub_models(min_params=1_000_000, max_params=10_000_000, limit=10, endpoint=hub.endpoint)
        assert [candidate.model_id for candidate in found] == ["org/popular", "org/hf", "org/small"]
        assert found[0].num_parameters == 5_000_000 and found[0].downloads == 900

        timm_only = search_hub_models(library="timm", limit=2, endpoint=hub.endpoint)
        assert [candidate.model_id for candidate in timm_only] == ["org/popular", "org/huge"]
