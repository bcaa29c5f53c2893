"""The dataset card (README.md) of a published leaderboard, and the layout of the leaderboard repository.

The repository holds the table as parquet at :data:`LEADERBOARD_PATH`, the provenance of every ranking in it at
:data:`PROVENANCE_PATH` (``{run_id: provenance}``), and this card: YAML metadata (licence, tags, a ``configs``
entry pointing the ``datasets`` library at the parquet file), the top-k models of each ranking, the columns
explained, the merge rule, and the provenance. The card is a pure function of its inputs (no clock, no
environment), so a re-push of identical data changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from huggingface_hub import DatasetCardData

from lead_hub.hub_merge import MERGE_KEY, RUN_KEY, row_keys

LEADERBOARD_PATH = "data/leaderboard.parquet"
PROVENANCE_PATH = "provenance.json"
CARD_PATH = "README.md"
CARD_TAGS = ("lead-hub", "leaderboard", "transferability", "model-selection", "image-classification")

COLUMN_MEANINGS: dict[str, str] = {
    "rank": "position of the model within its ranking (1 = predicted to fine-tune best)",
    "model_id": "the candidate model: Hub id, timm name, or `local-dir:` and the folder's name (never a local path)",
    "model_revision": "the model's commit (Hub revision) or content hash that was scored",
    "feature_dim": "dimension of the penultimate-layer features the metrics read",
    "num_params": "number of parameters of the model",
    "extract_seconds": "wall-clock seconds spent extracting features",
    "score_seconds": "wall-clock seconds spent computing the metric scores",
    "process": "the process of an `accelerate launch` ranking that extracted the model's features (0 when one)",
    "pareto": "true when no other model of the ranking is both better scored and cheaper",
    "dataset": "the target dataset (Hub id, or the name of a local dataset)",
    "dataset_revision": "the dataset's commit (Hub revision) or content hash",
    "split": "the dataset split the samples were drawn from",
    "samples_per_class": "images sampled per class (stratified); empty when not limited per class",
    "max_samples": "cap on the total number of images sampled; empty when not capped",
    "seed": "seed of the per-class sampling",
    "image_size": "input resolution (pixels) the images were resized to",
    "metric_settings": "the metrics (primary first: it sets `rank`) and their options, as JSON",
    "lead_hub_version": "version of lead_hub that computed the row",
    "notes": "why a score is missing, or other remarks of the ranking",
    "run_id": f"digest of the ranking's provenance: its key in {PROVENANCE_PATH}",
}
_TOP_TABLE_COLUMNS = ("rank", "model_id", "model_revision")
_TOP_TABLE_TRAILING = ("feature_dim", "num_params", "pareto")
_INTEGER_COLUMNS = ("rank", "feature_dim", "num_params", "seed", "samples_per_class", "image_size")


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The score columns: numeric columns that are not one of the documented bookkeeping columns."""
    return [column for column in table.columns
            if column not in COLUMN_MEANINGS and pd.api.types.is_numeric_dtype(table[column])
            and not pd.api.types.is_bool_dtype(table[column])]


def render_card(table: pd.DataFrame, provenance_by_run: Mapping[str, Mapping[str, Any]], *, repo_id: str,
                top_k: int = 10, license: str = "apache-2.0") -> str:
    """The README.md text of the leaderboard repository ``repo_id`` holding ``table``.

    ``provenance_by_run`` maps each ``run_id`` of the table to the provenance of that ranking. ``top_k`` rows of
    each ranking (by ``rank``) appear in the card; the parquet file holds them all.
    """
    metadata = DatasetCardData(
        license=license,
        pretty_name=f"lead_hub leaderboard: {repo_id}",
        tags=list(CARD_TAGS),
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": LEADERBOARD_PATH}]}],
    )
    sections = [
        f"---\n{metadata.to_yaml()}\n---",
        _introduction(table, repo_id),
        f"## Top {top_k} models of each ranking\n\n" + ranking_tables(table, top_k),
        _columns_section(table),
        _merge_section(),
        _provenance_section(provenance_by_run),
    ]
    return "\n\n".join(sections) + "\n"


def _introduction(table: pd.DataFrame, repo_id: str) -> str:
    rankings = row_keys(table, RUN_KEY).nunique()
    return (
        f"# lead_hub leaderboard: {repo_id}\n\n"
        "Pretrained vision models ranked for target datasets *before* fine-tuning, by lead_hub with LEAD "
        "(Hu et al., CVPR 2024) and classic transferability metrics. Every score is oriented so that higher means "
        "*predicted to fine-tune better*.\n\n"
        f"- `{LEADERBOARD_PATH}`: {len(table)} rows, {table['model_id'].nunique()} models, {rankings} ranking(s).\n"
        f"- `{PROVENANCE_PATH}`: the provenance of each ranking, keyed by `run_id`.\n"
        f"- Read it back with `lead-hub leaderboard show {repo_id}`, or "
        f"`datasets.load_dataset(\"{repo_id}\", split=\"train\")`."
    )


def ranking_tables(table: pd.DataFrame, top_k: int | None = None) -> str:
    """Markdown: for each ranking of the table (rows sharing :data:`RUN_KEY`), a heading, its metric settings and
    a pipe table of its ``top_k`` best rows (all rows when None): rank, model, scores, size, Pareto flag."""
    scores = metric_columns(table)
    columns = [column for column in (*_TOP_TABLE_COLUMNS, *scores, *_TOP_TABLE_TRAILING) if column in table.columns]
    parts = []
    for _, rows in table.groupby(row_keys(table, RUN_KEY), sort=False):
        first = rows.iloc[0]
        parts.append(f"### {_ranking_title(first)}")
        parts.append(f"Metric settings: `{first.get('metric_settings')}`")
        parts.append(_markdown_table(rows if top_k is None else rows.head(top_k), columns))
    return "\n\n".join(parts)


def _ranking_title(row: pd.Series) -> str:
    samples = _format(row.get("samples_per_class"), "samples_per_class")
    return (f"`{row.get('dataset')}` @ `{_format(row.get('dataset_revision'), 'dataset_revision') or 'unknown'}`: "
            f"split `{row.get('split')}`, {samples or 'all'} samples per class, seed {_format(row.get('seed'), 'seed')}, "
            f"{_format(row.get('image_size'), 'image_size')} px")


def _columns_section(table: pd.DataFrame) -> str:
    rows = []
    for column in table.columns:
        if column in COLUMN_MEANINGS:
            meaning = COLUMN_MEANINGS[column]
        elif column in metric_columns(table):
            meaning = f"score of the metric `{column}` (higher = predicted to fine-tune better)"
        else:
            meaning = "written by lead_hub's ranking (see its documentation)"
        rows.append({"column": f"`{column}`", "meaning": meaning})
    return "## Columns\n\n" + _markdown_table(pd.DataFrame(rows), ["column", "meaning"])


def _merge_section() -> str:
    key = ", ".join(f"`{column}`" for column in MERGE_KEY)
    return (
        "## How updates merge\n\n"
        f"A row is identified by its merge key: {key}. Publishing a new ranking into this repository replaces the "
        "rows whose key it contains and keeps every other row, so rankings of other datasets, models or settings "
        "accumulate and a re-run of the same ranking replaces its own rows. After each merge, `rank` and `pareto` "
        "are recomputed over the rows of each ranking by its primary metric (the first of `metric_settings`)."
    )


def _provenance_section(provenance_by_run: Mapping[str, Mapping[str, Any]]) -> str:
    parts = ["## Provenance"]
    for identifier in sorted(provenance_by_run):
        provenance = provenance_by_run[identifier]
        text = json.dumps(provenance, indent=2, sort_keys=True, default=str) if provenance else "{}"
        note = "" if provenance else "\n\nNo provenance was recorded for this ranking."
        parts.append(f"### Run `{identifier}`\n\n```json\n{text}\n```{note}")
    return "\n\n".join(parts)


def _markdown_table(rows: pd.DataFrame, columns: list[str]) -> str:
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(row[column], column) for column in columns) + " |"
            for _, row in rows.iterrows()]
    return "\n".join([header, rule, *body])


def _cell(value: Any, column: str) -> str:
    return _format(value, column).replace("|", "\\|").replace("\n", " ")


def _format(value: Any, column: str) -> str:
    """A short human-readable form: blank for missing, ints without decimals, 4 significant digits for floats."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if column in _INTEGER_COLUMNS and value.is_integer() else f"{value:.4g}"
    return str(value)
