"""The benchmark's scoring and judging steps, and ``lead-hub evaluate``, on small hand-made tables."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPOSITORY_ROOT
from lead_hub.cli import main
from lead_hub.evaluation import long_scores, rank_quality, summarise_quality
from lead_hub.features import ExtractedFeatures

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))  # the benchmark's own modules live there
from benchmark import MetricVariant, regimes, score_target  # noqa: E402


def fake_extraction(features, labels, logits=None):
    return ExtractedFeatures(model_id="m", revision="r", image_size=64, features=features, source_logits=logits,
                             labels=labels, seconds=0.0, images_per_second=0.0, device="cpu", dtype="float32",
                             batch_size=1)


def test_regimes_are_the_low_data_protocol():
    labels = np.repeat(np.arange(4), 30)
    chosen = regimes(labels)
    assert [name for name, _, _ in chosen].count("full") == 1
    assert len(chosen) == 1 + 3 * 5
    for name, draw, rows in chosen[1:]:
        per_class = int(name.split("/")[0])
        assert np.all(np.bincount(labels[rows]) == per_class)
    fives = [rows for name, _, rows in chosen if name == "5/class"]
    assert not np.array_equal(fives[0], fives[1])  # different draws


def test_score_target_marks_not_applicable_models_instead_of_failing():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    features = {
        "with-head": fake_extraction(rng.standard_normal((60, 8)), labels, rng.standard_normal((60, 5))),
        "headless": fake_extraction(rng.standard_normal((60, 8)), labels),
    }
    variants = [MetricVariant("lead", "lead", {}, "lead"), MetricVariant("leep", "leep")]
    table = score_target("toy", features, variants, regimes_of=lambda y: [("full", 0, np.arange(len(y)))])
    leep = table[table["variant"] == "leep"].set_index("model")
    assert np.isfinite(leep.loc["with-head", "score"])
    assert np.isnan(leep.loc["headless", "score"]) and leep.loc["headless", "note"].startswith("not applicable")
    assert table[table["variant"] == "lead"]["score"].notna().all()


def test_rank_quality_and_summary_by_hand():
    scores = pd.DataFrame({
        "target": ["a"] * 3 + ["b"] * 3, "variant": ["v"] * 6, "family": ["lead"] * 6, "regime": ["full"] * 6,
        "draw": [0] * 6, "model": ["x", "y", "z"] * 2, "score": [3.0, 2.0, 1.0, 1.0, 2.0, 3.0]})
    truth = pd.DataFrame({"target": ["a"] * 3 + ["b"] * 3, "model": ["x", "y", "z"] * 2,
                          "test_acc": [0.9, 0.8, 0.7, 0.9, 0.8, 0.7]})
    quality = rank_quality(scores, truth).set_index("target")
    assert quality.loc["a", "weighted_tau"] == pytest.approx(1.0)
    assert quality.loc["b", "weighted_tau"] == pytest.approx(-1.0)
    assert quality.loc["b", "top1_regret"] == pytest.approx(0.2)
    summary = summarise_quality(quality.reset_index()).iloc[0]
    assert summary["mean_tau_w"] == pytest.approx(0.0) and summary["targets"] == 2
    assert summary["mean_top1_regret"] == pytest.approx(0.1)


def test_long_scores_from_a_wide_leaderboard():
    wide = pd.DataFrame({"rank": [1, 2], "model_id": ["local-dir:zoo/m1", "hf-hub:timm/m2"],
                         "lead": [-0.1, -0.5], "logme": [1.2, 0.7], "num_params": [10.0, 20.0],
                         "process": [1.0, float("nan")]})  # floats: rows of older leaderboards have no process
    long = long_scores(wide, target="eurosat")
    assert sorted(long["variant"].unique()) == ["lead", "logme"]
    assert set(long["model"]) == {"m1", "hf-hub:timm/m2"}
    assert (long["target"] == "eurosat").all() and (long["regime"] == "full").all()


def test_evaluate_cli_end_to_end(tmp_path, capsys):
    pd.DataFrame({"model": ["x", "y", "z"], "score": [0.3, 0.2, 0.1]}).to_csv(tmp_path / "scores.csv", index=False)
    pd.DataFrame({"model": ["x", "y", "z"], "test_acc": [0.7, 0.8, 0.9]}).to_csv(tmp_path / "truth.csv", index=False)
    done = subprocess.run([sys.executable, "-m", "lead_hub.cli", "evaluate", str(tmp_path / "scores.csv"),
                           str(tmp_path / "truth.csv"), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "-1.000" in done.stdout
    assert (tmp_path / "out" / "scores_vs_accuracy.png").stat().st_size > 1000
    # A bad column: exit code 2 and the fix named (in this process; the run above started the real entry point).
    assert main(["evaluate", str(tmp_path / "scores.csv"), str(tmp_path / "truth.csv"), "--accuracy-column",
                 "acc"]) == 2
    assert "--accuracy-column" in capsys.readouterr().err
