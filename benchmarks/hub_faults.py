"""Measure lead_hub against a Hub that refuses, stalls, fails or is written by many at once (figures of docs/hub.md).

All servers run on 127.0.0.1 (tests/hub_server.py); nothing leaves the machine. With the default network policy
(no LEAD_HUB_HUB_* variable set) it measures:

* ``lead-hub rank --zoo modern --dataset demo`` (17 Hub models) as a user runs it, in a subprocess, against a port
  that refuses connections, against a server that accepts them and never answers, and with ``HF_HUB_OFFLINE=1``
  (no network at all: the floor): wall time of the process (interpreter start and imports included), the time
  of the command itself once lead_hub, torch and timm are imported, exit code, how many connections the stalled
  server saw, how many lines say the Hub could not be reached, and whether any "Retrying" line appears;
* ``lead-hub leaderboard show owner/board`` against the stalled server;
* N writers (threads, default conflict back-off) pushing their own 2-row ranking to one leaderboard at once,
  optionally with HTTP 500 answers injected on some commits: rows expected, rows published, duplicated rows,
  failed pushes, 412 conflicts, attempts of the unluckiest writer, wall time.

Usage: ``python benchmarks/hub_faults.py [--writers 2 8 16] [--skip-cli]``; prints markdown tables.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "tests"))

import pandas as pd  # noqa: E402
from hub_server import LoopbackHub, StalledServer, client_environment, refusing_endpoint  # noqa: E402

TOKEN = "hf_loopback_fake_token_for_benchmarks"
SUBPROCESS_TIMEOUT_S = 900


# The command run by lead-hub's entry point, timed once the heavy modules are imported (they dominate start-up).
_TIMED_MAIN = """
import sys, time
import lead_hub.cli, lead_hub.features, lead_hub.ranking
started = time.monotonic()
code = lead_hub.cli.main(sys.argv[1:])
print(f"command seconds: {time.monotonic() - started:.1f}", file=sys.stderr)
sys.exit(code)
"""


def run_cli(arguments: list[str], endpoint: str, home: Path,
            offline: bool = False) -> tuple[float, subprocess.CompletedProcess]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("LEAD_HUB_HUB_") and key not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    environment.update(client_environment(endpoint, str(home)))
    if offline:
        environment["HF_HUB_OFFLINE"] = "1"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _TIMED_MAIN, *arguments], env=environment, cwd=home,
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    return time.monotonic() - started, done


def cli_rows() -> list[dict]:
    rank = ["rank", "--zoo", "modern", "--dataset", "demo", "--quiet", "--no-cache"]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        with refusing_endpoint() as endpoint:
            rows.append(cli_row("rank --zoo modern (17 Hub models)", "HF_HUB_OFFLINE=1 (floor)",
                                *run_cli(rank, endpoint, Path(folder), offline=True), None))
            rows.append(cli_row("rank --zoo modern (17 Hub models)", "refused", *run_cli(rank, endpoint,
                                                                                          Path(folder)), None))
        for label, arguments in (("rank --zoo modern (17 Hub models)", rank),
                                 ("leaderboard show owner/board", ["leaderboard", "show", "owner/board"])):
            with StalledServer() as server:
                elapsed, done = run_cli(arguments, server.endpoint, Path(folder))
                rows.append(cli_row(label, "accepts, never answers", elapsed, done, server.connections))
    return rows


def cli_row(command: str, server: str, elapsed: float, done: subprocess.CompletedProcess,
            connections: int | None) -> dict:
    command_s = done.stderr.rpartition("command seconds: ")[2].split()[0] if "command seconds: " in done.stderr else "?"
    return {"command": command, "server": server, "process s": f"{elapsed:.1f}", "command s": command_s,
            "exit code": done.returncode,
            "connections": "-" if connections is None else connections,
            "lines naming the cause": done.stderr.count("could not be reached"),
            "'Retrying' lines": done.stderr.count("Retrying"), "tracebacks": done.stderr.count("Traceback")}


def writers_row(writers: int, failing_commits: int) -> dict:
    from huggingface_hub import constants

    from lead_hub.hub import push_leaderboard

    sys.path.insert(0, str(REPOSITORY / "tests"))
    from test_hub_merge import ranking

    with tempfile.TemporaryDirectory() as home, LoopbackHub() as server:
        server.store.add_user("alice", TOKEN)
        os.environ.update(HF_ENDPOINT=server.endpoint, HF_HOME=home, HF_TOKEN=TOKEN, HF_HUB_OFFLINE="0")
        constants.ENDPOINT = server.endpoint
        constants.HUGGINGFACE_CO_URL_TEMPLATE = server.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        constants.HF_HUB_OFFLINE = False
        constants.HF_HUB_CACHE = f"{home}/hub"
        server.store.create_repo("dataset", "alice/board", author="alice")
        server.store.fail_next(failing_commits, 500, path_contains="/commit/")

        def push(index: int):
            board = ranking(f"dataset-{index:02d}", {"model-a": 1.0, "model-b": 2.0})
            try:
                return push_leaderboard(board.table, board.provenance, "alice/board").attempts
            except Exception as error:  # noqa: BLE001 - counted as a failed push
                return error

        started = time.monotonic()
        with ThreadPoolExecutor(writers) as pool:
            outcomes = list(pool.map(push, range(writers)))
        elapsed = time.monotonic() - started
        table = pd.read_parquet(io.BytesIO(server.store.files("dataset", "alice/board")["data/leaderboard.parquet"]))
    attempts = [outcome for outcome in outcomes if isinstance(outcome, int)]
    return {"writers": writers, "HTTP 500 on commits": failing_commits, "rows expected": 2 * writers,
            "rows published": len(table), "duplicated rows": int(table.duplicated(["dataset", "model_id"]).sum()),
            "failed pushes": len(outcomes) - len(attempts), "412 conflicts": server.store.conflicts,
            "most attempts": max(attempts, default=0), "wall s": f"{elapsed:.1f}"}


def markdown(rows: list[dict]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[column]) for column in header) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, nargs="+", default=[2, 8, 16])
    parser.add_argument("--skip-cli", action="store_true", help="only the writers")
    arguments = parser.parse_args()
    if not arguments.skip_cli:
        print(markdown(cli_rows()), end="\n\n", flush=True)
    rows = [writers_row(count, 0) for count in arguments.writers]
    rows.append(writers_row(max(arguments.writers), 3))
    print(markdown(rows))


if __name__ == "__main__":
    main()
