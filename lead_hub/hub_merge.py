"""Merge a new ranking into a published leaderboard table without losing rows.

A row's identity is its **merge key**, :data:`MERGE_KEY`: the dataset it was ranked on (id, revision, split), how
that dataset was sampled (samples per class, sample cap, seed), the image size, the metric settings (the metrics,
primary first, and their options), and the model.
Merging ``incoming`` into ``existing`` keeps every existing row whose key is absent from ``incoming``, and replaces
the rows whose key is present; then ``rank`` and ``pareto`` are recomputed within each ranking, since a partial
re-run brings ranks relative to its own models only. Re-running the same ranking therefore replaces its rows; a
ranking of another dataset, another model or other settings adds rows.

Key values are compared in a canonical form so a parquet round trip cannot split one key in two: missing values
(None, NaN) are equal, integral floats equal ints (``10.0 == 10``: a column gains NaNs, and so floats, when it is
concatenated with rows that lack it), and a JSON-object string compares by its content (key order and spacing
ignored), which covers ``metric_settings``.

A :class:`~lead_hub.leaderboard.Leaderboard` keeps the settings of its ranking in its provenance;
:func:`published_rows` copies them into columns, so that rows of many rankings can share one table. Each row also
carries ``run_id``, a digest of the provenance of the ranking that produced it, so the provenance of every row
survives the merge.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lead_hub.leaderboard import pareto_front

MERGE_KEY: tuple[str, ...] = (
    "dataset", "dataset_revision", "split", "samples_per_class", "max_samples", "seed", "image_size",
    "metric_settings", "model_id",
)
"""The columns that identify a leaderboard row; a new row replaces the old row with the same values."""

RUN_KEY: tuple[str, ...] = MERGE_KEY[:-1]
"""The merge key without the model: the columns that identify one ranking (one table in the dataset card)."""


@dataclass(frozen=True)
class MergeResult:
    """The merged table and what happened to its rows: ``added`` new keys, ``replaced`` keys, ``kept`` rows."""

    table: pd.DataFrame
    added: int
    replaced: int
    kept: int


def canonical_value(value: Any) -> Any:
    """The comparable form of one key value: None for missing, int for integral numbers, sorted JSON for objects."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            return json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
        except json.JSONDecodeError:
            return value
    return value


def row_keys(table: pd.DataFrame, columns: tuple[str, ...] = MERGE_KEY) -> pd.Series:
    """One canonical string per row identifying it by ``columns`` (default: the merge key)."""
    check_key_columns(table, columns)
    values = table[list(columns)].astype(object).to_numpy().tolist()
    keys = [json.dumps([canonical_value(value) for value in row], default=str) for row in values]
    return pd.Series(keys, index=table.index, dtype=object)


def check_key_columns(table: pd.DataFrame, columns: tuple[str, ...] = MERGE_KEY) -> None:
    """Raise ValueError naming the key columns a leaderboard table lacks."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"the leaderboard table lacks the merge-key column(s) {', '.join(missing)}; a published "
                         f"leaderboard needs all of {', '.join(columns)} (lead-hub rank writes them)")


def run_id(provenance: Mapping[str, Any]) -> str:
    """A 12-hex digest of the provenance (canonical JSON): rows of one ranking share it; equal provenance, equal id."""
    text = json.dumps(provenance, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def published_rows(table: pd.DataFrame, provenance: Mapping[str, Any]) -> pd.DataFrame:
    """``table`` with the columns of its ranking added from ``provenance`` (a column already present is kept).

    ``dataset``, ``dataset_revision``, ``split``, ``samples_per_class``, ``max_samples``, ``seed`` and
    ``image_size`` come from the same-named provenance keys; ``metric_settings`` is the canonical JSON
    ``{"metrics": provenance["metrics"], "options": provenance["metric_options"]}``; ``lead_hub_version`` is
    ``provenance["versions"]["lead-hub"]`` (empty when absent); ``run_id`` is :func:`run_id` of the provenance.
    """
    if table.empty:
        raise ValueError("the leaderboard to publish has no rows")
    rows = table.copy()
    rows.attrs = {}  # pandas would copy attrs into the parquet metadata: the provenance is published on its own
    missing = []
    for column in RUN_KEY:
        if column in rows.columns:
            continue
        if column == "metric_settings" and "metrics" in provenance:
            settings = {"metrics": list(provenance["metrics"]), "options": provenance.get("metric_options") or {}}
            rows[column] = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
        elif column in provenance:
            rows[column] = provenance[column]
        else:
            missing.append(column)
    if missing:
        raise ValueError(f"the leaderboard does not say its {', '.join(missing)} (no such column, nor key in its "
                         "provenance); publish the parquet or JSON file written by `lead-hub rank`, which keep the "
                         "provenance (CSV does not)")
    if "lead_hub_version" not in rows.columns:
        rows["lead_hub_version"] = (provenance.get("versions") or {}).get("lead-hub")
    rows["run_id"] = run_id(provenance)
    check_key_columns(rows)
    return rows


def merge_leaderboards(existing: pd.DataFrame | None, incoming: pd.DataFrame) -> MergeResult:
    """Merge ``incoming`` rows into ``existing`` by :data:`MERGE_KEY` (see the module docstring).

    ``incoming`` must hold each key at most once. ``rank`` and ``pareto`` are then recomputed within each ranking
    (see :func:`_reranked`). The result is sorted by ranking (:data:`RUN_KEY`) then by
    ``rank`` when the table has it, then by model, so equal inputs give byte-identical outputs.
    """
    if incoming.empty:
        raise ValueError("the leaderboard to publish has no rows")
    incoming_keys = row_keys(incoming)
    duplicated = incoming_keys[incoming_keys.duplicated()]
    if not duplicated.empty:
        raise ValueError(f"the leaderboard to publish holds the merge key {duplicated.iloc[0]} more than once; "
                         f"one row per ({', '.join(MERGE_KEY)}) is expected")
    if existing is None or existing.empty:
        return MergeResult(_sorted(incoming.reset_index(drop=True)), added=len(incoming), replaced=0, kept=0)
    existing_keys = row_keys(existing)
    kept = existing[~existing_keys.isin(set(incoming_keys))]
    replaced = int(incoming_keys.isin(set(existing_keys)).sum())
    merged = pd.concat([kept, incoming], ignore_index=True) if not kept.empty else incoming.reset_index(drop=True)
    return MergeResult(_sorted(_reranked(merged)), added=len(incoming) - replaced, replaced=replaced, kept=len(kept))


def primary_metric(metric_settings: Any) -> str | None:
    """The first metric named by a ``metric_settings`` JSON string (it ranks the rows), or None when it names none."""
    try:
        settings = json.loads(metric_settings) if isinstance(metric_settings, str) else None
    except json.JSONDecodeError:
        return None
    metrics = settings.get("metrics") if isinstance(settings, dict) else None
    return str(metrics[0]) if isinstance(metrics, list) and metrics else None


def _reranked(table: pd.DataFrame) -> pd.DataFrame:
    """``rank`` and ``pareto`` recomputed within each ranking, as :meth:`Leaderboard.from_rows` computes them.

    A partial re-run replaces some rows of a ranking and keeps the others, so the ranks it brought are
    recomputed over the whole ranking by its primary metric (higher first, equal scores share a rank, NaN unranked).
    A ranking whose ``metric_settings`` names no metric present as a column keeps the ranks it was published with.
    """
    table = table.copy()
    for indices in table.groupby(row_keys(table, RUN_KEY), sort=False).indices.values():
        rows = table.index[indices]
        primary = primary_metric(table.at[rows[0], "metric_settings"])
        if primary is None or primary not in table.columns:
            continue
        scores = pd.to_numeric(table.loc[rows, primary], errors="coerce")
        if "rank" in table.columns:
            table.loc[rows, "rank"] = scores.rank(method="min", ascending=False).astype("Int64")
        if "pareto" in table.columns and "num_params" in table.columns:
            sizes = pd.to_numeric(table.loc[rows, "num_params"], errors="coerce")
            table.loc[rows, "pareto"] = pareto_front(scores.to_numpy(float), sizes.to_numpy(float))
    return table


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    order = pd.DataFrame({"run": row_keys(table, RUN_KEY), "model": table["model_id"].astype(str)})
    order["rank"] = pd.to_numeric(table["rank"], errors="coerce") if "rank" in table.columns else 0
    positions = order.sort_values(["run", "rank", "model"], kind="stable", na_position="last").index
    return table.loc[positions].reset_index(drop=True)
