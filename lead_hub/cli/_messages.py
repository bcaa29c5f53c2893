"""How a ``lead-hub`` command reports warnings: one line each on stderr, above the progress bars, never twice.

lead_hub logs its warnings (``logging``) and its metrics raise Python warnings (``warnings.warn``); left alone,
Python prints the latter with the source line that raised them and the former wherever the cursor is, possibly
at the end of a progress bar. Inside :func:`one_line_warnings` both become ``lead-hub COMMAND: warning: TEXT``
lines written with ``tqdm.write`` (which clears the bars, prints the line and redraws them).
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm


class _OneLineWarnings(logging.Handler):
    """Writes each distinct warning once; "distinct" ignores numbers, so the same warning about several models
    (which differ only in their sizes) is said once."""

    def __init__(self, command: str):
        super().__init__(logging.WARNING)
        self.prefix = f"lead-hub {command}: warning: "
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.say(record.getMessage())

    def show_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        """A ``warnings.showwarning`` replacement: the message alone, no class name, no source line."""
        self.say(str(message))

    def say(self, text: str) -> None:
        line = " ".join(text.split())
        kind = re.sub(r"\d+(\.\d+)?", "#", line)
        if kind in self.seen:
            return
        self.seen.add(kind)
        tqdm.write(self.prefix + line, file=sys.stderr)


@contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Within the block, lead_hub's logged warnings and every Python warning go to stderr as single lines
    ``lead-hub COMMAND: warning: TEXT``, each distinct one once (see the module docstring)."""
    handler = _OneLineWarnings(command)
    package_logger = logging.getLogger("lead_hub")
    package_logger.addHandler(handler)  # found before Python's last-resort handler, which then stays silent
    shown = warnings.showwarning
    warnings.showwarning = handler.show_warning
    try:
        yield
    finally:
        warnings.showwarning = shown
        package_logger.removeHandler(handler)
