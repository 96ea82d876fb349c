"""Errors and warnings a user can act on.

Every user-facing failure is a :class:`TransferlabError` (a ``ValueError``) whose message names the bad
value, where it was read from and the valid options. The CLI turns it into one line on stderr and exit
code 2; nothing already on disk is touched before the error is raised.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TransferlabError(ValueError):
    """Bad input: the message says what was wrong and what would be valid."""


class DatasetNotInstalledError(TransferlabError):
    """A built-in dataset whose files are not on this machine; the message names the install command."""


class TransferlabWarning(UserWarning):
    """Something was skipped or adjusted; the message says what and how to avoid it."""


def options_hint(value: str, options: Iterable[str], limit: int = 3) -> str:
    """' (did you mean: a, b?) valid: a, b, c' — close matches first, then every option."""
    options = sorted(set(map(str, options)))
    by_lower = {o.lower(): o for o in options}  # match case-insensitively, show the real spelling
    close = [
        by_lower[m] for m in difflib.get_close_matches(str(value).lower(), by_lower, n=limit, cutoff=0.5)
    ]
    hint = f" (did you mean: {', '.join(close)}?)" if close else ""
    return f"{hint}; valid: {', '.join(options)}"
