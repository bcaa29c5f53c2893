"""benchmarks/verdict.py applies the pre-registered rule: on the five first development targets (their truth is
complete) its figures match an independent recomputation, and on the eleven it refuses while anything is missing."""

from __future__ import annotations

import re
import sys

import pandas as pd
import pytest
from scipy.stats import weightedtau

from conftest import REPOSITORY_ROOT

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
import verdict  # noqa: E402

RESULTS = REPOSITORY_ROOT / "benchmarks" / "results"
FIRST_FIVE = ("eurosat", "pacs_photo", "pacs_sketch", "flowers5", "fashion_mnist")


@pytest.fixture(scope="module")
def scores_csv(tmp_path_factory):
    """The committed scores of the pre-registered variants (a small copy: the full CSV holds every grid)."""
    scores = pd.read_csv(RESULTS / "metric_scores.csv", keep_default_na=False, na_values=[""], low_memory=False)
    path = tmp_path_factory.mktemp("verdict") / "metric_scores.csv"
    scores[scores["variant"].isin(verdict.variants())].to_csv(path, index=False)
    return path


def _mean_tau(text: str, variant: str) -> float:
    """The mean full-data τw of ``variant`` in the first table of the verdict's markdown."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {variant} |"))
    return float(re.match(r"([-\d.]+) \[", row.split(" | ")[1]).group(1))


def test_figures_on_the_first_five_targets_match_scipy(scores_csv, tmp_path, capsys):
    written = tmp_path / "verdict_subset.md"
    assert verdict.main(["--targets", *FIRST_FIVE, "--scores", str(scores_csv), "--resamples", "200",
                         "--write", str(written)]) == 0
    text = written.read_text()
    assert text.startswith("# Test of the verdict machinery on a subset")
    # Independent recomputation: scipy's τw of logme's full-data scores against the committed ground_truth.csv.
    scores = pd.read_csv(scores_csv)
    full = scores[(scores["variant"] == "logme") & (scores["regime"] == "full")]
    truth = pd.read_csv(RESULTS / "ground_truth.csv").set_index(["target", "model"])["test_acc"]
    taus = []
    for target in FIRST_FIVE:
        rows = full[full["target"] == target]
        taus.append(weightedtau(rows["score"].to_numpy(), truth.loc[target].reindex(rows["model"]).to_numpy())[0])
    assert _mean_tau(text, "logme") == pytest.approx(sum(taus) / len(taus), abs=5e-4)
    assert "**R2, LEAD's default**" in text and "**R3, metrics shown beside LEAD**" in text


def test_refuses_on_the_eleven_targets_and_lists_what_is_missing(scores_csv, tmp_path, capsys):
    runs = pd.read_csv(RESULTS / "ground_truth_runs.csv")
    dropped = (runs["model"] == "mobilenetv1_050.coral_in1k") & (runs["target"] == "eurosat") & \
        (runs["phase"] == "final")
    runs[~dropped].to_csv(tmp_path / "runs.csv", index=False)
    written = tmp_path / "verdict.md"
    assert verdict.main(["--scores", str(scores_csv), "--runs", str(tmp_path / "runs.csv"),
                         "--write", str(written)]) == verdict.REFUSED
    message = capsys.readouterr().err
    assert "refused (R4)" in message
    assert "eurosat: truth missing for 1 of 12 models (mobilenetv1_050.coral_in1k)" in message
    assert "pacs_photo" not in message  # complete targets are not listed
    assert not written.exists()


def test_a_subset_never_writes_the_verdict(capsys):
    assert verdict.main(["--targets", "eurosat", "--write", str(RESULTS / "verdict.md")]) == verdict.REFUSED
    assert "test of the machinery" in capsys.readouterr().err
    assert verdict.main(["--targets", "cifar10"]) == verdict.REFUSED
    assert "not development targets" in capsys.readouterr().err


def _table_rows(text: str, first_cell: str) -> dict[str, list[str]]:
    """The rows of the first markdown table whose header starts with ``| first_cell |``, by their first cell."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_committed_verdicts_point_figures_and_r3b_reproduce(scores_csv, tmp_path):
    """The verdict's and R3b's figures that do not depend on the bootstrap's resamples (mean and per-target τw,
    the unranked counts, R3b's pick) come back from the committed scores and runs."""
    eleven = [*FIRST_FIVE, "brain_mri", "dtd10", "plant_seedlings", "trashnet", "sign_digits", "coil20"]
    rerun = tmp_path / "verdict.md"
    assert verdict.main(["--targets", *eleven, "--scores", str(scores_csv), "--resamples", "4",
                         "--write", str(rerun)]) == 0
    committed, again = (_table_rows(path.read_text(), "variant") for path in (RESULTS / "verdict.md", rerun))
    assert set(committed) == set(again) == set(verdict.variants())
    for variant, cells in committed.items():
        assert cells[0].split(" [")[0] == again[variant][0].split(" [")[0], variant  # mean τw
        assert cells[3:14] == again[variant][3:14], variant  # τw per target
    rerun_r3b = tmp_path / "verdict_r3b.md"
    assert verdict.main(["--rule", "r3b", "--targets", *eleven, "--scores", str(scores_csv), "--resamples", "4",
                         "--write", str(rerun_r3b)]) == 0
    committed, again = (_table_rows(path.read_text(), "peer") for path in (RESULTS / "verdict_r3b.md", rerun_r3b))
    assert {peer: cells[:4] + cells[-1:] for peer, cells in committed.items()} == \
        {peer: cells[:4] + cells[-1:] for peer, cells in again.items()}
    pick = "- **R3b, metrics shown beside LEAD**"
    assert [line for line in (RESULTS / "verdict_r3b.md").read_text().splitlines() if line.startswith(pick)] == \
        [line for line in rerun_r3b.read_text().splitlines() if line.startswith(pick)]


def test_a_model_is_unranked_when_its_score_ties_another_or_is_missing():
    rows = [("m", "full", "t", 0, model, score)
            for model, score in enumerate([1.0, 1.0 + 1e-12, 2.0, float("nan"), 3.0])]
    rows += [("m", "2/class", "t", draw, model, float(model)) for draw in range(2) for model in range(5)]
    scores = pd.DataFrame(rows, columns=["variant", "regime", "target", "draw", "model", "score"])
    table = verdict.unranked_models(scores)
    assert table.loc["m", "full"] == 3 and table.loc["m", "2/class"] == 0
