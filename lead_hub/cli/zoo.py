"""``lead-hub zoo list`` and ``lead-hub zoo show NAME``: the shipped model zoos and their candidates."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from lead_hub.zoo import NOT_A_CLONE_HINT, ZOO_DIR, load_zoo, zoo_names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("zoo", help="list the model zoos or show one",
                                   description="List the shipped model zoos, or show the candidates of one.")
    actions = parser.add_subparsers(dest="zoo_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the shipped zoos with their sizes").set_defaults(handler=list_zoos)
    show = actions.add_parser("show", help="the candidates of one zoo")
    show.add_argument("name", help="a shipped zoo name (see 'lead-hub zoo list') or the path of a zoo YAML file")
    show.set_defaults(handler=show_zoo)


def list_zoos(arguments: argparse.Namespace) -> int:
    if not zoo_names():
        print(f"lead-hub zoo: no shipped zoo found in {ZOO_DIR}: {NOT_A_CLONE_HINT}", file=sys.stderr)
        return 1
    table = Table(title=f"Model zoos in {ZOO_DIR}")
    for column in ("name", "models", "loadable", "description"):
        table.add_column(column, overflow="fold")
    for name in zoo_names():
        zoo = load_zoo(name)
        table.add_row(zoo.name, str(len(zoo.entries)), str(len(zoo.loadable)), zoo.description)
    Console().print(table)
    return 0


def show_zoo(arguments: argparse.Namespace) -> int:
    zoo = load_zoo(arguments.name)
    table = Table(title=f"{zoo.name} ({zoo.path})", caption=zoo.description)
    for column in ("model id", "label", "params", "note"):
        table.add_column(column, overflow="fold")
    for entry in zoo.entries:
        table.add_row(entry.model_id or "(no loadable copy)", entry.label or "",
                      f"{entry.params:,}" if entry.params else "", entry.note or "")
    Console().print(table)
    return 0
