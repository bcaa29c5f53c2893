"""Bounded image decoding: an encoded image becomes an 8-bit RGB picture no larger than the model needs.

Every image of a ranking passes through :func:`decode_image`, so what one image may cost in memory is decided
here, before its pixels are decoded:

* the header is read first (Pillow opens lazily) and an image of more than ``DecodeLimits.max_image_pixels``
  pixels is refused (:class:`ImageDecodeError`), as is one so elongated that resizing its short side up to the
  model's input would exceed the same budget;
* with ``min_side`` (the side the model's preprocessing resizes to), a JPEG is decoded at the smallest DCT scale
  that keeps both sides at least ``2 * min_side`` (``Image.draft``), and any image whose short side is at least
  ``4 * min_side`` is shrunk by an integer factor (``Image.reduce``) to a short side between ``2 * min_side`` and
  ``4 * min_side``. The model's own resize then runs on that. Images already that small are untouched, so their
  features are exactly those of a full decode;
* EXIF orientation is applied as ``datasets.Image`` does, then :func:`to_rgb` converts the mode.

Pillow's own decompression-bomb guard stays on; its warning is an error here.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

_KEPT_SIDE_FACTOR = 2
"""Shrinking keeps both sides at least this many times ``min_side``: the model's resize then still downsamples."""


class ImageDecodeError(ValueError):
    """One image cannot be used: it does not decode, or it exceeds the pixel budget. The message is one line."""


@dataclass(frozen=True)
class DecodeLimits:
    """Pixel budgets of decoding.

    ``max_image_pixels`` bounds one image's pixels as stored (and as upscaled to the model's short side);
    at 4 bytes a pixel the default, Pillow's own warning threshold, is about 360 MB of decoded memory.
    ``max_batch_pixels`` bounds the decoded (already shrunk) pixels held at once while a batch is transformed:
    a batch over it is transformed in smaller groups, which gives the same tensor.
    """

    max_image_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485
    max_batch_pixels: int = 64 * 1024 * 1024


DEFAULT_DECODE_LIMITS = DecodeLimits()


def decode_image(encoded: dict, *, min_side: int | None = None, limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
                 budget_side: int | None = None) -> Image.Image:
    """The RGB picture of ``encoded`` (``{"bytes": ..., "path": ...}`` as ``datasets.Image(decode=False)`` keeps
    it), shrunk on decode towards ``min_side`` (see the module docstring). The pixel budget is checked for a
    resize to ``budget_side`` (default ``min_side``). Raises :class:`ImageDecodeError`."""
    data = encoded.get("bytes")
    source = io.BytesIO(data) if data is not None else encoded.get("path")
    if source is None:
        raise ImageDecodeError("no image bytes and no path")
    if data is None and not Path(source).is_file():
        raise ImageDecodeError("its image file is missing")  # never the path: it may be a server's
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                check_pixel_budget(image.size, budget_side or min_side, limits)
                if min_side is not None and image.format == "JPEG":
                    image.draft(None, _kept_size(image.size, min_side))
                image.load()
                picture = ImageOps.exif_transpose(image)
                if min_side is not None:
                    picture = _reduced(picture, min_side)
                return to_rgb(picture)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageDecodeError(f"a decompression bomb ({error_line(error)})") from error
    except Exception as error:  # noqa: BLE001 - Pillow raises many types for broken files; each becomes one line
        raise ImageDecodeError(f"does not decode as an image ({type(error).__name__}: {error_line(error)})") \
            from error


def check_pixel_budget(size: tuple[int, int], min_side: int | None, limits: DecodeLimits) -> None:
    """Raise :class:`ImageDecodeError` when an image of ``size`` would decode (or be resized) past the budget."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageDecodeError(f"has an empty size {width}×{height}")
    pixels = width * height
    if pixels > limits.max_image_pixels:
        raise ImageDecodeError(f"is {width}×{height} pixels, more than the {limits.max_image_pixels:,} one image "
                               "may decode to (DecodeLimits.max_image_pixels); downscale it")
    short = min(width, height)
    if min_side is not None and short < min_side and pixels * (min_side / short) ** 2 > limits.max_image_pixels:
        raise ImageDecodeError(f"is {width}×{height} pixels: resizing its short side to {min_side} would exceed "
                               f"the {limits.max_image_pixels:,}-pixel budget; crop it to a saner aspect ratio")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert grayscale, 16-bit, palette and RGBA images to 8-bit RGB (alpha composited on white)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.max() > 0 else 1.0
        image = Image.fromarray(np.round(array / peak * 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[-1])
        return background
    return image.convert("RGB")


def _kept_size(size: tuple[int, int], min_side: int) -> tuple[int, int]:
    """The smallest size of the same aspect whose short side is ``_KEPT_SIDE_FACTOR * min_side`` (or ``size``)."""
    scale = min(1.0, _KEPT_SIDE_FACTOR * min_side / min(size))
    return max(1, int(np.ceil(size[0] * scale))), max(1, int(np.ceil(size[1] * scale)))


def _reduced(image: Image.Image, min_side: int) -> Image.Image:
    """``image`` shrunk by the largest integer factor keeping its short side >= ``_KEPT_SIDE_FACTOR * min_side``."""
    factor = min(image.size) // (_KEPT_SIDE_FACTOR * min_side)
    if factor < 2:
        return image
    if image.mode not in ("1", "L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F"):
        image = to_rgb(image)
    return image.reduce(factor)


def error_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when empty): what a note or a warning shows."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
