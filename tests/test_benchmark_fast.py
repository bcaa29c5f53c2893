"""The fast benchmark (CI subset of the offline benchmark) runs end to end on the real shared data."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPOSITORY_ROOT

pytestmark = pytest.mark.slow


def test_fast_benchmark_scores_and_judges_real_models(shared_data, tmp_path):
    ground_truth = REPOSITORY_ROOT / "benchmarks" / "results" / "ground_truth.csv"
    done = subprocess.run(
        [sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "run_benchmark.py"), "--fast", "--output", str(tmp_path),
         "--cache-dir", str(tmp_path / "cache"), "--ground-truth", str(ground_truth)],
        capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    scores = pd.read_csv(tmp_path / "metric_scores_fast.csv")
    assert set(scores["regime"]) == {"full", "5/class"}
    assert scores["model"].nunique() >= 2
    assert scores.loc[scores["variant"] == "lead", "score"].notna().all()
    quality = pd.read_csv(tmp_path / "rank_quality_fast.csv")
    lead_full = quality[(quality["variant"] == "lead") & (quality["regime"] == "full")].iloc[0]
    assert lead_full["models"] >= 2
    assert -1.0 <= lead_full["weighted_tau"] <= 1.0
    # the person-detection control is the weakest model fine-tuned on EuroSAT and LEAD must not put it first
    full_lead = scores[(scores["variant"] == "lead") & (scores["regime"] == "full")].set_index("model")["score"]
    assert "mobilenetv1_025.mlperf_vww" in full_lead.index  # the smallest folder with ground truth
    assert full_lead.idxmax() != "mobilenetv1_025.mlperf_vww"
