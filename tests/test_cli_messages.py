"""What a user reads when the Hub is out of reach: one plain line each, never on the end of a progress bar."""

from __future__ import annotations

import logging
import sys

import pytest
from hub_server import point_client_at, refusing_endpoint

from lead_hub import network
from lead_hub.cli import main
from lead_hub.cli._messages import one_line_warnings


def test_search_with_hf_hub_offline_is_one_plain_line(capsys):
    assert main(["rank", "--search", "vit", "--dataset", "demo", "--quiet"]) == 1
    error = capsys.readouterr().err
    assert error == ("lead-hub rank: error: --search asks the Hub, and HF_HUB_OFFLINE=1 is set: unset it to search, "
                     "or name the models with --models or --zoo\n")


def test_search_on_a_refusing_hub_is_one_line_without_earlier_or_a_cache(tmp_path, monkeypatch, capsys, caplog):
    """Issue 19, point 7: the first request of the run failed, so nothing happened "earlier in this run", and a
    search cannot be answered from a local cache: neither is said."""
    monkeypatch.setenv(network.TIMEOUT_VARIABLE, "2")
    with refusing_endpoint() as endpoint:
        point_client_at(monkeypatch, endpoint, str(tmp_path / "hf_home"))
        assert main(["rank", "--search", "vit", "--dataset", "demo", "--quiet"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert error.startswith(f"lead-hub rank: error: --search asks the Hub, and the Hub at {endpoint} could not be "
                            "reached (connection refused): check the network")
    assert "earlier" not in error and "cache" not in error and "HF_HUB_OFFLINE" not in error
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_warning_during_a_progress_bar_is_a_line_of_its_own(capsys):
    from tqdm.auto import tqdm

    with one_line_warnings("rank"):
        with tqdm(total=3, desc="models", file=sys.stderr) as bar:
            bar.update(1)
            logging.getLogger("lead_hub.network").warning("the Hub at http://x could not be reached")
            bar.update(2)
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert "lead-hub rank: warning: the Hub at http://x could not be reached" in lines


def test_python_warnings_are_one_line_each_and_said_once(capsys):
    import warnings

    with one_line_warnings("rank"):
        for dimensions in (1024, 1280):
            warnings.warn(f"hscore: the features have rank 299 (D={dimensions})\nuse more samples", UserWarning)
    error = capsys.readouterr().err
    assert error == "lead-hub rank: warning: hscore: the features have rank 299 (D=1024) use more samples\n"
    assert warnings.showwarning is not None and "one_line" not in repr(warnings.showwarning)


@pytest.mark.parametrize("argv", [["metrics"], ["zoo", "list"]])
def test_a_closed_pipe_ends_quietly(argv):
    """`lead-hub metrics | head`: the reader closing the pipe early is not an error to print."""
    import subprocess

    command = f"{sys.executable} -m lead_hub.cli {' '.join(argv)} | true"  # closed before the first write
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.stderr == ""
