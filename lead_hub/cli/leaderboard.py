"""``lead-hub leaderboard show OWNER/NAME``: read a published leaderboard back from the Hub."""

from __future__ import annotations

import argparse
import sys

FORMATS = ("markdown", "csv", "json")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("leaderboard", help="read a leaderboard published on the Hub",
                                   description="Read a leaderboard published with `lead-hub push`.")
    actions = parser.add_subparsers(dest="leaderboard_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print a published leaderboard",
                              description="Print the leaderboard of the dataset repository OWNER/NAME: one table "
                                          "per ranking (markdown), or the whole table as CSV or JSON.")
    show.add_argument("repo_id", metavar="OWNER/NAME", help="the dataset repository of the leaderboard")
    show.add_argument("--revision", help="a branch, tag, commit or refs/pr/N (default: main)")
    show.add_argument("--top-k", type=int, help="models per ranking (markdown only; default: all)")
    show.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default: markdown)")
    show.set_defaults(handler=show_leaderboard)


def show_leaderboard(arguments: argparse.Namespace) -> int:
    from lead_hub.hub import HubError, read_leaderboard
    from lead_hub.hub_card import ranking_tables

    try:
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
