"""Bounded decoding: images shrink on decode towards the model's side, budgets are checked from the header, and
small images decode exactly as ``datasets.Image`` decodes them."""

from __future__ import annotations

import io

import datasets
import numpy as np
import pytest
from PIL import Image

from lead_hub.decoding import DecodeLimits, ImageDecodeError, decode_image


def encoded(image: Image.Image, image_format: str = "PNG", **options) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return {"bytes": buffer.getvalue(), "path": None}


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_a_large_image_is_shrunk_on_decode_keeping_twice_the_model_side(image_format):
    picture = decode_image(encoded(noise(1200, 900), image_format), min_side=64)
    assert 128 <= min(picture.size) < 256 and picture.mode == "RGB"
    assert picture.size[0] / picture.size[1] == pytest.approx(1200 / 900, rel=0.02)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_a_small_image_decodes_exactly_as_datasets_does(image_format):
    cell = encoded(noise(200, 150), image_format)
    reference = datasets.Image().decode_example(cell).convert("RGB")
    assert np.array_equal(np.asarray(decode_image(cell, min_side=64)), np.asarray(reference))
    assert np.array_equal(np.asarray(decode_image(cell)), np.asarray(reference))


def test_exif_orientation_is_applied_as_datasets_does():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise
    cell = encoded(noise(40, 20), "JPEG", exif=exif)
    assert decode_image(cell).size == datasets.Image().decode_example(cell).size == (20, 40)


def test_the_pixel_budget_is_checked_from_the_header_before_decoding():
    limits = DecodeLimits(max_image_pixels=10_000)
    with pytest.raises(ImageDecodeError, match=r"is 200×100 pixels, more than the 10,000"):
        decode_image(encoded(Image.new("RGB", (200, 100))), limits=limits)
    # an elongated image whose short side the model's resize would blow up past the budget
    with pytest.raises(ImageDecodeError, match=r"resizing its short side to 64 would exceed"):
        decode_image(encoded(Image.new("RGB", (2000, 2))), min_side=64, limits=limits)
    assert decode_image(encoded(Image.new("RGB", (2000, 2))), limits=limits).size == (2000, 2)


@pytest.mark.parametrize("content, reason", [(b"", "does not decode as an image"),
                                             (b"plain text", "does not decode as an image")])
def test_broken_bytes_give_one_line(content, reason):
    with pytest.raises(ImageDecodeError, match=reason) as error:
        decode_image({"bytes": content, "path": None})
    assert "\n" not in str(error.value)


def test_a_truncated_jpeg_is_refused_even_when_shrunk():
    cell = encoded(noise(400, 400), "JPEG")
    cell["bytes"] = cell["bytes"][: len(cell["bytes"]) // 2]
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(cell, min_side=16)
