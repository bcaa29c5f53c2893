"""``lead-hub push`` and ``lead-hub leaderboard show`` in subprocesses, against the loopback Hub.

The subprocesses use the real console entry point and the real huggingface_hub client; the loopback Hub runs in
the test process. Every test greps what the run left behind (output, files, the Hub's repositories) for the token.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hub_server import HubStore, LoopbackHub, client_environment, point_client_at
from test_hub import ALICE_TOKEN, everything_the_hub_holds, published_table
from test_hub_merge import ranking

from lead_hub.cli import main
from lead_hub.hub_card import CARD_PATH

SUBPROCESS_TIMEOUT_S = 300  # `lead-hub` imports every sub-command module, torch included: slow on a busy machine


@pytest.fixture
def loopback():
    with LoopbackHub() as server:
        server.store.add_user("alice", ALICE_TOKEN)
        yield server


def cli_environment(hub: LoopbackHub, home: Path, token: str | None = ALICE_TOKEN) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    environment.update(client_environment(hub.endpoint, str(home), token))
    environment.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return environment


def lead_hub_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "lead_hub.cli", *arguments]


def assert_token_nowhere(store: HubStore, folder: Path, *texts: str) -> None:
    assert all(ALICE_TOKEN not in text for text in texts)
    assert ALICE_TOKEN.encode() not in everything_the_hub_holds(store)
    for path in folder.rglob("*"):
        assert not path.is_file() or ALICE_TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_push_twice_then_show_through_the_cli(loopback, tmp_path):
    eurosat, cifar = ranking("eurosat", {"a": 1.0, "b": 2.0}), ranking("cifar", {"a": 3.0})
    eurosat_file = eurosat.save(tmp_path / "runs", formats=("parquet",), stem="eurosat")[0]
    cifar_file = cifar.save(tmp_path / "runs", formats=("json",), stem="cifar")[0]
    environment = cli_environment(loopback, tmp_path / "hf_home")
    outputs = []
    for results in (eurosat_file, cifar_file):
        done = subprocess.run(lead_hub_command("push", str(results), "alice/board"), env=environment,
                              capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
        assert done.returncode == 0, done.stderr
        outputs += [done.stdout, done.stderr]
    assert "Published to alice/board (new repository): commit http" in outputs[0]
    assert "rows: 1 added, 0 replaced, 2 kept" in outputs[2]
    shown = subprocess.run(lead_hub_command("leaderboard", "show", "alice/board", "--format", "csv"),
                           env=environment, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert shown.returncode == 0, shown.stderr
    table = pd.read_csv(io.StringIO(shown.stdout))
    assert table.set_index(["dataset", "model_id"])["lead"].to_dict() == {
        ("cifar", "a"): 3.0, ("eurosat", "b"): 2.0, ("eurosat", "a"): 1.0}
    assert_token_nowhere(loopback.store, tmp_path, *outputs, shown.stdout, shown.stderr)


@pytest.mark.slow
def test_two_processes_pushing_at_once_both_land(loopback, tmp_path):
    loopback.store.rendezvous("preupload", parties=2)  # both read the same head before either commits
    environment = cli_environment(loopback, tmp_path / "hf_home")
    processes = []
    for dataset in ("eurosat", "cifar"):
        results = ranking(dataset, {"a": 1.0, "b": 0.5}).save(tmp_path / dataset, formats=("parquet",))[0]
        processes.append(subprocess.Popen(lead_hub_command("push", str(results), "alice/board"), env=environment,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=SUBPROCESS_TIMEOUT_S) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert loopback.store.conflicts >= 1  # one of them lost the race, re-read, re-merged and retried
    table = published_table(loopback.store, "alice/board")
    assert sorted(zip(table["dataset"], table["model_id"])) == [
        ("cifar", "a"), ("cifar", "b"), ("eurosat", "a"), ("eurosat", "b")]
    assert len(loopback.store.repo("dataset", "alice/board").commits) == 3  # creation + one per push
    assert_token_nowhere(loopback.store, tmp_path, *(text for pair in outputs for text in pair))


def test_cli_errors_are_one_line_and_exit_non_zero(loopback, tmp_path, monkeypatch, capsys):
    point_client_at(monkeypatch, loopback.endpoint, str(tmp_path / "hf_home"))
    board = ranking("eurosat", {"a": 1.0})
    parquet_file, csv_file = board.save(tmp_path / "runs", formats=("parquet", "csv"))
    assert main(["push", str(parquet_file), "alice/board"]) == 1
    assert "lead-hub push: error: publishing to alice/board needs a Hugging Face token" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", ALICE_TOKEN)
    assert main(["push", str(csv_file), "alice/board"]) == 2
    assert "CSV does not" in capsys.readouterr().err
    loopback.store.create_repo("model", "alice/resnet")
    assert main(["leaderboard", "show", "alice/resnet"]) == 1
    assert "alice/resnet is a model repository" in capsys.readouterr().err
    assert_token_nowhere(loopback.store, tmp_path)


def test_show_prints_one_markdown_table_per_ranking(loopback, tmp_path, monkeypatch, capsys):
    point_client_at(monkeypatch, loopback.endpoint, str(tmp_path / "hf_home"), token=ALICE_TOKEN)
    for board in (ranking("eurosat", {"a": 1.0, "b": 2.0, "c": 0.0}), ranking("cifar", {"a": 3.0})):
        results = board.save(tmp_path / board.provenance["dataset"], formats=("json",))[0]
        assert main(["push", str(results), "alice/board", "--top-k", "2", "--license", "cc-by-4.0"]) == 0
    capsys.readouterr()
    card = loopback.store.files("dataset", "alice/board")[CARD_PATH].decode()
    assert "license: cc-by-4.0" in card and "| c |" not in card  # top 2 of eurosat: b, a
    assert main(["leaderboard", "show", "alice/board", "--top-k", "1"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("### `") == 2 and "| 1 | b |" in shown and "| 2 | a |" not in shown
    assert main(["leaderboard", "show", "alice/board", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
