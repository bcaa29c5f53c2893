"""Bounded error text: a message lists a few of the items it is about, never all of them.

A hostile or just large input (a ClassLabel of 100,000 names, a thousand broken images) must not turn one error
line into megabytes; :func:`listed` keeps the first items and counts the rest.
"""

from __future__ import annotations

from collections.abc import Iterable

LISTED_ITEMS = 10
"""How many items a message names before it says "and N more"."""


def listed(items: Iterable, *, limit: int = LISTED_ITEMS, separator: str = ", ") -> str:
    """The first ``limit`` of ``items`` as text joined by ``separator``, then ``and N more`` for the rest.

    Parameters
    ----------
    items : iterable
        What the message is about; each is shown with ``str``.
    limit : int
        How many are shown.
    separator : str
        Between two shown items.

    Returns
    -------
    str
        One line (as long as each item's text is).

    Examples
    --------
    >>> listed(range(12), limit=3)
    '0, 1, 2 and 9 more'
    >>> listed(["a", "b"])
    'a, b'
    """
    items = list(items)
    shown = separator.join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit:,} more" if len(items) > limit else "")
