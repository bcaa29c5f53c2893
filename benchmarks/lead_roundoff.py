"""How far LEAD's scores move under round-off-sized feature noise, with and without sample ids.

Every feature is multiplied by (1 + 1e-6·noise), noise ~ N(0, 1), and the model is scored again; the table gives,
per LEAD variant, the largest relative change of a score over the draws, keyed by sample ids (each image's row in
its source split) and keyed by the features' content (no ids), and whether the models' order changed. On the
benchmark's real features of a target (read from the benchmark's feature cache, extracted when missing) and on a
synthetic problem (3 classes of 200 samples, 32 dimensions).

    python benchmarks/lead_roundoff.py                          # pacs_sketch, 3 draws → benchmarks/results/lead_roundoff.csv
    python benchmarks/lead_roundoff.py --targets flowers5 --draws 1 --output /tmp/roundoff.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from lead_hub import metrics  # noqa: E402
from lead_hub.benchmark import benchmark_features, benchmark_images, zoo_model_ids  # noqa: E402

SHARED = REPOSITORY.parent / "shared" / "data"
VARIANTS = {"default (out_of_fold)": {}, "leave_one_out": {"fit": "leave_one_out"},
            "ntk_samples_per_class=16": {"ntk_samples_per_class": 16}}


def synthetic_problem() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Three 'models' (the same latent classes at three separations), labels, ids."""
    rng = np.random.default_rng(0)
    labels = np.arange(600) % 3
    centres, noise = rng.standard_normal((3, 32)), rng.standard_normal((600, 32))
    models = {f"separation {scale}": centres[labels] * scale + noise for scale in (0.5, 0.7, 0.9)}
    return models, labels, rng.permutation(3000)[:600]


def measure(source: str, features_by_model: dict[str, np.ndarray], labels: np.ndarray, ids: np.ndarray,
            draws: int) -> list[dict]:
    lead = metrics.get("lead")
    rows = []
    for variant, options in VARIANTS.items():
        for keyed_by, sample_ids in (("sample ids", ids), ("content", None)):
            clean = {model: lead(features, labels, sample_ids=sample_ids, **options)
                     for model, features in features_by_model.items()}
            moves, order_changed = [], 0
            for draw in range(draws):
                noisy = {}
                for index, (model, features) in enumerate(features_by_model.items()):
                    factor = 1 + 1e-6 * np.random.default_rng([draw, index]).standard_normal(features.shape)
                    noisy[model] = lead((features * factor).astype(features.dtype), labels, sample_ids=sample_ids,
                                        **options)
                    moves.append(abs(noisy[model] / clean[model] - 1.0))
                order_changed += sorted(clean, key=clean.get) != sorted(noisy, key=noisy.get)
            rows.append({"source": source, "variant": variant, "keyed_by": keyed_by, "models": len(clean),
                         "draws": draws, "max_relative_change": max(moves),
                         "median_relative_change": float(np.median(moves)), "draws_with_order_changed": order_changed})
            print(f"{source:<14} {variant:<26} {keyed_by:<10} max {max(moves):.1e}  median {np.median(moves):.1e}  "
                  f"order changed in {order_changed}/{draws} draws", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["pacs_sketch"])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=REPOSITORY / ".lead_hub_cache" / "benchmark")
    parser.add_argument("--output", type=Path, default=REPOSITORY / "benchmarks" / "results" / "lead_roundoff.csv")
    arguments = parser.parse_args()
    rows = measure("synthetic", *synthetic_problem(), arguments.draws)
    for target in arguments.targets:
        folder = SHARED / "targets" / target
        images = benchmark_images(folder)
        extracted = benchmark_features(folder, zoo_model_ids(SHARED / "zoo"), cache_dir=arguments.cache_dir)
        features = {model.split("/")[-1]: result.features for model, result in extracted.items()}
        rows += measure(target, features, images.labels, np.asarray(images.row_indices), arguments.draws)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(arguments.output, index=False)
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
