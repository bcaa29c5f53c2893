"""The ``lead-hub`` command line: one sub-command per module of this package.

Each module ``lead_hub/cli/<name>.py`` defines ``add_parser(subparsers)``, which registers its sub-command and
sets ``handler`` (a function taking the parsed arguments and returning an exit code) as a parser default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from lead_hub import __version__


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command module of ``lead_hub.cli`` registered."""
    parser = argparse.ArgumentParser(
        prog="lead-hub",
        description="Rank pretrained vision models for your dataset before fine-tuning them.",
    )
    parser.add_argument("--version", action="version", version=f"lead-hub {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda item: item.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lead-hub`` console script."""
    from lead_hub import network
    from lead_hub.cli._messages import one_line_warnings

    arguments = build_parser().parse_args(argv)
    try:
        # The first Hub failure of the command ends its network use (lead_hub.network); warnings: one line each.
        with network.one_run(), one_line_warnings(arguments.command):
            return int(arguments.handler(arguments) or 0)
    except BrokenPipeError:  # the reader stopped early (`lead-hub metrics | head`): end quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141  # 128 + SIGPIPE, the status of a Unix tool ended by a closed pipe
    except (ValueError, FileNotFoundError, KeyError, ConnectionError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"lead-hub {arguments.command}: error: {message}", file=sys.stderr)
        return 1 if isinstance(error, ConnectionError) or network.is_outage(error) else 2  # 2: a bad argument


if __name__ == "__main__":
    sys.exit(main())
