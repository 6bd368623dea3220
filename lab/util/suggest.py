"""The nearest valid name for a typo, for messages that say what to write instead."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``name`` (difflib's ratio of at least 0.6), or None."""
    found = difflib.get_close_matches(str(name), sorted(set(map(str, choices))), n=1, cutoff=0.6)
    return found[0] if found else None


def nearest_hint(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest choice, or an empty string."""
    match = nearest(name, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""
