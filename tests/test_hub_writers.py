"""Many writers and a faulty server: every push lands, or fails leaving a retry that cannot duplicate rows.

The writers are threads of this process pushing through the real huggingface_hub client to the loopback Hub
(tests/hub_server.py), which answers 412 to a commit whose parent is no longer the head of main, exactly as the Hub
does. Injected faults: HTTP 500 on some commits, 503 on some reads, a commit that lands but whose answer never
comes, and one that never arrives.
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor

import pytest
from hub_server import LoopbackHub, point_client_at
from test_hub import ALICE_TOKEN, published_table
from test_hub_merge import ranking

from lead_hub import hub, network
from lead_hub.cli import main
from lead_hub.hub import HubNetworkError, PushResult, push_leaderboard
from lead_hub.hub_merge import row_keys

WRITERS = 16
MODELS_PER_WRITER = 2
STALL_TIMEOUT_S = 2  # what each stalled commit costs; the loopback Hub answers in milliseconds (as in test_network)


@pytest.fixture
def loopback(tmp_path, monkeypatch):
    """The loopback Hub with user alice (the in-process client), 2 s timeouts and short waits between attempts."""
    with LoopbackHub() as server:
        server.store.add_user("alice", ALICE_TOKEN)
        point_client_at(monkeypatch, server.endpoint, str(tmp_path / "hf_home"), token=ALICE_TOKEN)
        monkeypatch.setenv(network.TIMEOUT_VARIABLE, str(STALL_TIMEOUT_S))
        monkeypatch.setenv(network.RETRY_WAIT_VARIABLE, "0.01")
        monkeypatch.setattr(hub, "CONFLICT_BASE_WAIT_S", 0.01)
        monkeypatch.setattr(hub, "CONFLICT_MAX_WAIT_S", 0.2)
        yield server


def writer_board(index: int):
    return ranking(f"dataset-{index:02d}", {f"model-{k}": float(index + k) for k in range(MODELS_PER_WRITER)})


def push_all_at_once(count: int) -> list[PushResult | Exception]:
    """``count`` writers, each pushing its own ranking to alice/board at the same time; results or errors."""
    def push(index: int) -> PushResult | Exception:
        board = writer_board(index)
        try:
            return push_leaderboard(board.table, board.provenance, "alice/board")
        except Exception as error:  # noqa: BLE001 - collected for the assertion that names it
            return error

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(push, range(count)))


def assert_every_row_once(store, count: int) -> None:
    table = published_table(store, "alice/board")
    assert len(table) == count * MODELS_PER_WRITER
    assert not row_keys(table).duplicated().any()
    assert sorted(set(table["dataset"])) == [f"dataset-{index:02d}" for index in range(count)]


@pytest.mark.slow
def test_sixteen_writers_at_once_through_500s_and_503s_all_land_and_no_row_is_duplicated(loopback, monkeypatch):
    monkeypatch.setenv(network.TIMEOUT_VARIABLE, "5")  # nothing stalls here: 16 threads share one server, no hurry
    store = loopback.store
    store.create_repo("dataset", "alice/board", author="alice")
    store.rendezvous("preupload", parties=WRITERS)  # all read the same head before any commits
    store.fail_next(3, 500, path_contains="/commit/")
    store.fail_next(2, 503, path_contains="/revision/main")
    results = push_all_at_once(WRITERS)
    assert all(isinstance(result, PushResult) for result in results), results
    assert_every_row_once(store, WRITERS)
    assert len(store.repo("dataset", "alice/board").commits) == 1 + WRITERS
    assert store.conflicts >= WRITERS - 1  # the first round: one commit wins, the others re-read and merge
    assert max(result.attempts for result in results) <= WRITERS <= hub.CONFLICT_ATTEMPTS
    statuses = [record.status for record in store.requests]
    assert statuses.count(500) == 3 and statuses.count(503) == 2  # each retried by lead_hub.network, once


@pytest.mark.parametrize("lands", [True, False], ids=["commit-lands-answer-lost", "commit-never-arrives"])
def test_a_stalled_commit_fails_within_the_timeout_and_the_retry_cannot_duplicate(loopback, lands):
    store = loopback.store
    board = writer_board(0)
    push_leaderboard(board.table, board.provenance, "alice/board")
    rerun = writer_board(1)
    store.stall_next(1, "/commit/", after_handling=lands)
    expected = (f"no answer within {STALL_TIMEOUT_S} s.*the commit may or may not have landed, and publishing the "
                "same leaderboard again is safe")
    with pytest.raises(HubNetworkError, match=expected) as failed:
        push_leaderboard(rerun.table, rerun.provenance, "alice/board")
    assert failed.value.retryable
    assert len(published_table(store, "alice/board")) == (4 if lands else 2)
    again = push_leaderboard(rerun.table, rerun.provenance, "alice/board")
    assert (again.rows_added, again.rows_replaced) == ((0, 2) if lands else (2, 0))
    assert_every_row_once(store, 2)


def test_a_failed_cli_push_prints_the_exact_command_that_publishes_it(loopback, tmp_path, capsys):
    results = writer_board(0).save(tmp_path / "my runs", formats=("json",))[0]
    loopback.store.create_repo("dataset", "alice/board", author="alice")
    loopback.store.stall_next(1, "/commit/")
    assert main(["push", str(results), "alice/board", "--top-k", "3"]) == 1
    error = capsys.readouterr().err
    command = error.rpartition("retry with: ")[2].strip()
    assert shlex.split(command) == ["lead-hub", "push", str(results), "alice/board", "--top-k", "3"]
    assert main(shlex.split(command)[1:]) == 0
    assert_every_row_once(loopback.store, 1)


def test_a_ranking_whose_push_fails_is_kept_with_the_command_that_publishes_it(loopback, tmp_path, monkeypatch,
                                                                              capsys):
    from lead_hub.cli.rank import _push

    monkeypatch.chdir(tmp_path)
    board = writer_board(0)
    loopback.store.stall_next(1, "/commit/")
    assert _push(board, "alice/board", output=None) == 1
    error = capsys.readouterr().err
    assert "the commit may or may not have landed" in error
    command = shlex.split(error.rpartition("publish it with: ")[2])
    saved = tmp_path / command[2]
    assert command[:2] == ["lead-hub", "push"] and command[3:] == ["alice/board"] and saved.is_file()
    assert main(command[1:]) == 0
    assert_every_row_once(loopback.store, 1)
