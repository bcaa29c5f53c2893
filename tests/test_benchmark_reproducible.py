"""The committed LEAD scores are reproducible: a small part of the benchmark, rerun from ../shared/data with the
benchmark's own code (features extracted afresh, whole-network NTK norms computed afresh), matches
``benchmarks/results/metric_scores.csv`` to 1e-9 relative.

Exact reproduction needs bitwise-equal inputs and the same summation order: extraction is deterministic for a given
batch size and CPU kernel set (one or two torch threads give the same bits, and so do 7 or 24 images per batch
against the benchmark's 64; one image per batch moves features by up to ~3e-5 of their largest value), the
whole-network norms for a given set of rows computed in one call, and LEAD's ridge sums partial Grams over as many
row ranges as BLAS has threads, so the scores are computed, as the benchmark computes them, with one BLAS thread.
This holds on the machine type the benchmark ran on; on another CPU the scores agree to round-off, not to 1e-9.

The whole-network variant is the benchmark's (64 NTK rows per class, so 320 rows on flowers5), recomputed for one
model only, at full data and on one low-data draw (2 images per class: 10 more rows through that draw's own head):
its norms are a forward and backward pass through the backbone per row, about 20 s of CPU for the cheapest zoo
model, and a second model would double that.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from conftest import REPOSITORY_ROOT

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))  # the benchmark's own modules live there
from benchmark import regimes  # noqa: E402
from benchmark_lead import (BENCHMARK_LEAD_GRIDS, FULL_NTK_SAMPLES_PER_CLASS, LOG_INITS, LeadGrid,  # noqa: E402
                            score_lead_target)

pytestmark = pytest.mark.shared_data

TARGET = "flowers5"
MODELS = ("mobilenetv1_025.coral_in1k", "mobilenetv1_025.mlperf_vww")  # the two smallest zoo folders
KEYS = ["target", "variant", "regime", "draw", "model"]


def _fast_regimes(labels):
    return [r for r in regimes(labels) if r[0] == "full" or (r[0] == "5/class" and r[1] == 0)]


def _whole_network_regimes(labels):
    return [r for r in regimes(labels) if r[0] == "full" or (r[0] == "2/class" and r[1] == 0)]


def _head_grids() -> list[LeadGrid]:
    """The default and a head-NTK variant, under their names in the committed CSV."""
    head = dict(BENCHMARK_LEAD_GRIDS["head"].ntks)
    return [BENCHMARK_LEAD_GRIDS["default"],
            LeadGrid({"fit=leave_one_out": LOG_INITS["fit=leave_one_out"]},
                     {"ntk=head head_input=raw": (head["ntk=head head_input=raw"][0], (1 / 1024,))}, ("prob",))]


def _full_grid() -> LeadGrid:
    """A whole-network-NTK variant of the benchmark's grid (its sample size), under its name in the committed CSV."""
    (full_label, (full_options, _)), = BENCHMARK_LEAD_GRIDS["full-standardized"].ntks.items()
    assert full_options["ntk_samples_per_class"] == FULL_NTK_SAMPLES_PER_CLASS == 64
    return LeadGrid({"fit=out_of_fold": LOG_INITS["fit=out_of_fold"]}, {full_label: (full_options, (1e-6,))})


def test_committed_lead_scores_reproduce_from_the_shared_data(shared_data, tmp_path):
    committed = pd.read_csv(REPOSITORY_ROOT / "benchmarks" / "results" / "metric_scores.csv",
                            keep_default_na=False, na_values=[""])
    model_ids = [f"local-dir:{shared_data / 'zoo' / model}" for model in MODELS]
    folder = shared_data / "targets" / TARGET
    with threadpool_limits(1):  # as benchmarks/run_benchmark.py scores
        head = score_lead_target(TARGET, folder, model_ids, _head_grids(), cache_dir=tmp_path,
                                 regimes_of=_fast_regimes)
        full = score_lead_target(TARGET, folder, model_ids[:1], [_full_grid()], cache_dir=tmp_path,
                                 full_ntk_regimes_of=_whole_network_regimes)
    table = pd.concat([head, full], ignore_index=True)
    # default and head variant: 2 regimes × 2 models each; whole-network variant: 2 regimes × 1 model
    assert len(table) == 10 and table["score"].notna().all(), table
    merged = table.merge(committed, on=KEYS, how="left", suffixes=("", "_committed"), validate="one_to_one")
    assert merged["score_committed"].notna().all(), merged.loc[merged["score_committed"].isna(), KEYS]
    np.testing.assert_allclose(merged["score"], merged["score_committed"], rtol=1e-9, atol=0)
