"""LEAD's benchmark grid: every variant scored from shared parts is exactly the score ``lead()`` returns."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPOSITORY_ROOT
from lead_hub.features import ExtractedFeatures
from lead_hub.metrics.lead import lead

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))  # the benchmark's own modules live there
from benchmark import MetricVariant  # noqa: E402
from benchmark_lead import BENCHMARK_LEAD_GRIDS, LeadGrid, grid_variant_names, score_lead_grid  # noqa: E402

GRID = LeadGrid(
    {"fit=out_of_fold": {"fit": "out_of_fold"}, "fit=leave_one_out": {"fit": "leave_one_out"},
     "fit=in_sample": {"fit": "in_sample"}},
    {"ntk=head head_input=standardized": ({"ntk": "head", "head_input": "standardized"}, (0.0, 1 / 16384, 1 / 256)),
     "ntk=head head_input=raw": ({"ntk": "head", "head_input": "raw", "head_widths": (64, 32)}, (1 / 4096,)),
     "ntk=full head_input=raw S=4": ({"ntk": "full", "head_input": "raw", "ntk_samples_per_class": 4}, (1e-6, 1e-3))},
    ("log_prob", "prob"))


def _extracted(features, labels):
    return ExtractedFeatures("m", "main", 64, features, None, labels, 0.0, 0.0, "cpu", "float32", 64)


def _two_regimes(labels):
    rng = np.random.default_rng(5)
    return [("full", 0, np.arange(len(labels))), ("sub", 1, np.sort(rng.choice(len(labels), 60, replace=False)))]


def test_every_grid_variant_equals_lead_on_its_options():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    features = (rng.standard_normal((120, 24)) + labels[:, None] * 0.3).astype(np.float32)
    features[:, 3] = 1.5  # a constant column, dropped by both paths
    ids = rng.permutation(10_000)[:120]
    norms = rng.uniform(1e3, 1e6, 120)

    def provider(model, options, regime, draw, indices):
        return norms[indices]

    table = score_lead_grid("synthetic", {"m": _extracted(features, labels)}, GRID, sample_ids=ids,
                            ntk_sq_norms=provider, regimes_of=_two_regimes)
    variants = {variant.name: variant for variant in GRID.variants()}
    assert len(table) == 2 * len(variants) and table["note"].eq("").all()
    for regime, _, rows in _two_regimes(labels):
        scored = table[table["regime"] == regime].set_index("variant")["score"]
        for name, variant in variants.items():
            expected = lead(features[rows], labels[rows], sample_ids=ids[rows], ntk_sq_norms=norms[rows],
                            **variant.options)
            assert scored[name] == expected, (regime, name)


def test_a_model_whose_parts_fail_gets_nan_and_a_note():
    labels = np.repeat(np.arange(3), 10)
    features = np.random.default_rng(1).standard_normal((30, 8))
    grid = LeadGrid({"loo": {"fit": "leave_one_out"}}, {"full": ({"ntk": "full"}, (1e-3,))})

    def missing(model, options, regime, draw, indices):
        return np.full(len(indices), np.nan)

    table = score_lead_grid("synthetic", {"m": _extracted(features, labels)}, grid, sample_ids=np.arange(30),
                            ntk_sq_norms=missing, regimes_of=lambda y: [("full", 0, np.arange(len(y)))])
    assert table["score"].isna().all() and table["note"].str.contains("ntk_sq_norms").all()


def test_grid_refuses_misplaced_options_and_named_grids_of_many_variants():
    with pytest.raises(ValueError, match="rate_constant"):
        LeadGrid({"a": {"rate_constant": 1.0}}, {"b": ({}, (1.0,))})
    with pytest.raises(ValueError, match="one variant"):
        LeadGrid({"a": {}}, {"b": ({}, (1.0, 2.0))}, name="x")
    with pytest.raises(ValueError, match="named twice"):
        grid_variant_names([BENCHMARK_LEAD_GRIDS["head"], BENCHMARK_LEAD_GRIDS["head"]])


def test_the_variant_named_lead_is_the_head_only_default_of_the_scored_rounds():
    (variant,) = BENCHMARK_LEAD_GRIDS["default"].variants()
    assert isinstance(variant, MetricVariant) and variant.name == "lead"
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 20)
    features = rng.standard_normal((60, 16)) + labels[:, None]
    ids = np.arange(100, 160)
    head_only = {"ntk": "head", "head_input": "standardized", "fit": "out_of_fold", "classifier": "ridge",
                 "rate_constant": 1 / 16384, "ce_form": "log_prob"}
    assert lead(features, labels, sample_ids=ids, **variant.options) == lead(features, labels, sample_ids=ids,
                                                                             **head_only)


def test_restricted_grids_score_the_named_cells_under_their_names():
    chosen = ["lead ntk=full head_input=raw S=4 fit=out_of_fold c=1e-06",  # in the grid's order
              "lead ntk=head head_input=raw fit=in_sample c=0.0002441 ce_form=prob"]
    cells = GRID.restricted([*chosen, "not a cell"])
    variants = {variant.name: variant for variant in GRID.variants()}
    assert [cell.variants()[0].name for cell in cells] == chosen
    assert all(len(cell.variants()) == 1 and cell.variants()[0].options == variants[cell.variants()[0].name].options
               for cell in cells)
    assert BENCHMARK_LEAD_GRIDS["default"].restricted(["lead"]) == [BENCHMARK_LEAD_GRIDS["default"]]
    assert BENCHMARK_LEAD_GRIDS["default"].restricted(chosen) == []
