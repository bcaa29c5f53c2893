"""The dataset card of a published leaderboard: YAML metadata, top-k tables, columns, merge rule, provenance."""

from __future__ import annotations

import json

import yaml
from huggingface_hub import DatasetCard
from test_hub_merge import published, ranking

from lead_hub.hub_card import LEADERBOARD_PATH, metric_columns, ranking_tables, render_card
from lead_hub.hub_merge import MERGE_KEY, merge_leaderboards


def card_for(*boards, top_k: int = 10) -> tuple[str, dict]:
    table = None
    for board in boards:
        table = merge_leaderboards(table, published(board)).table
    provenance = {published(board)["run_id"].iloc[0]: board.provenance for board in boards}
    return render_card(table, provenance, repo_id="alice/leaderboard", top_k=top_k, license="cc-by-4.0"), provenance


def test_the_yaml_metadata_points_datasets_at_the_parquet_file():
    card, _ = card_for(ranking("eurosat", {"a": 1.0}))
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["license"] == "cc-by-4.0"
    assert {"lead-hub", "leaderboard"} <= set(metadata["tags"])
    assert metadata["configs"] == [{"config_name": "default",
                                    "data_files": [{"split": "train", "path": LEADERBOARD_PATH}]}]
    assert DatasetCard(card).data.to_dict()["configs"][0]["data_files"][0]["path"] == LEADERBOARD_PATH


def test_each_ranking_gets_a_top_k_table_best_first():
    eurosat = ranking("eurosat", {f"model-{index}": float(index) for index in range(12)})
    cifar = ranking("cifar", {"small": 0.5, "large": 0.9})
    card, _ = card_for(eurosat, cifar, top_k=3)
    section = card.split("## Top 3 models of each ranking")[1].split("## Columns")[0]
    assert "`eurosat` @ `0123abcd`: split `train`, 10 samples per class, seed 0, 224 px" in section
    eurosat_table = section.split("`eurosat`")[1]
    assert [line.split("|")[2].strip() for line in eurosat_table.splitlines() if line.startswith("| ")][1:] == [
        "model-11", "model-10", "model-9"]
    assert "model-8" not in section and "| 1 | large |" in section


def test_ranking_tables_without_a_limit_list_every_row():
    table = published(ranking("eurosat", {f"m{index}": float(index) for index in range(12)}))
    assert sum(line.startswith("| ") for line in ranking_tables(table).splitlines()) == 1 + 12


def test_every_column_is_explained_and_scores_are_recognised():
    card, _ = card_for(ranking("eurosat", {"a": 1.0}))
    columns = card.split("## Columns")[1].split("## How updates merge")[0]
    table = published(ranking("eurosat", {"a": 1.0}))
    for column in table.columns:
        assert f"| `{column}` |" in columns
    assert metric_columns(table) == ["lead", "logme"]
    assert "score of the metric `lead` (higher = predicted to fine-tune better)" in columns


def test_the_merge_key_and_the_provenance_are_in_the_card():
    card, provenance = card_for(ranking("eurosat", {"a": 1.0}), ranking("cifar", {"a": 2.0}))
    merge_text = card.split("## How updates merge")[1].split("## Provenance")[0]
    assert all(f"`{column}`" in merge_text for column in MERGE_KEY)
    for identifier, record in provenance.items():
        block = card.split(f"### Run `{identifier}`")[1].split("```json")[1].split("```")[0]
        assert json.loads(block) == record


def test_the_card_is_a_pure_function_of_its_inputs():
    first, _ = card_for(ranking("eurosat", {"a": 1.0, "b": 0.5}))
    again, _ = card_for(ranking("eurosat", {"a": 1.0, "b": 0.5}))
    assert first == again
