"""``lead-hub leaderboard show OWNER/NAME|FILE``: read a leaderboard back from the Hub or from a saved file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("table", "markdown", "csv", "json")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("leaderboard", help="read a leaderboard published on the Hub or saved to a file",
                                   description="Read a leaderboard published with `lead-hub push`, or one saved by "
                                               "`lead-hub rank --output`.")
    actions = parser.add_subparsers(dest="leaderboard_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print a published or saved leaderboard",
                              description="Print the leaderboard of the dataset repository OWNER/NAME, or of a file "
                                          "written by `lead-hub rank --output` (.csv, .json, .parquet or .md): a "
                                          "file as the console table `lead-hub rank` prints, a Hub leaderboard as "
                                          "one markdown table per ranking; or the whole table as CSV or JSON.")
    show.add_argument("repo_id", metavar="OWNER/NAME|FILE",
                      help="the dataset repository of the leaderboard, or a saved leaderboard file")
    show.add_argument("--revision", help="a branch, tag, commit or refs/pr/N (default: main)")
    show.add_argument("--top-k", type=int, help="models per ranking (table and markdown; default: all)")
    show.add_argument("--format", choices=FORMATS,
                      help="output format (default: table for a file, markdown for a Hub leaderboard; table is for "
                           "files only)")
    show.set_defaults(handler=show_leaderboard)


def show_leaderboard(arguments: argparse.Namespace) -> int:
    from lead_hub import network
    from lead_hub.hub import HubError, read_leaderboard
    from lead_hub.hub_card import ranking_tables

    if _is_local_file(arguments.repo_id):
        return _show_file(Path(arguments.repo_id), arguments.format or "table", arguments.top_k)
    if arguments.format == "table":
        raise ValueError("--format table shows a saved leaderboard file; a Hub leaderboard holds several rankings: "
                         "use --format markdown, csv or json")
    try:
        with network.outage_reported_by_caller():  # the error below names the cause: no warning line before it
            published = read_leaderboard(arguments.repo_id, revision=arguments.revision)
    except HubError as error:
        print(f"lead-hub leaderboard: error: {error}", file=sys.stderr)
        return 1
    if arguments.format == "csv":
        published.table.to_csv(sys.stdout, index=False)
    elif arguments.format == "json":
        sys.stdout.write(published.table.to_json(orient="records", indent=1) + "\n")
    else:
        print(f"# {published.repo_id} @ {published.commit_oid[:12]}\n")
        print(ranking_tables(published.table, arguments.top_k))
    return 0


def _is_local_file(name: str) -> bool:
    """A path to a saved leaderboard (an existing file, or a name ending in a leaderboard file extension)."""
    from lead_hub.leaderboard import READABLE_SUFFIXES

    return Path(name).is_file() or Path(name).suffix.lower() in READABLE_SUFFIXES


def _show_file(path: Path, output_format: str, top_k: int | None) -> int:
    """Print a saved leaderboard: the console table (warnings on stderr), markdown (the ranked table, then the
    warnings), CSV or JSON."""
    from rich.console import Console

    from lead_hub.cli.rank import print_leaderboard
    from lead_hub.leaderboard import Leaderboard, markdown_table

    if not path.is_file():
        raise FileNotFoundError(f"no leaderboard file {path}: pass a file written by `lead-hub rank --output DIR` "
                                "(DIR/leaderboard.parquet, .json, .csv or .md) or a Hub dataset OWNER/NAME")
    board = Leaderboard.load(path)
    if top_k is not None:
        board = Leaderboard(board.table.head(top_k), board.provenance, board.per_class)
    if output_format == "table":
        print_leaderboard(board, Console(), "leaderboard")
    elif output_format == "csv":
        board.table.to_csv(sys.stdout, index=False)
    elif output_format == "json":
        sys.stdout.write(board.table.to_json(orient="records", indent=1) + "\n")
    else:
        print(f"# {path.name}\n")
        print(markdown_table(board.table))
        for warning in board.warnings:
            print(f"\nwarning: {warning}")
    return 0
