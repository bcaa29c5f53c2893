"""PARC with the reference's PCA against lead_hub's, on the benchmark's real features.

The reference (Bolya et al.'s ``feature_reduce``) projects on 32 axes found by scikit-learn's randomized solver
with one power iteration (``svd_solver="randomized", iterated_power=1, random_state=1919``); lead_hub's
``parc`` uses its own PCA (a full ``eigh``, or 8 power iterations of a seeded subspace iteration on wide
features). This scores every zoo model on every development target three ways (lead_hub, scikit-learn's exact
PCA, the reference's randomized PCA, all through ``parc_of_projection``), and prints per target the τw of each
against the ground truth, the Kendall τ between lead_hub's and the reference's model orders, and how far the
randomized subspace is from the exact one (mean squared cosine of the principal angles, 1 = same subspace), and the
largest score differences on models whose features vary in at least 32 dimensions (on the others, a 32-axis PCA
standardises empty components, and scikit-learn's scores turn on round-off).
Features come from the benchmark's cache (``.lead_hub_cache/benchmark``; extracted there when missing).

    python benchmarks/parc_pca_effect.py        # → benchmarks/results/parc_pca_effect.csv and a markdown table
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmark import DEVELOPMENT_TARGETS, benchmark_features, zoo_model_ids  # noqa: E402
from lead_hub.evaluation import kendall_tau, weighted_tau  # noqa: E402
from lead_hub.leaderboard import markdown_table  # noqa: E402
from lead_hub.metrics import get  # noqa: E402
from lead_hub.metrics.parc import PCA_DIMS, parc_of_projection  # noqa: E402

SHARED = REPOSITORY.parent / "shared" / "data"
RESULTS = REPOSITORY / "benchmarks" / "results"


def reference_projection(features: np.ndarray) -> PCA:
    return PCA(n_components=PCA_DIMS, svd_solver="randomized", iterated_power=1, random_state=1919).fit(features)


def main() -> None:
    threadpool_limits(1)
    models = zoo_model_ids(SHARED / "zoo")
    truth = pd.read_csv(RESULTS / "ground_truth.csv").set_index(["target", "model"])["test_acc"]
    rows = []
    for target in DEVELOPMENT_TARGETS:
        extracted = benchmark_features(SHARED / "targets" / target, models,
                                       cache_dir=REPOSITORY / ".lead_hub_cache" / "benchmark")
        for model_id, item in extracted.items():
            features = np.asarray(item.features, dtype=np.float64)
            exact, randomized = PCA(n_components=PCA_DIMS, svd_solver="full").fit(features), reference_projection(features)
            overlap = float(np.mean(np.linalg.svd(exact.components_ @ randomized.components_.T, compute_uv=False) ** 2))
            rows.append({"target": target, "model": model_id.rsplit("/", 1)[-1],
                         "parc lead_hub": get("parc")(features, item.labels),
                         "parc exact PCA": parc_of_projection(exact.transform(features), item.labels),
                         "parc reference PCA": parc_of_projection(randomized.transform(features), item.labels),
                         "subspace overlap": overlap, "varying dimensions": int(np.sum(features.std(axis=0) > 0))})
        print(f"[{target}] scored {len(extracted)} models", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "parc_pca_effect.csv", index=False)
    summary = []
    for target, group in table.groupby("target", sort=False):
        accuracy = truth.loc[target].reindex(group["model"]).to_numpy()
        full_rank = group[group["varying dimensions"] >= PCA_DIMS]  # a 32-axis PCA of fewer varying dimensions
        # standardises empty components (round-off), so score differences are compared on the other models
        summary.append({"target": target,
                        **{f"τw {column[5:]}": weighted_tau(group[column], accuracy)
                           for column in ("parc lead_hub", "parc exact PCA", "parc reference PCA")},
                        "Kendall τ lead_hub vs reference order": kendall_tau(group["parc lead_hub"],
                                                                             group["parc reference PCA"]),
                        "max abs. lead_hub − reference": float(np.max(np.abs(full_rank["parc lead_hub"]
                                                                              - full_rank["parc reference PCA"]))),
                        "max abs. lead_hub − exact": float(np.max(np.abs(full_rank["parc lead_hub"]
                                                                         - full_rank["parc exact PCA"]))),
                        "mean subspace overlap": group["subspace overlap"].mean()})
    summary = pd.DataFrame(summary)
    mean = summary.drop(columns="target").mean()
    summary = pd.concat([summary, pd.DataFrame([{"target": "mean", **mean}])], ignore_index=True)
    print(markdown_table(summary, float_format=".3f"))


if __name__ == "__main__":
    main()
