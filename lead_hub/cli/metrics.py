"""``lead-hub metrics``: list the registered transferability metrics, what they need and how to read them."""

from __future__ import annotations

import argparse
import json

FORMATS = ("text", "markdown", "json")
COLUMNS = ("name", "needs", "orientation", "reference")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metrics", help="list the transferability metrics",
        description="List every registered metric: the inputs it needs (features only, or features and the source "
                    "classifier's logits), what a higher score means, whether it is relative to the model set, and "
                    "its reference.")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.set_defaults(handler=list_metrics)


def list_metrics(arguments: argparse.Namespace) -> int:
    from lead_hub.metrics import describe

    rows = describe()
    if arguments.format == "json":
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return 0
    table = [[_cell(row, column) for column in COLUMNS] for row in rows]
    if arguments.format == "markdown":
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for cells in table:
            print("| " + " | ".join(cells) + " |")
        return 0
    for row in rows:
        aliases = f" (also {', '.join(row['aliases'])})" if row["aliases"] else ""
        print(f"{row['name']}{aliases}: {row['summary']}")
        print(f"  needs: {row['needs']}; {_cell(row, 'orientation')}")
        print(f"  reference: {row['reference']}")
    print("\nEach metric's formula and options: docs/metrics.md of the repository.")
    return 0


def _cell(row: dict, column: str) -> str:
    """A table cell; the orientation cell says when the score is relative to the model set."""
    if column == "orientation" and row["set_relative"] and "model set" not in row["orientation"]:
        return f"{row['orientation']} (relative to the model set)"
    return str(row[column])
