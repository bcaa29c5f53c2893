"""The ground truth over the learning-rate grid extended below its edge, and the runs still needed to settle it.

The protocol's grid is ``PROTOCOL_RATES`` = (0.1, 0.01, 0.001). Where its smallest rate wins a pair, the best rate
may lie below the grid, so the grid is extended: a 1e-4 point for every such pair, and a 3e-4 point where 1e-4
beats 1e-3 on validation. The rule of the truth (stated here once, applied by :func:`extended_grid_truth`):

- a pair's *extended grid* is every grid point recorded for it among ``GRID_ORDER`` = (0.1, 0.01, 0.001, 3e-4,
  1e-4); its best rate is the highest validation accuracy, the first in that order on ties (so a lower rate must
  beat a higher one strictly);
- the grid is *settled* when the protocol's best rate is above 1e-3, or 1e-3 won and the 1e-4 point is recorded,
  and (where 1e-4 beats 1e-3) the 3e-4 point too;
- the truth of a pair takes the best rate of its extended grid where the grid is settled and the final runs of
  every seed at that rate are recorded; otherwise it keeps the protocol's best rate, and ``edge`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lead_hub.evaluation import TRUTH_DECIMALS

PROTOCOL_RATES = (0.1, 0.01, 0.001)
EDGE_RATE = 0.001
LOW_RATES = (0.0003, 0.0001)
GRID_ORDER = PROTOCOL_RATES + LOW_RATES


@dataclass(frozen=True)
class EdgeStep:
    """One call of ``benchmarks/ground_truth.py``: these grid rates (best of them gets the finals) and seeds."""

    target: str
    model: str
    learning_rates: tuple[float, ...]
    seeds: tuple[int, ...]
    why: str


def _rate_key(rates: pd.Series) -> pd.Series:
    """Each rate's position in ``GRID_ORDER`` (rates are floats read back from CSV, so matched with isclose)."""
    grid = np.asarray(GRID_ORDER)
    positions = [int(np.flatnonzero(np.isclose(grid, rate, rtol=1e-9, atol=0))[0]) if np.isclose(grid, rate, rtol=1e-9,
                 atol=0).any() else -1 for rate in rates.astype(float)]
    return pd.Series(positions, index=rates.index)


def _all_runs(protocol_runs: pd.DataFrame, low_rate_runs: pd.DataFrame) -> pd.DataFrame:
    runs = pd.concat([protocol_runs, low_rate_runs], ignore_index=True)
    runs = runs.assign(rate=_rate_key(runs["lr"]))
    if (runs["rate"] < 0).any():
        raise ValueError(f"runs at learning rates outside {GRID_ORDER}: {sorted(set(runs.loc[runs['rate'] < 0, 'lr']))}")
    return runs.drop_duplicates(["model", "target", "phase", "rate", "seed"], keep="last")


def grid_table(protocol_runs: pd.DataFrame, low_rate_runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, target) whose protocol grid is complete: validation accuracy at each grid point (NaN
    where not run), the protocol's best rate, the extended grid's best rate and whether the grid is settled (module
    docstring's rule). Pairs still in the protocol grid are left out (:func:`pairs_in_progress` lists them)."""
    runs = _all_runs(protocol_runs, low_rate_runs)
    grid = runs[runs["phase"] == "grid"].pivot_table(index=["model", "target"], columns="rate", values="val_acc",
                                                     aggfunc="last")
    grid = grid.reindex(columns=range(len(GRID_ORDER)))
    grid = grid[grid[list(range(len(PROTOCOL_RATES)))].notna().all(axis=1)]  # the others are in progress
    protocol = grid[list(range(len(PROTOCOL_RATES)))]
    edge, third, fourth = len(PROTOCOL_RATES) - 1, len(PROTOCOL_RATES), len(PROTOCOL_RATES) + 1
    table = pd.DataFrame(index=grid.index)
    for position, rate in enumerate(GRID_ORDER):
        table[f"val_{rate:g}"] = grid[position]
    table["protocol_lr"] = [PROTOCOL_RATES[i] for i in protocol.to_numpy().argmax(axis=1)]
    low_won = grid[fourth] > grid[edge]
    at_edge = np.isclose(table["protocol_lr"], EDGE_RATE)
    table["settled"] = ~at_edge | (grid[fourth].notna() & (~low_won | grid[third].notna()))
    filled = grid.fillna(-np.inf).to_numpy()
    table["extended_lr"] = [GRID_ORDER[i] for i in filled.argmax(axis=1)]
    return table.reset_index()


def final_runs(protocol_runs: pd.DataFrame, low_rate_runs: pd.DataFrame, seeds=(0, 1)) -> pd.DataFrame:
    """The final runs behind the truth: every recorded final run at the learning rate the truth takes for its pair
    (the module's rule, which needs the runs of every seed in ``seeds`` at that rate), one row per (model, target,
    seed; pairs whose final runs are not all recorded yet are left out): model, target, seed, lr, test_acc,
    test_mean_class_acc, plus ``edge``: 'extended' where the pair takes
    the extended grid's best rate, or why it keeps the protocol's ('grid unsettled', 'finals missing at <rate>')."""
    runs = _all_runs(protocol_runs, low_rate_runs)
    finals = {key: pair for key, pair in runs[runs["phase"] == "final"].groupby(["model", "target"])}
    empty = runs.iloc[0:0]
    rows = []
    for _, pair in grid_table(protocol_runs, low_rate_runs).iterrows():
        mine = finals.get((pair["model"], pair["target"]), empty)
        at = {rate: mine[mine["rate"] == GRID_ORDER.index(rate)] for rate in (pair["protocol_lr"], pair["extended_lr"])}
        if not pair["settled"]:
            edge, rate = "grid unsettled", pair["protocol_lr"]
        elif not set(seeds) <= set(at[pair["extended_lr"]]["seed"]):
            edge, rate = "finals missing at {:g}".format(pair["extended_lr"]), pair["protocol_lr"]
        else:
            edge, rate = "extended", pair["extended_lr"]
        chosen = at[rate]
        if not set(seeds) <= set(chosen["seed"]):
            continue  # its final runs are in progress (pairs_in_progress)
        for run in chosen.sort_values("seed").itertuples(index=False):
            rows.append({"model": pair["model"], "target": pair["target"], "seed": int(run.seed), "lr": float(run.lr),
                         "test_acc": float(run.test_acc), "test_mean_class_acc": float(run.test_mean_class_acc),
                         "edge": edge})
    return pd.DataFrame(rows, columns=["model", "target", "seed", "lr", "test_acc", "test_mean_class_acc", "edge"])


def pairs_in_progress(protocol_runs: pd.DataFrame, low_rate_runs: pd.DataFrame, seeds=(0, 1)) -> list[tuple]:
    """(model, target) pairs with some run recorded but no truth yet under the module's rule: the protocol grid is
    incomplete, or the final runs of ``seeds`` at the rate the truth takes are not all recorded."""
    runs = _all_runs(protocol_runs, low_rate_runs)
    started = set(map(tuple, runs[["model", "target"]].drop_duplicates().to_numpy()))
    finals = final_runs(protocol_runs, low_rate_runs, seeds)
    done = set(map(tuple, finals[["model", "target"]].drop_duplicates().to_numpy())) if len(finals) else set()
    return sorted(started - done, key=lambda pair: (pair[1], pair[0]))


def extended_grid_truth(protocol_runs: pd.DataFrame, low_rate_runs: pd.DataFrame, seeds=(0, 1)) -> pd.DataFrame:
    """The ground-truth table under the module's rule: model, target, best_lr, test_acc, test_mean_class_acc
    (means over ``seeds``) and edge (see :func:`final_runs`)."""
    finals = final_runs(protocol_runs, low_rate_runs, seeds)
    finals = finals[finals["seed"].isin(seeds)]
    table = (finals.groupby(["model", "target"], sort=False)
             .agg(best_lr=("lr", "first"), test_acc=("test_acc", "mean"),
                  test_mean_class_acc=("test_mean_class_acc", "mean"), edge=("edge", "first"))
             .reset_index().sort_values(["target", "model"], ignore_index=True))
    accuracy = ["test_acc", "test_mean_class_acc"]
    table[accuracy] = table[accuracy].round(TRUTH_DECIMALS)  # equal counts tie exactly, not by round-off
    return table


def edge_steps(protocol_runs: pd.DataFrame, low_rate_runs: pd.DataFrame, development_targets,
               target_order=None, model_order=None) -> list[EdgeStep]:
    """The runs still needed to settle the grid's edge, most informative first: (0) final seeds 0-1 of development
    pairs where the low rates won, (1) missing 1e-4 points of development pairs, (2) their seeds 2-3, then the
    same three for the other targets."""
    table = grid_table(protocol_runs, low_rate_runs)
    runs = _all_runs(protocol_runs, low_rate_runs)
    finals = runs[runs["phase"] == "final"]
    steps = []
    for _, pair in table.iterrows():
        if not np.isclose(pair["protocol_lr"], EDGE_RATE):
            continue
        offset = 0 if pair["target"] in development_targets else 3
        if np.isnan(pair["val_0.0001"]):
            steps.append((offset + 1, EdgeStep(pair["target"], pair["model"], (0.0001,), (0,), "1e-4 grid point missing")))
            continue
        if not pair["val_0.0001"] > pair["val_0.001"]:
            continue
        best = pair["extended_lr"] if pair["settled"] else None
        mine = finals[(finals["model"] == pair["model"]) & (finals["target"] == pair["target"])]
        seeds_at_best = set() if best is None else set(mine.loc[np.isclose(mine["lr"], best, rtol=1e-9, atol=0), "seed"])
        if best is None or not {0, 1} <= seeds_at_best:
            steps.append((offset, EdgeStep(pair["target"], pair["model"], LOW_RATES, (0, 1), "1e-4 won: 3e-4 point, seeds 0-1")))
        elif not {2, 3} <= seeds_at_best:
            steps.append((offset + 2, EdgeStep(pair["target"], pair["model"], LOW_RATES, (0, 1, 2, 3), "seeds 2-3")))
    targets = list(target_order or [])
    models = list(model_order or [])

    def order(item):
        priority, step = item
        return (priority, targets.index(step.target) if step.target in targets else len(targets),
                models.index(step.model) if step.model in models else len(models))

    return [step for _, step in sorted(steps, key=order)]
