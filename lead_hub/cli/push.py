"""``lead-hub push RESULTS OWNER/NAME``: publish a saved ranking to a leaderboard dataset repository on the Hub."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push", help="publish a saved ranking to a leaderboard dataset repo on the Hub",
        description="Merge a ranking saved by `lead-hub rank` (parquet or JSON: they keep the provenance) into the "
                    "leaderboard dataset repository OWNER/NAME on the Hugging Face Hub, creating it if needed. "
                    "Rows with the same merge key are replaced, all others kept. The token comes from HF_TOKEN or "
                    "`hf auth login`.")
    parser.add_argument("results", type=Path, help="the saved leaderboard: .parquet or .json (CSV lacks provenance)")
    parser.add_argument("repo_id", metavar="OWNER/NAME", help="the dataset repository of the leaderboard")
    parser.add_argument("--create-pr", action="store_true",
                        help="propose the merged leaderboard as a pull request (for repositories you cannot write to)")
    parser.add_argument("--private", action="store_true", help="create the repository private (when it is new)")
    parser.add_argument("--top-k", type=int, default=10,
                        help="models per ranking shown in the dataset card (default: %(default)s; the table keeps "
                             "every row)")
    parser.add_argument("--license", default="apache-2.0",
                        help="licence declared in the dataset card (default: %(default)s)")
    parser.add_argument("--message", help="commit message (default: says which datasets and how many rows)")
    parser.set_defaults(handler=push)


def push(arguments: argparse.Namespace) -> int:
    from lead_hub.hub import HubError, push_leaderboard
    from lead_hub.leaderboard import Leaderboard

    if arguments.results.is_dir():
        saved = [arguments.results / name for name in ("leaderboard.parquet", "leaderboard.json")
                 if (arguments.results / name).is_file()]
        hint = f"e.g. {saved[0]}" if saved else "leaderboard.parquet or .json as written by lead-hub rank --output"
        raise ValueError(f"{arguments.results} is a folder; pass the saved leaderboard file inside it ({hint})")
    board = Leaderboard.load(arguments.results)
    try:
        result = push_leaderboard(board.table, board.provenance, arguments.repo_id, create_pr=arguments.create_pr,
                                  private=arguments.private, commit_message=arguments.message,
                                  license=arguments.license, top_k=arguments.top_k)
    except HubError as error:
        print(f"lead-hub push: error: {error}", file=sys.stderr)
        if error.retryable:
            print(f"retry with: {push_command(arguments)}", file=sys.stderr)
        return 1
    where = f"pull request {result.pull_request_url}" if result.pull_request_url else f"commit {result.commit_url}"
    created = " (new repository)" if result.created_repo else ""
    print(f"Published to {result.repo_id}{created}: {where}")
    print(f"rows: {result.rows_added} added, {result.rows_replaced} replaced, {result.rows_kept} kept")
    return 0


def push_command(arguments: argparse.Namespace) -> str:
    """The ``lead-hub push`` command line that publishes ``arguments.results`` with these options, shell-quoted.

    ``arguments`` needs ``results`` and ``repo_id``; ``create_pr``, ``private``, ``top_k``, ``license`` and
    ``message`` are added when present and not the default.
    """
    words = ["lead-hub", "push", str(arguments.results), arguments.repo_id]
    for flag in ("create_pr", "private"):
        if getattr(arguments, flag, False):
            words.append("--" + flag.replace("_", "-"))
    for option, default in (("top_k", 10), ("license", "apache-2.0"), ("message", None)):
        value = getattr(arguments, option, default)
        if value != default:
            words += ["--" + option.replace("_", "-"), str(value)]
    return shlex.join(words)
