"""The benchmark report reads the committed results and computes what the README quotes."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPOSITORY_ROOT

sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
import report  # noqa: E402

from lead_hub.evaluation import BootstrapTau, weighted_tau  # noqa: E402


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


def _spread(values_by_variant: dict[str, list[float]]) -> BootstrapTau:
    """A bootstrap whose resample b gives each variant τw ``values[b]`` on both targets (point: their mean), so
    every interval runs from about the smallest to the largest value and a paired difference is the difference of
    the lists."""
    point = {v: [float(np.mean(values))] * 2 for v, values in values_by_variant.items()}
    count = len(next(iter(values_by_variant.values())))
    return _bootstrap(point, [{v: [values[b]] * 2 for v, values in values_by_variant.items()} for b in range(count)])


def _flat(value: float, count: int = 5) -> list[float]:
    return [value] * count


def _verdicts(table: pd.DataFrame) -> dict[str, str]:
    return table.set_index("variant")["verdict"].to_dict()


WHOLE_NETWORK = "lead ntk=full head_input=standardized S=4 c=1e-07"
SVM = "lead classifier=ovr_svm"


def test_the_incumbent_stays_when_no_variant_is_resolved_above_it():
    # "lead x" has the higher mean (0.45 against 0.30) but its paired difference to the incumbent spans −0.1 to
    # +0.4: not resolved, so not a challenger. The whole-network and SVM variants are far above and not eligible.
    full = _spread({"lead": _flat(0.3), "lead x": [0.2, 0.5, 0.7, 0.6, 0.25], "lead y": _flat(0.1),
                    WHOLE_NETWORK: _flat(0.9), SVM: _flat(0.9)})
    low = _spread({"lead": _flat(0.2), "lead x": _flat(0.2), "lead y": _flat(0.2), SVM: _flat(0.2)})
    seconds = pd.Series({"lead": 1.0, "lead x": 0.1, "lead y": 0.1, WHOLE_NETWORK: 0.1, SVM: 5.0})
    chosen, table = report.apply_defaults_rule(full, low, seconds)
    assert chosen == "lead"
    verdicts = _verdicts(table)
    assert verdicts["lead"] == "**chosen** (the incumbent stays: no challenger)"
    assert verdicts["lead x"] == "not above the incumbent (interval includes 0)"
    assert verdicts["lead y"] == "below the incumbent (interval excludes 0)"
    assert verdicts[WHOLE_NETWORK].startswith("not eligible (whole-network NTK")
    assert verdicts[SVM].startswith("not eligible (log_init")
    assert table["variant"].iloc[0] == "lead"  # the incumbent heads the table


def test_a_variant_resolved_above_the_incumbent_replaces_it_unless_it_is_resolved_below_in_low_data():
    # Both "lead z" and "lead w" are 0.2 above the incumbent in every resample; "lead w" is 0.1 below it in low
    # data in every resample, so only "lead z" challenges. A variant without low-data scores is not eligible.
    full = _spread({"lead": _flat(0.3), "lead z": _flat(0.5), "lead w": _flat(0.6), "lead n": _flat(0.9)})
    low = _spread({"lead": _flat(0.3), "lead z": _flat(0.3), "lead w": _flat(0.2)})
    chosen, table = report.apply_defaults_rule(full, low, pd.Series({"lead": 1.0, "lead z": 2.0, "lead w": 0.1}))
    assert chosen == "lead z"
    verdicts = _verdicts(table)
    assert verdicts["lead"] == "incumbent, replaced"
    assert verdicts["lead w"] == "above the incumbent at full data, below it in low data"
    assert verdicts["lead n"] == "not eligible (no low-data figure)"


def test_among_challengers_the_best_and_those_tied_with_it_go_to_low_data_then_speed():
    # Challengers a (+0.2), b (+0.2 ± 0.01, tied with a) and c (+0.1, always 0.1 below a: not tied).
    full = _spread({"lead": _flat(0.3), "lead a": _flat(0.5), "lead b": [0.49, 0.5, 0.51, 0.5, 0.5],
                    "lead c": _flat(0.4)})
    seconds = pd.Series({"lead": 1.0, "lead a": 2.0, "lead b": 0.5, "lead c": 0.1})
    equal_low = _spread({v: _flat(0.3) for v in ("lead", "lead a", "lead b", "lead c")})
    chosen, table = report.apply_defaults_rule(full, equal_low, seconds)
    assert chosen == "lead b"  # tied with a at full and in low data, and faster
    verdicts = _verdicts(table)
    assert verdicts["lead a"] == "challenger tied at full and low data, slower"
    assert verdicts["lead c"] == "challenger, below the best challenger (interval excludes 0)"
    better_low = _spread({"lead": _flat(0.3), "lead a": _flat(0.4), "lead b": _flat(0.3), "lead c": _flat(0.5)})
    chosen, table = report.apply_defaults_rule(full, better_low, seconds)
    assert chosen == "lead a"  # clearly better in low data, although slower; c's low data does not count
    assert _verdicts(table)["lead b"] == "challenger tied with the best, below in low data"


def test_the_rule_needs_its_incumbent():
    full = _spread({"lead x": _flat(0.3)})
    with pytest.raises(ValueError, match="incumbent 'lead'"):
        report.apply_defaults_rule(full, full, pd.Series(dtype=float))


def test_compare_reverse_prints_each_other_variant_minus_the_first():
    full = _spread({"lead": _flat(0.3), "lead a": [0.4, 0.5, 0.6, 0.5, 0.5]})
    low = _spread({"lead": _flat(0.2), "lead a": _flat(0.1)})
    forward = report.compare_table(full, low, "lead", ["lead a"]).iloc[0]
    backward = report.compare_table(full, low, "lead", ["lead a"], reverse=True).iloc[0]
    assert (forward["difference"], backward["difference"]) == ("lead − lead a", "lead a − lead")
    # differences −0.1, −0.2, −0.3, −0.2, −0.2: percentiles 2.5 and 97.5 interpolate to −0.29 and −0.11
    assert (forward["full data [95% CI]"], backward["full data [95% CI]"]) == ("-0.200 [-0.290, -0.110]",
                                                                             "0.200 [0.110, 0.290]")
    assert (backward["low data [95% CI]"], backward["low data: differs?"]) == ("-0.100 [-0.100, -0.100]", "yes")


def test_the_edge_table_shows_how_the_extended_grid_moves_each_targets_tau():
    # Three models on eurosat, 1e-3 wins each protocol grid; model m0's 1e-4 point loses to 1e-3 and 3e-4 wins:
    # its truth moves from last (0.60) to first (0.95). A score that orders m0 < m1 < m2 goes from τw 1 to less.
    def run(model, phase, lr, seed, val=0.0, test=0.0):
        return {"model": model, "target": "eurosat", "phase": phase, "lr": lr, "seed": seed, "val_acc": val,
                "test_acc": test, "test_mean_class_acc": test}
    protocol = pd.DataFrame([run(m, "grid", lr, 0, val) for m in ("m0", "m1", "m2")
                             for lr, val in ((0.1, 0.1), (0.01, 0.5), (0.001, 0.8))]
                            + [run(f"m{i}", "final", 0.001, seed, test=0.6 + 0.1 * i) for i in range(3)
                               for seed in range(2)])
    low = pd.DataFrame([run("m0", "grid", 0.0001, 0, 0.85), run("m0", "grid", 0.0003, 0, 0.9)]
                       + [run("m0", "final", 0.0003, seed, test=0.95) for seed in range(2)])
    scores = pd.DataFrame([{"target": "eurosat", "variant": "s", "family": "peer", "regime": "full", "draw": 0,
                            "model": f"m{i}", "score": float(i)} for i in range(3)])
    row = report.edge_shift_table(scores, protocol, low).set_index("variant").loc["s"]
    after = weighted_tau([0.0, 1.0, 2.0], [0.95, 0.7, 0.8])
    assert row["mean τw, protocol grid truth"] == pytest.approx(1.0)
    assert row["mean τw, extended grid truth"] == pytest.approx(after) and after < 0
    assert row["change"] == pytest.approx(after - 1.0) and row["change eurosat"] == pytest.approx(after - 1.0)
    changed = report.truth_changes(protocol, low).set_index("model")
    assert changed["edge"].to_dict() == {"m0": "extended", "m1": "grid unsettled", "m2": "grid unsettled"}
    assert changed.loc["m0", "truth lr"] == 0.0003 and changed.loc["m0", "truth test acc"] == pytest.approx(0.95)
    assert changed.loc["m0", ["val 1e-3", "val 3e-4", "val 1e-4"]].tolist() == [0.8, 0.9, 0.85]


def test_report_writes_its_tables_from_the_committed_results(tmp_path):
    report.main(["--resamples", "20", "--write-dir", str(tmp_path)])  # the command line's own entry, in process
    written = {path.stem: path.read_text() for path in tmp_path.glob("*.md")}
    assert set(written) == {"ground_truth", "main_table", "tau_full", "tau_low_data", "lead_variants"}
    for name, heading in (("ground_truth", "### How well the ground truth reproduces itself"),
                          ("tau_full", "### τw at full data"), ("tau_low_data", "20 resamples"),
                          ("lead_variants", "### LEAD's variants by the rule for defaults")):
        assert heading in written[name]
    metrics = [line.split(" | ")[0].strip("| ") for line in written["main_table"].splitlines() if line.startswith("| ")]
    assert {"hscore", "pactran", "logme", *report.MAIN_TABLE_LEAD} <= set(metrics)
    assert not any(metric.startswith("baseline") for metric in metrics)


@pytest.mark.parametrize("generated", ["main_table.md", "cost.md"])
def test_the_readme_tables_are_the_generated_ones(generated):
    """benchmarks/README.md shows the main table and the cost table as the report wrote them to results/ (rewrite
    both with the commands the README lists)."""
    text = (REPOSITORY_ROOT / "benchmarks" / "results" / generated).read_text()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) > 10 and "\n".join(rows) in (REPOSITORY_ROOT / "benchmarks" / "README.md").read_text()


def test_settled_runs_leave_out_pairs_still_being_fine_tuned():
    def run(model, phase, lr, seed, val):
        return {"model": model, "target": "t", "phase": phase, "lr": lr, "seed": seed, "val_acc": val,
                "test_acc": val, "test_mean_class_acc": val}
    grid = [run(m, "grid", lr, 0, val) for m in ("done", "no finals") for lr, val in ((0.1, 0.2), (0.01, 0.6),
                                                                                      (0.001, 0.5))]
    finals = [run("done", "final", 0.01, seed, 0.7) for seed in (0, 1)] + [run("no finals", "final", 0.01, 0, 0.7)]
    partial = [run("grid running", "grid", 0.1, 0, 0.3)]
    protocol = pd.DataFrame(grid + finals + partial)
    kept, low, missing = report.settled_runs(protocol, protocol.iloc[0:0])
    assert set(kept["model"]) == {"done"} and low.empty
    reasons = missing.set_index("model")["reason"].to_dict()
    assert reasons["grid running"] == "protocol grid incomplete"
    assert "final runs of seeds [0, 1]" in reasons["no finals"]


def test_power_gives_the_half_width_at_any_target_count():
    rng = np.random.default_rng(3)
    targets, models = ("t1", "t2", "t3"), [f"m{i}" for i in range(6)]
    finals = pd.DataFrame([{"model": m, "target": t, "seed": seed, "test_acc": rng.random()}
                           for t in targets for m in models for seed in range(4)])
    scores = pd.DataFrame([{"target": t, "variant": v, "family": "peer", "regime": "full", "draw": 0, "model": m,
                            "score": rng.random()} for t in targets for v in ("a", "b", "c") for m in models])
    widths, needs = report.power_table(scores, finals, 50, target_counts=(2, 11), seed_counts=(2,), pair=("a", "b"),
                                       targets=targets)
    for _, row in widths.iterrows():
        assert row["11 targets"] == pytest.approx(row["2 targets"] * np.sqrt(2 / 11))
    # the targets needed for a half-width of 0.05: the smallest T with 1.96·√(V/T) ≤ 0.05, V from the 2-target width
    variance = (widths.loc[0, "2 targets"] / 1.96) ** 2 * 2
    assert needs.loc[0, "targets for half-width 0.05"] == int(np.ceil(variance * (1.96 / 0.05) ** 2))


def test_the_stated_rule_names_the_resamples_it_is_applied_with():
    assert "123 percentile resamples" in report.defaults_rule(123)
    with pytest.raises(ValueError, match="three development targets"):
        report.defaults_report(pd.DataFrame(), pd.DataFrame(), complete_targets=2)
