"""run_benchmark.py --import-scores with --drop-variants-matching: a grid's rows at an earlier sample size give way
to the imported ones, every other row of the scores CSV stays byte-identical, a row already present is not imported
again and a low-data row of a variant already scored at full data is (``--full-ntk-low-data`` runs add those)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPOSITORY_ROOT

HEADER = "target,variant,family,metric,regime,draw,model,score,seconds,note\n"
KEPT = ["flowers5,hscore,peer,hscore,full,0,m1,3.1415926535897936,0.0123,\n",
        "flowers5,lead ntk=head head_input=raw fit=in_sample c=1.526e-05,lead,lead,full,0,m1,-0.1,0.5,a note\n"]
OLD = "flowers5,lead ntk=full head_input=standardized S=4 fit=in_sample c=1e-08,lead,lead,full,0,m1,0.25,1.0,\n"
NEW = "flowers5,lead ntk=full head_input=standardized S=64 fit=in_sample c=1e-08,lead,lead,full,0,m1,0.5,2.0,\n"
LOW_DATA = "flowers5,lead ntk=head head_input=raw fit=in_sample c=1.526e-05,lead,lead,2/class,3,m1,-0.2,0.1,\n"


def test_import_replaces_the_matching_rows_and_keeps_the_others_byte_identical(shared_data, tmp_path):
    scores = tmp_path / "metric_scores.csv"
    scores.write_text(HEADER + KEPT[0] + OLD + KEPT[1])
    run = tmp_path / "run.csv"
    run.write_text(HEADER + NEW + KEPT[1].replace("a note", "scored again") + LOW_DATA)
    done = subprocess.run(
        [sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "run_benchmark.py"), "--output", str(tmp_path),
         "--import-scores", str(run), "--drop-variants-matching", "^lead ntk=full head_input=standardized S=4 ",
         "--ground-truth", str(tmp_path / "no_truth.csv")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "dropped 1 rows" in done.stdout and "imported 2 rows" in done.stdout
    assert scores.read_text() == HEADER + KEPT[0] + KEPT[1] + NEW + LOW_DATA


def test_a_target_without_complete_truth_is_scored_but_left_out_of_the_tables(shared_data, tmp_path):
    rows = [f"{target},hscore,peer,hscore,full,0,{model},{score},0.01,\n"
            for target in ("flowers5", "dtd10") for model, score in (("m1", 1.0), ("m2", 2.0))]
    run = tmp_path / "run.csv"
    run.write_text(HEADER + "".join(rows))
    truth = tmp_path / "truth.csv"  # dtd10's m2 is still being fine-tuned
    truth.write_text("model,target,test_acc\nm1,flowers5,0.5\nm2,flowers5,0.7\nm1,dtd10,0.4\n")
    done = subprocess.run(
        [sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "run_benchmark.py"), "--output", str(tmp_path),
         "--import-scores", str(run), "--ground-truth", str(truth)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "left out of the tables until every scored model has its ground truth: ['dtd10']" in done.stdout
    quality = (tmp_path / "rank_quality.csv").read_text()
    assert "flowers5,hscore" in quality and "dtd10" not in quality
    assert "dtd10" in (tmp_path / "metric_scores.csv").read_text()  # scored and kept
