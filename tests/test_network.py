"""An unreachable, stalled, failing or header-echoing Hub, through the real huggingface_hub client and lead_hub code.

Every server listens on 127.0.0.1 (tests/hub_server.py): one that refuses connections, one that accepts them and
never answers, and the loopback Hub with injected failures. Timeouts and waits are shortened through lead_hub's
environment variables; the only time assertions are generous upper bounds.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import pytest
from hub_server import LoopbackHub, StalledServer, client_environment, point_client_at, refusing_endpoint
from test_hub import ALICE_TOKEN, everything_the_hub_holds
from test_hub_merge import ranking

from lead_hub import network
from lead_hub.cli import main
from lead_hub.hub import HubError, HubNetworkError, push_leaderboard, read_leaderboard

TIMEOUT_S = 2
GENEROUS_BOUND_S = 240  # the runs take seconds of their own; the bound only catches a hang (the old code took minutes)
SUBPROCESS_TIMEOUT_S = 300


@pytest.fixture
def fast_network(monkeypatch):
    """lead_hub's network policy with a 2 s timeout and 10 ms retry waits."""
    monkeypatch.setenv(network.TIMEOUT_VARIABLE, str(TIMEOUT_S))
    monkeypatch.setenv(network.RETRY_WAIT_VARIABLE, "0.01")


def hub_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def assert_one_outage_warning(caplog, cause: str) -> None:
    """Exactly one warning in the whole run: lead_hub.network's line naming the cause and HF_HUB_OFFLINE=1."""
    warnings = hub_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert cause in warnings[0] and "will not try the network again" in warnings[0]
    assert "HF_HUB_OFFLINE=1" in warnings[0]
    assert "Retrying" not in caplog.text


def test_a_refusing_hub_is_one_failure_one_warning_and_no_retry(fast_network, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    with refusing_endpoint() as endpoint:
        point_client_at(monkeypatch, endpoint, str(tmp_path / "hf_home"), token=ALICE_TOKEN)
        with pytest.raises(HubNetworkError, match=r"could not be reached \(connection refused\).*run the same command"):
            read_leaderboard("alice/board")
        board = ranking("eurosat", {"a": 1.0})
        with pytest.raises(HubNetworkError, match="nothing was published, and publishing the same leaderboard again "
                                                  "is safe"):
            push_leaderboard(board.table, board.provenance, "alice/board")
    assert len(hub_warnings(caplog)) == 2  # one per run: each call is a run of its own
    assert all("connection refused" in warning for warning in hub_warnings(caplog))


def test_leaderboard_show_on_a_stalled_hub_returns_within_the_timeout(fast_network, tmp_path, monkeypatch, capsys,
                                                                       caplog):
    with StalledServer() as server:
        point_client_at(monkeypatch, server.endpoint, str(tmp_path / "hf_home"))
        started = time.monotonic()
        assert main(["leaderboard", "show", "alice/board"]) == 1
        elapsed = time.monotonic() - started
        assert server.connections == 1  # the request that stalled; nothing after it
    error = capsys.readouterr().err
    assert f"could not be reached (no answer within {TIMEOUT_S} s)" in error
    assert error.count("\n") == 1  # one line: the error names the cause, so no warning line says it first
    assert not hub_warnings(caplog)
    assert elapsed < GENEROUS_BOUND_S


@pytest.mark.slow
def test_a_17_model_hub_zoo_on_a_stalled_hub_fails_fast_with_one_message(tmp_path):
    """The real console entry point in a subprocess: what a user sees on stderr, and one connection in all."""
    environment = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    with StalledServer() as server:
        environment.update(client_environment(server.endpoint, str(tmp_path / "hf_home")))
        environment.update({network.TIMEOUT_VARIABLE: "2", "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "lead_hub.cli", "rank", "--zoo", "modern", "--dataset", "demo",
                               "--quiet", "--no-cache", "--output", "out"], env=environment, cwd=tmp_path,
                              capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
        elapsed = time.monotonic() - started
        assert server.connections == 1
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("could not be reached (no answer within 2 s)") == 2, done.stderr  # the event, the verdict
    assert done.stderr.count("will not try the network again") == 1
    assert "lead-hub rank: error: no model could be scored; the Hub at" in done.stderr
    assert "Retrying" not in done.stderr and "feature extraction failed" not in done.stderr
    assert "Traceback" not in done.stderr
    notes = pd.read_csv(tmp_path / "out" / "leaderboard.csv")["notes"]
    assert len(notes) == 17 and notes.str.startswith("not loaded: the Hub could not be reached").all()
    assert elapsed < GENEROUS_BOUND_S


def test_hub_models_on_a_refusing_hub_fail_fast_with_exit_code_1(fast_network, tmp_path, monkeypatch, capsys,
                                                                  caplog):
    models = ["hf-hub:timm/resnet18.a1_in1k", "hf-hub:timm/efficientnet_b0.ra_in1k", "timm/mobilenetv3_small_100"]
    with refusing_endpoint() as endpoint:
        point_client_at(monkeypatch, endpoint, str(tmp_path / "hf_home"))
        assert main(["rank", "--models", *models, "--dataset", "demo", "--quiet", "--no-cache",
                     "--output", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "no model could be scored; the Hub at" in captured.err and "(connection refused)" in captured.err
    notes = pd.read_csv(tmp_path / "out" / "leaderboard.csv")["notes"]
    assert len(notes) == len(models) and notes.str.startswith("not loaded: the Hub could not be reached").all()
    assert_one_outage_warning(caplog, "connection refused")


@pytest.mark.parametrize("dataset", ["owner/name", "mydata/photos"])
def test_a_hub_dataset_on_a_refusing_hub_fails_fast_and_says_there_is_no_such_folder(
        dataset, fast_network, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    with refusing_endpoint() as endpoint:
        point_client_at(monkeypatch, endpoint, str(tmp_path / "hf_home"))
        assert main(["rank", "--models", "hf-hub:timm/resnet18.a1_in1k", "--dataset", dataset, "--quiet"]) == 1
    error = capsys.readouterr().err
    assert f"there is no local file or folder '{dataset}'" in error
    assert "could not be reached (connection refused)" in error and "Traceback" not in error
    assert_one_outage_warning(caplog, "connection refused")


@pytest.mark.parametrize("dataset", ["./photos", "mydata/photos", "photos.zip", "runs/train.parquet"])
def test_a_path_that_looks_local_is_no_such_folder_without_asking_the_hub(dataset, fast_network, tmp_path,
                                                                         monkeypatch, capsys):
    """Exit code 2 (a bad argument) and no connection: ``mydata/`` exists here, so ``mydata/photos`` is local."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mydata").mkdir()
    with StalledServer() as server:
        point_client_at(monkeypatch, server.endpoint, str(tmp_path / "hf_home"))
        assert main(["rank", "--models", "hf-hub:timm/resnet18.a1_in1k", "--dataset", dataset, "--quiet"]) == 2
        assert server.connections == 0
    assert f"no such file or folder: '{dataset}'" in capsys.readouterr().err


def test_a_hub_answering_503_gets_one_retry_policy_not_two(fast_network, tmp_path, monkeypatch, caplog):
    """LEAD_HUB_HUB_ATTEMPTS requests in all: huggingface_hub's own back-off never retries on top of lead_hub's."""
    from lead_hub.models import load_backbone

    monkeypatch.setenv(network.ATTEMPTS_VARIABLE, "3")
    with LoopbackHub() as hub:
        point_client_at(monkeypatch, hub.endpoint, str(tmp_path / "hf_home"))
        hub.store.create_repo("model", "alice/resnet")
        hub.store.fail_next(50, 503)
        with pytest.raises(LookupError, match="alice/resnet"):
            load_backbone("hf-hub:alice/resnet")
        assert [record.status for record in hub.store.requests] == [503, 503, 503]
    assert_one_outage_warning(caplog, "HTTP 503 after 3 attempt(s)")


def test_the_token_never_leaks_from_a_server_that_echoes_the_authorization_header(tmp_path, monkeypatch, capsys,
                                                                                  caplog):
    """HTTP 400 whose text holds every request header: the CLI, the API, the logs and the files show hf_***."""
    from lead_hub.models import load_backbone

    caplog.set_level(logging.DEBUG)
    with LoopbackHub() as hub:
        hub.store.add_user("alice", ALICE_TOKEN)
        point_client_at(monkeypatch, hub.endpoint, str(tmp_path / "hf_home"), token=ALICE_TOKEN)
        board = ranking("eurosat", {"a": 1.0})
        results = board.save(tmp_path / "runs", formats=("parquet",))[0]
        hub.store.echo_headers_next(1)
        assert main(["push", str(results), "alice/board"]) == 1
        printed = capsys.readouterr()
        assert "HTTP 400 (Bad request. You sent:" in printed.err and "Bearer hf_***" in printed.err
        hub.store.echo_headers_next(1)
        with pytest.raises(HubError, match="HTTP 400") as from_the_api:
            push_leaderboard(board.table, board.provenance, "alice/board")
        hub.store.echo_headers_next(10)
        with pytest.raises(LookupError) as from_a_model:
            load_backbone("hf-hub:alice/resnet")
        texts = [printed.out, printed.err, caplog.text, *capsys.readouterr()]
        texts += ["".join(traceback.format_exception(error.value)) for error in (from_the_api, from_a_model)]
        assert "hf_***" in texts[-2]
        assert all(ALICE_TOKEN not in text for text in texts)
        assert ALICE_TOKEN.encode() not in everything_the_hub_holds(hub.store)
    for path in Path(tmp_path).rglob("*"):
        assert not path.is_file() or ALICE_TOKEN.encode() not in path.read_bytes(), path


ALTERED_TOKENS = {
    "lower_case": str.lower,
    "upper_case": str.upper,
    "prefix": lambda token: token[:12],
    "base64": lambda token: base64.b64encode(token.encode()).decode(),
    "base64_user_token": lambda token: base64.b64encode(f"alice:{token}".encode()).decode(),
}


@pytest.mark.parametrize("form", sorted(ALTERED_TOKENS))
def test_altered_forms_of_the_token_never_leak(tmp_path, monkeypatch, capsys, caplog, form):
    """Issue 20: a server that echoes the token lower-cased, cut to a prefix or base64-encoded (in the body and the
    reason phrase) got it to `lead-hub push`'s stderr, the Space's publish error and httpx's log."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "space"))
    from hub_publish import PublishError, publish

    caplog.set_level(logging.INFO)
    altered = ALTERED_TOKENS[form]
    leaked = altered(ALICE_TOKEN)
    with LoopbackHub() as hub:
        hub.store.add_user("alice", ALICE_TOKEN)
        point_client_at(monkeypatch, hub.endpoint, str(tmp_path / "hf_home"), token=ALICE_TOKEN)
        board = ranking("eurosat", {"a": 1.0})
        results = board.save(tmp_path / "runs", formats=("parquet",))[0]
        hub.store.echo_headers_next(1, altered=altered, in_reason=True)
        assert main(["push", str(results), "alice/board"]) == 1
        printed = capsys.readouterr()
        hub.store.echo_headers_next(1, altered=altered, in_reason=True)
        with pytest.raises(PublishError) as from_the_space:
            publish(board, "alice/board", ALICE_TOKEN)
    assert "HTTP 400" in printed.err and "hf_***" in printed.err
    texts = [printed.out, printed.err, str(from_the_space.value), caplog.text]
    for text in texts:
        assert leaked not in text and ALICE_TOKEN.lower() not in text.lower()
        assert network.mask(text, ALICE_TOKEN) == text, "no stretch of any form of the token is left"
    assert "hf_***" in caplog.text and "HTTP Request:" in caplog.text  # httpx's line, with the reason masked


def test_mask_finds_the_token_in_every_form_and_leaves_other_text():
    token = "hf_" + "QrStUvWxYz" + "0123456789AbCdEfGhIjKl"  # a made-up token, written so it reads as none
    for form, altered in ALTERED_TOKENS.items():
        masked = network.mask(f"server said {altered(token)} ok", token)
        assert masked.startswith("server said ") and masked.endswith(" ok") and network.MASK in masked, form
        assert altered(token) not in masked and network.mask(masked, token) == masked, form
    assert network.mask("hf_QrSt is 7 long", token) == "hf_QrSt is 7 long"  # under 8 characters: left
    assert network.mask("a hf_QrStUvWx z", token) == f"a {network.MASK} z"


def test_outside_a_lead_hub_run_only_the_timeout_bound_applies(fast_network, tmp_path, monkeypatch):
    """A user's own huggingface_hub calls in the same process are not stopped by a failure of a lead_hub run."""
    from huggingface_hub import HfApi

    with StalledServer() as server:
        point_client_at(monkeypatch, server.endpoint, str(tmp_path / "hf_home"))
        with pytest.raises(HubNetworkError):
            read_leaderboard("alice/board")
        assert network.outage() is not None
        network.install()
        with pytest.raises(Exception) as raised:
            HfApi().dataset_info("alice/board")  # tried (not refused by the outage), and bounded by the timeout
        assert not isinstance(raised.value, network.HubUnreachableError)
        assert server.connections == 2


def test_bad_policy_settings_name_the_variable(monkeypatch):
    monkeypatch.setenv(network.TIMEOUT_VARIABLE, "soon")
    with pytest.raises(ValueError, match="LEAD_HUB_HUB_TIMEOUT_S='soon' is not a positive number"):
        network.NetworkPolicy.from_environment()
    monkeypatch.setenv(network.TIMEOUT_VARIABLE, "3")
    monkeypatch.setenv(network.ATTEMPTS_VARIABLE, "0")
    with pytest.raises(ValueError, match="LEAD_HUB_HUB_ATTEMPTS='0' is not a positive integer"):
        network.NetworkPolicy.from_environment()


def test_after_the_hub_is_given_up_cached_models_and_datasets_still_load(fast_network, tmp_path, monkeypatch, caplog):
    """The outage behaves like HF_HUB_OFFLINE=1: what an earlier run downloaded comes from the local cache."""
    from test_data import interleaved_labels, write_parquet
    from test_models import save_tiny_timm

    from lead_hub.data import load_images
    from lead_hub.models import load_backbone

    home = str(tmp_path / "hf_home")
    model = save_tiny_timm(tmp_path / "tiny")
    with LoopbackHub() as hub:
        hub.store.create_repo("model", "alice/tiny")
        hub.store.commit("model", "alice/tiny", add={path.name: path.read_bytes() for path in model.iterdir()})
        hub.store.create_repo("dataset", "alice/pets")
        parquet = write_parquet(tmp_path / "pets.parquet", interleaved_labels(30))
        hub.store.commit("dataset", "alice/pets", add={"data/train-00000-of-00001.parquet": parquet.read_bytes()})
        point_client_at(monkeypatch, hub.endpoint, home)
        online = (load_backbone("hf-hub:alice/tiny").revision,
                  load_images("alice/pets", streaming=False, samples_per_class=3).revision)
    with refusing_endpoint() as endpoint:
        point_client_at(monkeypatch, endpoint, home)
        with network.one_run():
            offline = (load_backbone("hf-hub:alice/tiny").revision,
                       load_images("alice/pets", streaming=False, samples_per_class=3).revision)
            assert network.outage() is not None and "connection refused" in network.outage().cause
    assert offline == online
    outage_lines = [record for record in caplog.records if record.name == "lead_hub.network"]
    assert len(outage_lines) == 1 and "connection refused" in outage_lines[0].getMessage()
    assert "Using the latest cached version of the dataset" in caplog.text  # datasets says it used its cache
