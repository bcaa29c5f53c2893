"""Publishing and reading leaderboards through the real huggingface_hub client, against the loopback Hub."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from hub_server import HubStore, LoopbackHub, point_client_at
from test_hub_merge import ranking

from lead_hub import hub, network
from lead_hub.hub import (
    HubAuthError,
    HubConflictError,
    HubError,
    HubNetworkError,
    HubNotFoundError,
    HubRepoTypeError,
    dataset_repo_id,
    push_leaderboard,
    read_leaderboard,
)
from lead_hub.hub_card import CARD_PATH, LEADERBOARD_PATH, PROVENANCE_PATH
from lead_hub.hub_merge import merge_leaderboards, published_rows

ALICE_TOKEN = "hf_aliceLoopbackToken7f3c9a1e"
BOB_TOKEN = "hf_bobLoopbackToken2d8e4b6f0"


@pytest.fixture
def loopback(tmp_path, monkeypatch):
    """A loopback Hub with users alice and bob; the in-process client is alice (HF_TOKEN) and retries fast."""
    with LoopbackHub() as server:
        server.store.add_user("alice", ALICE_TOKEN)
        server.store.add_user("bob", BOB_TOKEN)
        point_client_at(monkeypatch, server.endpoint, str(tmp_path / "hf_home"), token=ALICE_TOKEN)
        monkeypatch.setenv(network.RETRY_WAIT_VARIABLE, "0.01")
        monkeypatch.setenv(network.TIMEOUT_VARIABLE, "5")
        monkeypatch.setattr(hub, "CONFLICT_BASE_WAIT_S", 0.01)
        yield server


def published_table(store: HubStore, repo_id: str, revision: str = "main") -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(store.files("dataset", repo_id, revision)[LEADERBOARD_PATH]))


def everything_the_hub_holds(store: HubStore) -> bytes:
    """Every file of every commit of every repository, and every commit message."""
    parts = []
    for repo in store.repos.values():
        for commit in repo.commits.values():
            parts += [commit.title.encode(), commit.message.encode(), *commit.files.values()]
    return b"\n".join(parts)


def test_a_first_push_creates_the_dataset_repo_with_table_card_and_provenance(loopback):
    board = ranking("eurosat", {"a": 1.0, "b": 2.0})
    result = push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    assert result.created_repo and result.attempts == 1 and result.pull_request_url is None
    assert (result.rows_added, result.rows_replaced, result.rows_kept) == (2, 0, 0)
    repo = loopback.store.repo("dataset", "alice/leaderboard")
    assert repo.branches["main"] == result.commit_oid and not repo.private
    files = loopback.store.files("dataset", "alice/leaderboard")
    assert {LEADERBOARD_PATH, PROVENANCE_PATH, CARD_PATH} <= set(files)
    table = published_table(loopback.store, "alice/leaderboard")
    assert table["model_id"].tolist() == ["b", "a"] and table["lead"].tolist() == [2.0, 1.0]
    provenance = json.loads(files[PROVENANCE_PATH])
    assert list(provenance.values()) == [board.provenance]
    assert files[CARD_PATH].startswith(b"---\nlicense: apache-2.0\n")


def test_the_card_configs_let_the_datasets_library_load_the_leaderboard(loopback, tmp_path):
    import datasets

    board = ranking("eurosat", {"a": 1.0, "b": 2.0})
    push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    loaded = datasets.load_dataset("alice/leaderboard", split="train", cache_dir=str(tmp_path / "datasets"))
    assert loaded["model_id"] == ["b", "a"] and loaded["lead"] == [2.0, 1.0]
    assert set(loaded.column_names) == set(published_table(loopback.store, "alice/leaderboard").columns)


def test_pushes_merge_and_a_rerun_replaces_only_its_rows(loopback):
    for board in (ranking("eurosat", {"a": 1.0, "b": 2.0}), ranking("cifar", {"a": 3.0})):
        push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    rerun = ranking("eurosat", {"a": 5.0}, created="2024-05-01T00:00:00+00:00")
    result = push_leaderboard(rerun.table, rerun.provenance, "alice/leaderboard")
    assert (result.rows_added, result.rows_replaced, result.rows_kept) == (0, 1, 2)
    read = read_leaderboard("alice/leaderboard")
    assert read.commit_oid == result.commit_oid
    scores = read.table.set_index(["dataset", "model_id"])["lead"].to_dict()
    assert scores == {("eurosat", "a"): 5.0, ("eurosat", "b"): 2.0, ("cifar", "a"): 3.0}
    assert len(read.provenance_by_run) == 3  # first eurosat run (row b), cifar, the re-run (row a)
    commits = loopback.store.repo("dataset", "alice/leaderboard").commits
    assert len(commits) == 4  # creation + three pushes


def test_an_identical_push_makes_no_commit(loopback):
    board = ranking("eurosat", {"a": 1.0})
    first = push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    again = push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    assert again.commit_oid == first.commit_oid
    assert len(loopback.store.repo("dataset", "alice/leaderboard").commits) == 2


def after_each_head_read(monkeypatch, another_writer) -> None:
    """Call ``another_writer()`` right after each push reads the head of main: a writer landing in between."""
    read_head = hub.HfApi.dataset_info

    def read_head_then_let_another_writer_in(self, *args, **kwargs):
        head = read_head(self, *args, **kwargs)
        another_writer()
        return head

    monkeypatch.setattr(hub.HfApi, "dataset_info", read_head_then_let_another_writer_in)


def test_a_push_that_loses_the_race_rereads_merges_and_retries(loopback, monkeypatch):
    board = ranking("eurosat", {"a": 1.0})
    push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    store = loopback.store

    def publish_svhn_once():
        if store.conflicts == 0:
            svhn = ranking("svhn", {"c": 4.0})
            table = merge_leaderboards(published_table(store, "alice/leaderboard"),
                                       published_rows(svhn.table, svhn.provenance)).table
            buffer = io.BytesIO()
            table.to_parquet(buffer, index=False)
            store.commit("dataset", "alice/leaderboard", add={LEADERBOARD_PATH: buffer.getvalue()}, author="bob")

    after_each_head_read(monkeypatch, publish_svhn_once)
    cifar = ranking("cifar", {"b": 2.0})
    result = push_leaderboard(cifar.table, cifar.provenance, "alice/leaderboard")
    assert result.attempts == 2 and store.conflicts == 1
    assert sorted(published_table(store, "alice/leaderboard")["dataset"]) == ["cifar", "eurosat", "svhn"]


def test_a_branch_that_keeps_moving_is_a_conflict_error(loopback, monkeypatch):
    board = ranking("eurosat", {"a": 1.0})
    push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    store = loopback.store
    after_each_head_read(monkeypatch, lambda: store.commit(
        "dataset", "alice/leaderboard", add={"busy.txt": str(store.conflicts).encode()}, author="bob"))
    monkeypatch.setattr(hub, "CONFLICT_ATTEMPTS", 3)
    cifar = ranking("cifar", {"b": 2.0})
    with pytest.raises(HubConflictError, match="kept changing.*each of 3 attempts"):
        push_leaderboard(cifar.table, cifar.provenance, "alice/leaderboard")
    assert store.conflicts == 3


def test_create_pr_proposes_the_merge_to_a_repo_the_user_cannot_write(loopback, monkeypatch):
    board = ranking("eurosat", {"a": 1.0})
    push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    main_before = loopback.store.repo("dataset", "alice/leaderboard").branches["main"]
    monkeypatch.setenv("HF_TOKEN", BOB_TOKEN)
    cifar = ranking("cifar", {"b": 2.0})
    with pytest.raises(HubAuthError, match="may not write to alice/leaderboard \\(HTTP 403\\).*--create-pr"):
        push_leaderboard(cifar.table, cifar.provenance, "alice/leaderboard")
    result = push_leaderboard(cifar.table, cifar.provenance, "alice/leaderboard", create_pr=True)
    assert result.pull_request_url.endswith("/datasets/alice/leaderboard/discussions/1")
    repo = loopback.store.repo("dataset", "alice/leaderboard")
    assert repo.branches["main"] == main_before
    proposed = published_table(loopback.store, "alice/leaderboard", "refs/pr/1")
    assert sorted(proposed["dataset"]) == ["cifar", "eurosat"]
    assert read_leaderboard("alice/leaderboard", revision="refs/pr/1").table.shape == proposed.shape


def test_create_pr_needs_an_existing_repo_and_private_applies_on_creation(loopback):
    board = ranking("eurosat", {"a": 1.0})
    with pytest.raises(HubNotFoundError, match="no such dataset repository.*Drop --create-pr"):
        push_leaderboard(board.table, board.provenance, "alice/new-board", create_pr=True)
    push_leaderboard(board.table, board.provenance, "alice/private-board", private=True)
    assert loopback.store.repo("dataset", "alice/private-board").private


def test_no_token_is_a_clear_error_before_any_request(loopback, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    board = ranking("eurosat", {"a": 1.0})
    with pytest.raises(HubAuthError, match="needs a Hugging Face token.*HF_TOKEN.*hf auth login"):
        push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    assert loopback.store.requests == []


def test_a_rejected_token_and_a_foreign_namespace_are_auth_errors(loopback, monkeypatch):
    board = ranking("eurosat", {"a": 1.0})
    monkeypatch.setenv("HF_TOKEN", "hf_revokedTokenThatTheHubRejects")
    with pytest.raises(HubAuthError, match="rejected your token \\(HTTP 401\\)") as rejected:
        push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    assert "hf_revokedTokenThatTheHubRejects" not in str(rejected.value)
    monkeypatch.setenv("HF_TOKEN", ALICE_TOKEN)
    with pytest.raises(HubAuthError, match="HTTP 403"):
        push_leaderboard(board.table, board.provenance, "bob/leaderboard")


def test_model_and_space_repos_are_refused(loopback):
    loopback.store.create_repo("model", "alice/resnet")
    board = ranking("eurosat", {"a": 1.0})
    with pytest.raises(HubRepoTypeError, match="alice/resnet is a model repository, not a dataset repository"):
        push_leaderboard(board.table, board.provenance, "alice/resnet")
    with pytest.raises(HubRepoTypeError, match="model repository"):
        read_leaderboard("alice/resnet")
    with pytest.raises(HubRepoTypeError, match="names a Space repository"):
        dataset_repo_id("spaces/alice/demo")
    assert dataset_repo_id("datasets/alice/board") == "alice/board"
    with pytest.raises(ValueError, match="expected OWNER/NAME"):
        dataset_repo_id("just-a-name")


def test_a_dataset_repo_that_is_not_a_leaderboard_is_left_alone(loopback):
    loopback.store.create_repo("dataset", "alice/images", author="alice")
    loopback.store.commit("dataset", "alice/images", add={"README.md": b"# my images\n", "train.parquet": b"x"})
    board = ranking("eurosat", {"a": 1.0})
    with pytest.raises(HubError, match="holds train.parquet but no data/leaderboard.parquet.*replace its README"):
        push_leaderboard(board.table, board.provenance, "alice/images")
    with pytest.raises(HubNotFoundError, match="not a lead_hub leaderboard"):
        read_leaderboard("alice/images")
    assert loopback.store.files("dataset", "alice/images")["README.md"] == b"# my images\n"
    with pytest.raises(HubNotFoundError, match="no dataset repository alice/missing"):
        read_leaderboard("alice/missing")
    push_leaderboard(board.table, board.provenance, "alice/board")
    with pytest.raises(HubNotFoundError, match="revision does not exist"):
        read_leaderboard("alice/board", revision="no-such-branch")


def test_transient_failures_are_retried(loopback):
    board = ranking("eurosat", {"a": 1.0})
    loopback.store.fail_next(2, status=503)
    result = push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    assert result.rows_added == 1
    assert [record.status for record in loopback.store.requests[:3]] == [503, 503, 200]


def test_an_unreachable_hub_is_a_network_error_without_retries(loopback, monkeypatch):
    loopback.close()
    board = ranking("eurosat", {"a": 1.0})
    with pytest.raises(HubNetworkError, match="could not be reached \\(connection refused\\); nothing was published, "
                                              "and publishing the same leaderboard again is safe"):
        push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    with pytest.raises(HubNetworkError, match="could not be reached \\(connection refused\\)"):
        read_leaderboard("alice/leaderboard")
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubNetworkError, match="HF_HUB_OFFLINE is set"):
        read_leaderboard("alice/leaderboard")


def test_the_token_is_in_no_file_message_log_or_repr(loopback, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    board = ranking("eurosat", {"a": 1.0})
    result = push_leaderboard(board.table, board.provenance, "alice/leaderboard")
    read = read_leaderboard("alice/leaderboard")
    leaking = ranking("cifar", {"a": 1.0})
    leaking.provenance["note"] = f"pushed with {ALICE_TOKEN}"
    with pytest.raises(HubError, match="would contain your Hub token") as refused:
        push_leaderboard(leaking.table, leaking.provenance, "alice/leaderboard")
    captured = capsys.readouterr()
    texts = [repr(result), repr(read), str(refused.value), captured.out, captured.err, caplog.text]
    assert all(ALICE_TOKEN not in text for text in texts)
    assert ALICE_TOKEN.encode() not in everything_the_hub_holds(loopback.store)
    for path in Path(tmp_path).rglob("*"):
        assert not path.is_file() or ALICE_TOKEN.encode() not in path.read_bytes(), path
    assert all(record.authenticated for record in loopback.store.requests if "commit" in record.path)
