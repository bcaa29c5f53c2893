"""The settings of a ground-truth fine-tuning, apart from the code that runs it (so the CLI can show the
defaults without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneProtocol:
    """Every setting of a ground-truth fine-tuning; the defaults are the offline benchmark's protocol."""

    image_size: int = 64
    max_train_samples: int = 1000
    sample_seed: int = 0
    validation_fraction: float = 0.2
    learning_rates: tuple[float, ...] = (0.1, 0.01, 0.001)
    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 8
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 1e-4
    crop_scale: tuple[float, float] = (0.6, 1.0)

    def __post_init__(self):
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not self.learning_rates or not self.seeds:
            raise ValueError("give at least one learning rate and one seed")
        if min(self.image_size, self.epochs, self.batch_size, self.max_train_samples) < 1:
            raise ValueError(f"image_size, epochs, batch_size and max_train_samples must be >= 1: {self}")
