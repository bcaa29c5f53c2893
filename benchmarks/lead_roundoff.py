"""How far LEAD's scores move under round-off-sized feature noise, with and without sample ids, and why.

Every feature is multiplied by (1 + 1e-6·noise), noise ~ N(0, 1), and the model is scored again; the table gives,
per LEAD variant, the largest and median relative change of a score over models and draws, how many models moved by
more than 1e-6 relative, the largest relative change of each part (log_init alone, scored with zero rates; λ̄ over
the classes), with sample ids (each image's row in its source split) and without (``lead`` on the arrays alone:
out-of-fold folds are then dealt by the features' content, and every other variant makes no per-sample choice),
and whether the models' order changed. On the benchmark's real features of a target (read from the
benchmark's feature cache, extracted when missing) and on a synthetic problem (3 classes of 200 samples, 32
dimensions).

The whole-network variants (``ntk="full"``, S = 64, real targets, ids only) read the benchmark's cached backbone
norms: with noisy features the head's part of each ‖g‖² is recomputed in closed form from the noisy features (the
head's input transform included), the backbone's part, a function of the images, is kept.

Real round-off too (``--extraction-batch-size B``): the features extracted again with another batch size (the
benchmark extracts 64 images per batch), which changes how the float32 kernels sum, are scored in place of the
noisy ones (one "draw"; the whole-network backbone part kept as above).

    python benchmarks/lead_roundoff.py --extraction-batch-size 1   # pacs_sketch → results/lead_roundoff.csv
    python benchmarks/lead_roundoff.py --targets flowers5 --draws 1 --output /tmp/roundoff.csv
    python benchmarks/lead_roundoff.py --synthetic-only   # the synthetic rows again, the real rows kept
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from lead_hub import metrics  # noqa: E402
from benchmark import IMAGE_SIZE, benchmark_features, benchmark_images, zoo_model_ids  # noqa: E402
from benchmark_lead import FULL_NTK_SAMPLES_PER_CLASS, PRE_ROUND_DEFAULT  # noqa: E402
from lead_hub.features import extract_many  # noqa: E402
from lead_hub.metrics._lead_ntk import ntk_head, per_sample_gradient_sq_norms  # noqa: E402
from lead_hub.metrics.lead import LeadOptions  # noqa: E402
from lead_hub.ntk import lead_sq_norms  # noqa: E402

SHARED = REPOSITORY.parent / "shared" / "data"
#: Head-only variants (``lead`` on a feature matrix: the head's NTK in closed form), each option written out so a
#: row keeps its meaning when the package's defaults change.
VARIANTS = {"default (head NTK on arrays, in_sample)": {"ntk": "head"},
            "previous default (head, out_of_fold)": PRE_ROUND_DEFAULT,
            "leave_one_out": {**PRE_ROUND_DEFAULT, "fit": "leave_one_out"},
            "ntk_samples_per_class=16": {**PRE_ROUND_DEFAULT, "ntk_samples_per_class": 16}}
FULL_NTK = {"ntk": "full", "head_input": "standardized", "ntk_samples_per_class": FULL_NTK_SAMPLES_PER_CLASS}
#: the whole-network rows with the best mean τw of their log_init fit in the benchmark (the first: the default)
FULL_VARIANTS = {"ntk=full in_sample prob c=1e-8": {**FULL_NTK, "fit": "in_sample", "ce_form": "prob",
                                                    "rate_constant": 1e-8},
                 "ntk=full out_of_fold prob c=1e-7": {**FULL_NTK, "fit": "out_of_fold", "ce_form": "prob",
                                                      "rate_constant": 1e-7}}


def synthetic_problem() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Three 'models' (the same latent classes at three separations), labels, ids."""
    rng = np.random.default_rng(0)
    labels = np.arange(600) % 3
    centres, noise = rng.standard_normal((3, 32)), rng.standard_normal((600, 32))
    models = {f"separation {scale}": centres[labels] * scale + noise for scale in (0.5, 0.7, 0.9)}
    return models, labels, rng.permutation(3000)[:600]


def noisy_copy(features: np.ndarray, draw: int, index: int) -> np.ndarray:
    factor = 1 + 1e-6 * np.random.default_rng([draw, index]).standard_normal(features.shape)
    return (features * factor).astype(features.dtype)


class WholeNetworkNorms:
    """The per-sample ‖g‖² a whole-network variant reads, for clean or noisy features of one model: the cached
    backbone part plus the head part recomputed from the given features."""

    def __init__(self, model_id: str, images, features: np.ndarray, cache_dir: Path, lead_options=None):
        options = FULL_NTK if lead_options is None else lead_options
        self.settings = LeadOptions(**options)
        self.norms = lead_sq_norms(model_id, images, features, lead_options=options, cache_dir=cache_dir,
                                   image_size=IMAGE_SIZE, num_workers=0, progress=False)
        self.num_classes = len(np.unique(images.labels))

    def vector(self, features: np.ndarray) -> np.ndarray:
        """The N-vector ``lead(..., ntk_sq_norms=...)`` reads: LEAD's head (widths, seed, head input) drawn on
        ``features`` as ``lead_sq_norms`` draws it, its closed-form part added to the cached backbone part."""
        head = ntk_head(features, self.num_classes, widths=tuple(self.settings.head_widths), seed=self.settings.seed,
                        head_input=self.settings.resolved_head_input())
        head_part = per_sample_gradient_sq_norms(head.head, head.inputs(features, self.norms.rows))
        vector = np.full(len(features), np.nan)
        vector[self.norms.rows] = head_part + self.norms.backbone_sq_norms
        return vector


def relative(after: float, before: float) -> float:
    return abs(after / before - 1.0)


def measure(source: str, features_by_model: dict[str, np.ndarray], labels: np.ndarray, ids: np.ndarray,
            draws: int, whole_network: dict[str, WholeNetworkNorms] | None = None,
            perturbed: dict[str, np.ndarray] | None = None) -> list[dict]:
    """The table's rows for one source. ``perturbed``: each model's features from another extraction, scored in
    place of the noisy copies (then ``draws`` must be 1)."""
    lead = metrics.get("lead")
    perturbation = "x(1 + 1e-6 noise)" if perturbed is None else "extraction batch size"
    rows = []
    variants = {**VARIANTS, **(FULL_VARIANTS if whole_network else {})}
    for variant, options in variants.items():
        full = options.get("ntk") == "full"
        for keyed_by, sample_ids in (("sample ids", ids),) if full else (("sample ids", ids), ("no ids", None)):

            def score(model, features):
                extra = {"ntk_sq_norms": whole_network[model].vector(features)} if full else {}
                return lead(features, labels, sample_ids=sample_ids, return_diagnostics=True, **extra, **options)

            clean = {model: score(model, features) for model, features in features_by_model.items()}
            moves, log_init_moves, eigenvalue_moves, moved_models, order_changed = [], [], [], set(), 0
            for draw in range(draws):
                noisy = {}
                for index, (model, features) in enumerate(features_by_model.items()):
                    other = noisy_copy(features, draw, index) if perturbed is None else perturbed[model]
                    noisy[model] = score(model, other)
                    (before, parts), (after, noisy_parts) = clean[model], noisy[model]
                    moves.append(relative(after, before))
                    log_init_moves.append(relative(noisy_parts.classifier_only_score, parts.classifier_only_score))
                    eigenvalue_moves.append(float(np.max(np.abs(noisy_parts.class_eigenvalues
                                                                / parts.class_eigenvalues - 1.0))))
                    if moves[-1] >= 1e-6:
                        moved_models.add(model)
                order_changed += (sorted(clean, key=lambda m: clean[m][0])
                                  != sorted(noisy, key=lambda m: noisy[m][0]))
            rows.append({"source": source, "perturbation": perturbation, "variant": variant, "keyed_by": keyed_by,
                         "models": len(clean), "draws": draws, "max_relative_change": max(moves),
                         "median_relative_change": float(np.median(moves)),
                         "models_moved_1e-6_or_more": len(moved_models),
                         "max_relative_change_log_init_alone": max(log_init_moves),
                         "max_relative_change_eigenvalue": max(eigenvalue_moves),
                         "draws_with_order_changed": order_changed})
            print(f"{source:<14} {perturbation:<22} {variant:<32} {keyed_by:<10} max {max(moves):.1e}  "
                  f"median {np.median(moves):.1e}  {len(moved_models)} models >= 1e-6  "
                  f"log_init alone {max(log_init_moves):.1e}  λ̄ {max(eigenvalue_moves):.1e}  "
                  f"order changed in {order_changed}/{draws} draws", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["pacs_sketch"])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=REPOSITORY / ".lead_hub_cache" / "benchmark")
    parser.add_argument("--output", type=Path, default=REPOSITORY / "benchmarks" / "results" / "lead_roundoff.csv")
    parser.add_argument("--synthetic-only", action="store_true",
                        help="measure the synthetic problem only and keep the other sources' rows of --output")
    parser.add_argument("--extraction-batch-size", type=int, default=None, metavar="B",
                        help="also score features extracted again with B images per batch (cached under "
                             "<cache-dir>/batch-size-B)")
    arguments = parser.parse_args()
    with threadpool_limits(limits=1, user_api="blas"):  # as the benchmark scores LEAD
        rows = measure("synthetic", *synthetic_problem(), arguments.draws)
        if arguments.synthetic_only:
            kept = pd.read_csv(arguments.output)
            rows += kept[kept["source"] != "synthetic"].to_dict("records")
        for target in ([] if arguments.synthetic_only else arguments.targets):
            folder = SHARED / "targets" / target
            images = benchmark_images(folder)
            model_ids = zoo_model_ids(SHARED / "zoo")
            extracted = benchmark_features(folder, model_ids, cache_dir=arguments.cache_dir, images=images)
            features = {model.split("/")[-1]: result.features for model, result in extracted.items()}
            whole_network = {model.split("/")[-1]: WholeNetworkNorms(model, images, result.features,
                                                                     arguments.cache_dir)
                             for model, result in extracted.items()}
            rows += measure(target, features, images.labels, np.asarray(images.row_indices), arguments.draws,
                            whole_network)
            if arguments.extraction_batch_size:
                size = arguments.extraction_batch_size
                again = extract_many(model_ids, images, image_size=IMAGE_SIZE, batch_size=size, progress=False,
                                     cache_dir=arguments.cache_dir / f"batch-size-{size}")
                perturbed = {model.split("/")[-1]: result.features for model, result in again.items()}
                differences = [np.max(np.abs(perturbed[m] - features[m])) / np.max(np.abs(features[m]))
                               for m in features]
                print(f"{target}: batch size {size} moves features by up to {max(differences):.1e} of their largest "
                      "value", flush=True)
                rows += measure(target, features, images.labels, np.asarray(images.row_indices), 1, whole_network,
                                perturbed)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(arguments.output, index=False)
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
