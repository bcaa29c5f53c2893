"""The benchmark report reads the committed results and computes what the README quotes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPOSITORY_ROOT

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
import report  # noqa: E402


def _runs(accuracies: dict[int, list[float]]) -> pd.DataFrame:
    """Final runs of three models on one target, one test accuracy per (seed, model)."""
    rows = [{"model": f"m{index}", "target": "eurosat", "phase": "final", "lr": 0.001, "seed": seed,
             "test_acc": accuracy, "test_mean_class_acc": accuracy, "seconds": 1.0, "cpu_seconds": 1.0,
             "images": 1000, "epochs": 8, "train_cpu_seconds": 1.0, "image_size": 64, "batch_size": 64}
            for seed, row in accuracies.items() for index, accuracy in enumerate(row)]
    return pd.DataFrame(rows)


def test_reproducibility_compares_the_two_seed_pairs():
    # Seeds 0-1 order the models m2 > m1 > m0, seeds 2-3 the reverse: the truth disagrees with itself completely.
    runs = _runs({0: [0.5, 0.6, 0.7], 1: [0.5, 0.6, 0.7], 2: [0.7, 0.6, 0.5], 3: [0.7, 0.6, 0.5]})
    table = report.reproducibility_table(runs).set_index("target")
    assert table.loc["eurosat", "τw (seeds 0-1 vs 2-3)"] == pytest.approx(-1.0)
    assert table.loc["eurosat", "mean abs. difference"] == pytest.approx((0.2 + 0.0 + 0.2) / 3)
    assert table.loc["eurosat", "mean abs. seed 0 − seed 1"] == pytest.approx(0.0)


def test_report_runs_on_the_committed_results():
    done = subprocess.run([sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "report.py")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for heading in ("### Ground truth", "### How well the ground truth reproduces itself", "### τw at full data",
                    "### LEAD's variants by the rule for defaults"):
        assert heading in done.stdout
