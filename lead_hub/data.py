"""Datasets of labelled images: resolve a source, find its image and label columns, decode images to RGB.

This module is the only one that imports ``datasets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from PIL import Image


@dataclass
class LabeledImages:
    """A split of an image-classification dataset with its detected columns.

    ``labels`` are integers 0..K-1 aligned with ``dataset`` rows; ``class_names[k]`` names label k.
    """

    dataset: datasets.Dataset
    image_column: str
    label_column: str
    class_names: list[str]
    labels: np.ndarray
    source: str
    split: str

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> Image.Image:
        """The RGB image of row ``index``."""
        return to_rgb(self.dataset[int(index)][self.image_column])

    def select(self, indices: np.ndarray) -> "LabeledImages":
        """The rows ``indices``, in that order."""
        indices = np.asarray(indices, dtype=int)
        return LabeledImages(
            dataset=self.dataset.select(indices.tolist()),
            image_column=self.image_column,
            label_column=self.label_column,
            class_names=self.class_names,
            labels=self.labels[indices],
            source=self.source,
            split=self.split,
        )


def load_parquet_split(source: str | Path, split: str) -> LabeledImages:
    """Load ``split`` from a parquet file, or from ``<folder>/<split>.parquet``.

    The image column is the one typed ``datasets.Image`` and the label column the one typed ``ClassLabel``.
    """
    path = Path(source)
    parquet = path if path.is_file() else path / f"{split}.parquet"
    if not parquet.is_file():
        raise FileNotFoundError(f"no parquet file for split {split!r} at {parquet}; pass a .parquet file or a "
                                f"folder holding {split}.parquet")
    dataset = datasets.load_dataset("parquet", data_files={split: str(parquet)}, split=split)
    image_column = _column_of_type(dataset, datasets.Image, "image")
    label_column = _column_of_type(dataset, datasets.ClassLabel, "label")
    class_names = list(dataset.features[label_column].names)
    labels = np.asarray(dataset[label_column], dtype=np.int64)
    return LabeledImages(dataset, image_column, label_column, class_names, labels, str(source), split)


def _column_of_type(dataset: datasets.Dataset, feature_type: type, role: str) -> str:
    matches = [name for name, feature in dataset.features.items() if isinstance(feature, feature_type)]
    if len(matches) != 1:
        raise ValueError(f"expected exactly one {feature_type.__name__} column for the {role}, found {matches} "
                         f"in columns {list(dataset.features)}; name the {role} column explicitly")
    return matches[0]


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
