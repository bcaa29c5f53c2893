"""extract_features / extract_many: values equal a direct forward pass, the disk cache skips finished work, an
interrupted run resumes from its last chunk, the batch halves on out-of-memory, and models shard across processes
under accelerate launch."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
import timm
import torch
from PIL import Image

import lead_hub.features as features_module
from lead_hub.data import LabeledImages, load_parquet_split
from lead_hub.features import (_atomic_save_npz, _load_checked_npz, dataset_fingerprint, extract_features,
                               extract_many)
from lead_hub.models import load_backbone
from test_models import save_tiny_timm, save_tiny_transformers

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models on a few images (conftest.py)

CLASS_NAMES = ["cat", "dog", "fox"]


def tiny_dataset(count: int = 20, seed: int = 0) -> datasets.Dataset:
    """``count`` random RGB images of assorted sizes, labels cycling over three classes."""
    rng = np.random.default_rng(seed)
    pictures = [Image.fromarray(rng.integers(0, 256, (24 + i % 5, 30 + i % 7, 3), dtype=np.uint8))
                for i in range(count)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES)})
    return datasets.Dataset.from_dict({"image": pictures, "label": [i % 3 for i in range(count)]}, features=features)


def labeled(dataset: datasets.Dataset) -> LabeledImages:
    return LabeledImages(dataset=dataset, image_column="image", label_column="label", class_names=CLASS_NAMES,
                         labels=np.asarray(dataset["label"], dtype=np.int64), source="tiny", split="train")


class CountingNetwork(torch.nn.Module):
    """Wraps a backbone network: counts forwards and images, and can fail like an interrupted or full device."""

    def __init__(self, network, *, fail_after: int | None = None, out_of_memory_above: int | None = None):
        super().__init__()
        self.network = network
        self.fail_after = fail_after
        self.out_of_memory_above = out_of_memory_above
        self.forwards = 0
        self.images = 0

    def forward(self, pixels):
        if self.out_of_memory_above is not None and len(pixels) > self.out_of_memory_above:
            raise torch.OutOfMemoryError(f"simulated: a batch of {len(pixels)} does not fit")
        if self.fail_after is not None and self.forwards == self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.forwards += 1
        self.images += len(pixels)
        return self.network(pixels)


def counted(backbone, **failures):
    network = CountingNetwork(backbone.network, **failures)
    return dataclasses.replace(backbone, network=network), network


@pytest.fixture(scope="module")
def timm_folder(tmp_path_factory) -> Path:
    return save_tiny_timm(tmp_path_factory.mktemp("timm") / "tiny")


@pytest.fixture(scope="module")
def backbone(timm_folder):
    return load_backbone(f"local-dir:{timm_folder}", image_size=32)


@pytest.fixture(scope="module")
def images() -> LabeledImages:
    return labeled(tiny_dataset())


def direct_forward(backbone, images):
    pixels = torch.stack([backbone.transform(images.image(i)) for i in range(len(images))])
    with torch.no_grad():
        features, logits = backbone(pixels)
    return features.numpy(), None if logits is None else logits.numpy()


def test_features_and_logits_equal_a_direct_forward_pass(backbone, images):
    result = extract_features(backbone, images, batch_size=8, num_workers=0, progress=False)
    expected_features, expected_logits = direct_forward(backbone, images)
    assert result.features.dtype == np.float32 and result.features.shape == (20, 256)
    np.testing.assert_allclose(result.features, expected_features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.source_logits, expected_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result.labels, images.labels)
    assert (result.device, result.dtype, result.from_cache) == ("cpu", "float32", False)
    assert result.revision == backbone.revision and result.model["feature_dim"] == 256
    assert result.seconds > 0 and result.images_per_second > 0


def test_decoding_in_worker_processes_gives_the_same_features(backbone, images):
    in_process = extract_features(backbone, images, batch_size=8, num_workers=0, progress=False)
    in_workers = extract_features(backbone, images, batch_size=8, num_workers=2, progress=False)
    np.testing.assert_array_equal(in_workers.features, in_process.features)


def test_bfloat16_precision_is_asked_for_recorded_and_cached_apart(tmp_path, backbone, images):
    exact = extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path, progress=False)
    fast = extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path, progress=False,
                            precision="bfloat16")
    assert (exact.dtype, fast.dtype, fast.from_cache) == ("float32", "bfloat16", False)
    assert fast.features.dtype == np.float32  # returned in float32 whatever the compute dtype
    difference = np.linalg.norm(fast.features - exact.features) / np.linalg.norm(exact.features)
    assert 0 < difference < 0.05  # bfloat16 keeps 8 mantissa bits: close, never equal
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, got 'float16'"):
        extract_features(backbone, images, progress=False, precision="float16")


def test_headless_transformers_model_has_no_source_logits_and_caches_that(tmp_path, images):
    folder = save_tiny_transformers(tmp_path / "dino", "dinov2", head=False)
    dino = load_backbone(f"local-dir:{folder}", image_size=32)
    first = extract_features(dino, images, batch_size=16, num_workers=0, cache_dir=tmp_path / "cache", progress=False)
    again = extract_features(dino, images, batch_size=16, num_workers=0, cache_dir=tmp_path / "cache", progress=False)
    assert first.source_logits is None and again.source_logits is None and again.from_cache
    np.testing.assert_allclose(first.features, direct_forward(dino, images)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(again.features, first.features)


def test_second_call_reads_the_cache_without_running_the_model(tmp_path, backbone, images):
    first_backbone, first_network = counted(backbone)
    first = extract_features(first_backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path,
                             progress=False)
    second_backbone, second_network = counted(backbone)
    second = extract_features(second_backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path,
                              progress=False)
    assert (first_network.forwards, second_network.forwards) == (3, 0)
    assert second.from_cache and second.seconds == first.seconds and second.dtype == first.dtype
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.source_logits, first.source_logits)


def test_cache_key_separates_datasets_samples_and_image_sizes(tmp_path, backbone, timm_folder, images):
    def run(model, data, key=None):
        return extract_features(model, data, batch_size=8, num_workers=0, cache_dir=tmp_path, dataset_key=key,
                                progress=False)

    run(backbone, images)
    assert not run(backbone, images.select(np.arange(10))).from_cache
    assert not run(load_backbone(f"local-dir:{timm_folder}", image_size=40), images).from_cache
    same_labels_other_pixels = labeled(tiny_dataset(seed=1))
    assert not run(backbone, same_labels_other_pixels).from_cache
    named = {"source": "tiny", "split": "train", "revision": None, "seed": 0, "samples_per_class": 5}
    assert not run(backbone, images, named).from_cache
    assert run(backbone, images, named).from_cache
    assert not run(backbone, images, {**named, "seed": 1}).from_cache


def test_interrupted_run_resumes_from_its_last_finished_chunk(tmp_path, backbone, images):
    expected = extract_features(backbone, images, batch_size=4, num_workers=0, progress=False)
    interrupted, network = counted(backbone, fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        extract_features(interrupted, images, batch_size=4, num_workers=0, cache_dir=tmp_path, chunk_size=8,
                         progress=False)
    assert network.forwards == 3  # chunk [0, 8) finished; the run died inside chunk [8, 16)
    assert [path.name for path in tmp_path.rglob("chunk-*.npz")] == ["chunk-000000000-000000008.npz"]
    resumed_backbone, resumed = counted(backbone)
    result = extract_features(resumed_backbone, images, batch_size=4, num_workers=0, cache_dir=tmp_path,
                              chunk_size=8, progress=False)
    assert (resumed.forwards, resumed.images) == (3, 12)
    np.testing.assert_allclose(result.features, expected.features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.source_logits, expected.source_logits, rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.rglob("chunk-*.npz")) and not list(tmp_path.rglob("*.tmp*"))


def test_out_of_memory_halves_the_batch_until_it_fits(backbone, images, caplog):
    expected = extract_features(backbone, images, batch_size=8, num_workers=0, progress=False)
    small_device, network = counted(backbone, out_of_memory_above=3)
    with caplog.at_level(logging.WARNING, logger="lead_hub.features"):
        result = extract_features(small_device, images, batch_size=8, num_workers=0, progress=False)
    assert result.batch_size == 2 and network.images == 20
    assert [r.getMessage().rsplit(" ", 1)[-1] for r in caplog.records if "out of memory" in r.getMessage()] == [
        "4", "2"]
    np.testing.assert_allclose(result.features, expected.features, rtol=1e-5, atol=1e-5)


def test_out_of_memory_for_a_single_image_is_raised(backbone, images):
    hopeless, _ = counted(backbone, out_of_memory_above=0)
    with pytest.raises(torch.OutOfMemoryError):
        extract_features(hopeless, images, batch_size=4, num_workers=0, progress=False)


def test_extract_many_does_not_load_a_model_whose_features_are_cached(tmp_path, timm_folder, images, monkeypatch):
    transformers_folder = save_tiny_transformers(tmp_path / "vit", "vit", head=True)
    model_ids = [f"local-dir:{transformers_folder}", f"local-dir:{timm_folder}"]
    first = extract_many(model_ids, images, image_size=32, num_workers=0, cache_dir=tmp_path / "cache",
                         progress=False)
    assert list(first) == model_ids and first[model_ids[0]].source_logits.shape == (20, 4)

    def no_loading(*args, **kwargs):
        raise AssertionError("a cached model was loaded")

    monkeypatch.setattr(features_module, "load_backbone", no_loading)
    second = extract_many(model_ids, images, image_size=32, num_workers=0, cache_dir=tmp_path / "cache",
                          progress=False)
    assert all(result.from_cache for result in second.values())
    np.testing.assert_array_equal(second[model_ids[1]].features, first[model_ids[1]].features)


def test_extract_many_skips_or_raises_on_a_broken_model(tmp_path, timm_folder, images):
    model_ids = [f"local-dir:{tmp_path / 'missing'}", f"local-dir:{timm_folder}"]
    kept = extract_many(model_ids, images, image_size=32, num_workers=0, progress=False, on_error="skip")
    assert list(kept) == [model_ids[1]]
    with pytest.raises(FileNotFoundError, match="missing"):
        extract_many(model_ids, images, image_size=32, num_workers=0, progress=False)


def test_dataset_fingerprint_follows_the_content():
    assert dataset_fingerprint(labeled(tiny_dataset())) == dataset_fingerprint(labeled(tiny_dataset()))
    assert dataset_fingerprint(labeled(tiny_dataset())) != dataset_fingerprint(labeled(tiny_dataset(seed=1)))
    reordered = labeled(tiny_dataset()).select(np.arange(20)[::-1])
    assert dataset_fingerprint(reordered) != dataset_fingerprint(labeled(tiny_dataset()))


def test_dataset_fingerprint_of_images_stored_as_paths_follows_the_files(tmp_path):
    paths = []
    for index in range(3):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(paths[-1])
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES)})

    def fingerprint():
        return dataset_fingerprint(labeled(datasets.Dataset.from_dict({"image": paths, "label": [0, 1, 2]},
                                                                      features=features)))

    before = fingerprint()
    Image.new("RGB", (8, 8), (255, 255, 255)).save(paths[1])
    assert fingerprint() != before


@pytest.mark.slow
def test_accelerate_launch_shards_models_across_two_processes(two_process_run):
    model_ids = list(two_process_run.model_ids)
    reports = two_process_run.reports("features")  # extract_many on a parquet split (SHARDING_SCRIPT, conftest.py)
    assert [report["processes"] for report in reports] == [2, 2]
    assert sorted(reports[0]["computed"] + reports[1]["computed"]) == sorted(model_ids)
    assert reports[0]["computed"] == [model_ids[0]] and reports[1]["computed"] == [model_ids[1]]
    reference = extract_many(model_ids, load_parquet_split(two_process_run.parquet, "train"), image_size=32,
                             num_workers=0, progress=False)
    for report in reports:
        for model_id in model_ids:
            np.testing.assert_allclose(report["features"][model_id], reference[model_id].features, rtol=1e-5,
                                       atol=1e-5)


@pytest.mark.shared_data
def test_zoo_model_features_at_64_px_match_its_own_forward_head(shared_data):
    zoo = json.loads((shared_data / "zoo" / "zoo.json").read_text())
    entry = next(model for model in zoo["models"] if model["slug"] == "mobilenetv2_100.coral_in1k")
    folder = shared_data / "zoo" / entry["folder"]
    eurosat = load_parquet_split(shared_data / "targets" / "eurosat", "test").select(np.arange(6))
    result = extract_features(load_backbone(f"local-dir:{folder}", image_size=64), eurosat, batch_size=4,
                              num_workers=0, progress=False)

    # EuroSAT images are 64×64 already, so the 64 px protocol is the model's normalisation alone.
    pixels = np.stack([np.asarray(eurosat.image(i), dtype=np.float64) / 255 for i in range(len(eurosat))])
    assert pixels.shape == (6, 64, 64, 3)
    mean, std = (np.asarray(entry["preprocessing"][key]) for key in ("mean", "std"))
    x = torch.from_numpy(((pixels - mean) / std).transpose(0, 3, 1, 2)).float()
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
        expected_logits = model(x).numpy()
    np.testing.assert_allclose(result.features, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.source_logits, expected_logits, rtol=1e-4, atol=1e-3)
    assert result.features.shape == (6, entry["num_features"])


# -- issue 13: memory bounded by the batch, caches that lie -------------------------------------------------------


def test_a_batch_over_the_pixel_budget_is_transformed_in_groups_giving_the_same_features(backbone, images):
    whole = extract_features(backbone, images, batch_size=8, num_workers=0, progress=False)
    calls = []
    transform_batch = backbone.transform_batch

    def recording(pictures):
        calls.append(sum(picture.width * picture.height for picture in pictures))
        return transform_batch(pictures)

    grouped_backbone = dataclasses.replace(backbone)
    object.__setattr__(grouped_backbone, "transform_batch", recording)
    limits = features_module.DecodeLimits(max_batch_pixels=3 * 34 * 36)  # about four of the tiny images
    loader_dataset = features_module._TransformedImages(images, grouped_backbone, limits)
    grouped = loader_dataset.__getitems__(list(range(8)))
    assert len(calls) >= 2 and max(calls) <= limits.max_batch_pixels
    with torch.inference_mode():
        features, _ = backbone.network(grouped)
    np.testing.assert_allclose(features.numpy(), whole.features[:8], rtol=1e-5, atol=1e-5)


def test_huge_images_are_decoded_shrunk_so_the_batch_holds_only_small_pictures(backbone):
    big = [Image.fromarray(np.full((1600, 1200, 3), value, dtype=np.uint8)) for value in (10, 200)]
    dataset = datasets.Dataset.from_dict(
        {"image": big * 2, "label": [0, 1, 0, 1]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}))
    huge = LabeledImages(dataset=dataset, image_column="image", label_column="label", class_names=["a", "b"],
                         labels=np.array([0, 1, 0, 1]), source="huge", split="train")
    seen = []
    transform_batch = backbone.transform_batch
    shrinking = dataclasses.replace(backbone)
    object.__setattr__(shrinking, "transform_batch",
                       lambda pictures: seen.extend(p.size for p in pictures) or transform_batch(pictures))
    features_module._TransformedImages(huge, shrinking).__getitems__([0, 1, 2, 3])
    assert seen and all(64 <= min(size) < 128 for size in seen)  # 2-4 times the model's 32 px, not 1200 px


def corrupt_cache_file(cache: Path, name: str) -> Path:
    (path,) = cache.rglob(name)
    if name.endswith(".npz"):
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_text("{not json")
    return path


@pytest.mark.parametrize("name", ["features.npz", "result.json"])
def test_a_corrupt_cache_entry_is_recomputed_with_a_warning_naming_it(tmp_path, backbone, images, caplog, name):
    first = extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path, progress=False)
    bad = corrupt_cache_file(tmp_path, name)
    again_backbone, network = counted(backbone)
    with caplog.at_level(logging.WARNING, logger="lead_hub.features"):
        again = extract_features(again_backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path,
                                 progress=False)
    assert network.forwards == 3 and not again.from_cache
    assert f"feature cache entry {bad.parent} is unreadable" in caplog.text and "recomputing it" in caplog.text
    np.testing.assert_array_equal(again.features, first.features)
    third = extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path, progress=False)
    assert third.from_cache  # the recomputed entry was written back whole


def test_a_cache_entry_of_the_wrong_shape_is_not_trusted(tmp_path, backbone, images, caplog):
    extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path, progress=False)
    (path,) = tmp_path.rglob("features.npz")
    stored = _load_checked_npz(path)
    _atomic_save_npz(path, **{**stored, "features": stored["features"][:5]})  # a valid checksum: the shape is wrong
    with caplog.at_level(logging.WARNING, logger="lead_hub.features"):
        again = extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path, progress=False)
    assert not again.from_cache and again.features.shape == (20, 256)
    assert "features of shape (5, 256)" in caplog.text


@pytest.mark.parametrize("tamper", ["nan_with_checksum", "random_keeping_checksum", "no_checksum"])
def test_cache_values_are_verified_by_checksum_and_finiteness(tmp_path, backbone, images, caplog, tamper):
    """Issue 20: NaN features of the right shape left the model unscored on every rerun, and random features of the
    right shape moved scores; each is now found on read and recomputed with a one-line warning."""
    first = extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path, progress=False)
    (path,) = tmp_path.rglob("features.npz")
    with np.load(path) as arrays:
        stored = dict(arrays)
    features = stored["features"].copy()
    if tamper == "nan_with_checksum":
        features[3, 7] = np.nan
        arrays = {name: array for name, array in stored.items() if name != "arrays_sha256"}
        _atomic_save_npz(path, **{**arrays, "features": features})
        said = "features holds non-finite values"
    elif tamper == "random_keeping_checksum":
        features = np.random.default_rng(0).standard_normal(features.shape).astype(np.float32)
        np.savez(path, **{**stored, "features": features})
        said = "do not match their checksum"
    else:
        np.savez(path, **{name: array for name, array in stored.items() if name != "arrays_sha256"})
        said = "has no checksum"
    with caplog.at_level(logging.WARNING, logger="lead_hub.features"):
        again = extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path, progress=False)
    assert not again.from_cache and np.array_equal(again.features, first.features)
    (warning,) = [record.getMessage() for record in caplog.records if "feature cache entry" in record.getMessage()]
    assert said in warning and "recomputing it" in warning and "\n" not in warning
    assert extract_features(backbone, images, batch_size=8, num_workers=0, cache_dir=tmp_path,
                            progress=False).from_cache


def test_a_corrupt_chunk_is_recomputed(tmp_path, backbone, images, caplog):
    interrupted, _ = counted(backbone, fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        extract_features(interrupted, images, batch_size=4, num_workers=0, cache_dir=tmp_path, chunk_size=8,
                         progress=False)
    corrupt_cache_file(tmp_path, "chunk-*.npz")
    resumed_backbone, resumed = counted(backbone)
    with caplog.at_level(logging.WARNING, logger="lead_hub.features"):
        extract_features(resumed_backbone, images, batch_size=4, num_workers=0, cache_dir=tmp_path, chunk_size=8,
                         progress=False)
    assert resumed.images == 20 and "feature cache chunk" in caplog.text
