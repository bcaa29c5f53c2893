"""The benchmark report reads the committed results and computes what the README quotes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPOSITORY_ROOT

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
import report  # noqa: E402

from lead_hub.evaluation import BootstrapTau  # noqa: E402


def _finals(accuracies: dict[int, list[float]]) -> pd.DataFrame:
    """Final runs of three models on one target, one test accuracy per (seed, model)."""
    return pd.DataFrame([{"model": f"m{index}", "target": "eurosat", "seed": seed, "test_acc": accuracy}
                         for seed, row in accuracies.items() for index, accuracy in enumerate(row)])


def test_reproducibility_compares_the_two_seed_pairs():
    # Seeds 0-1 order the models m2 > m1 > m0, seeds 2-3 the reverse: the truth disagrees with itself completely.
    finals = _finals({0: [0.5, 0.6, 0.7], 1: [0.5, 0.6, 0.7], 2: [0.7, 0.6, 0.5], 3: [0.7, 0.6, 0.5]})
    table = report.reproducibility_table(finals).set_index("target")
    assert table.loc["eurosat", "τw (seeds 0-1 vs 2-3)"] == pytest.approx(-1.0)
    assert table.loc["eurosat", "mean abs. difference"] == pytest.approx((0.2 + 0.0 + 0.2) / 3)
    assert table.loc["eurosat", "mean abs. seed 0 − seed 1"] == pytest.approx(0.0)


def _bootstrap(point_full, resampled_full):
    """A hand-made bootstrap of LEAD variants on two targets, each resample drawing both targets once."""
    variants = tuple(point_full)
    point = np.array([point_full[v] for v in variants], dtype=float)
    resampled = np.stack([np.array([r[v] for v in variants], dtype=float) for r in resampled_full])
    draws = np.tile([0, 1], (len(resampled_full), 1))
    return BootstrapTau(variants, ("a", "b"), point, resampled, draws, seed=0)


def test_defaults_rule_ties_by_interval_then_low_data_then_speed():
    # Full data: "lead" best; "lead x" always within ±0.02 of it across resamples (tied); "lead y" always 0.2
    # below (excluded); the SVM variant is best of all but not eligible.
    def resample(shift):
        return {"lead": [0.5, 0.5], "lead x": [0.5 + shift, 0.5 - shift], "lead y": [0.3, 0.3],
                "lead classifier=ovr_svm": [0.9, 0.9]}
    full = _bootstrap(resample(0.0), [resample(s) for s in (-0.02, 0.0, 0.02, 0.01)])
    # Low data: "lead x" is clearly better than "lead" (its paired interval excludes 0) → chosen although slower.
    low_point = {"lead": [0.2, 0.2], "lead x": [0.3, 0.3], "lead y": [0.9, 0.9], "lead classifier=ovr_svm": [0, 0]}
    low = _bootstrap(low_point, [low_point] * 4)
    seconds = pd.Series({"lead": 0.1, "lead x": 0.5, "lead y": 0.1, "lead classifier=ovr_svm": 5.0})
    chosen, table = report.apply_defaults_rule(full, low, seconds)
    assert chosen == "lead x"
    verdicts = table.set_index("variant")["verdict"].to_dict()
    assert verdicts["lead y"].startswith("below") and verdicts["lead classifier=ovr_svm"].startswith("not eligible")
    assert verdicts["lead"] == "tied at full data, below in low data"
    # Equal low-data figures: both stay tied and the faster one wins.
    low_equal = _bootstrap({**low_point, "lead x": [0.2, 0.2]}, [{**low_point, "lead x": [0.2, 0.2]}] * 4)
    assert report.apply_defaults_rule(full, low_equal, seconds)[0] == "lead"


def test_report_runs_on_the_committed_results():
    done = subprocess.run([sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "report.py"), "--resamples", "20"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for heading in ("### Ground truth", "### How well the ground truth reproduces itself", "### τw at full data",
                    "### LEAD's variants by the rule for defaults", "20 resamples"):
        assert heading in done.stdout


def test_the_stated_rule_names_the_resamples_it_is_applied_with():
    assert "123 percentile resamples" in report.defaults_rule(123)
    with pytest.raises(ValueError, match="three development targets"):
        report.defaults_report(pd.DataFrame(), pd.DataFrame(), complete_targets=2)
