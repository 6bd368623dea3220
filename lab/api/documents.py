"""The JSON documents of ``--json``: what every read use case's result gives as ``to_json()``.

Every document is one JSON object with ``"format": 1``; its field names are part of lab's contract
with CI (the README lists them per command) and change only with a new format number. Times are
ISO 8601 UTC text, digests hex sha256, enums their lower-case values, a missing value null.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

FORMAT = 1


def document(**fields: Any) -> dict[str, Any]:
    """A document of this format with ``fields``."""
    return {"format": FORMAT, **fields}


def iso(epoch: object) -> str | None:
    """An epoch time as ISO 8601 UTC text; None for no time."""
    if not isinstance(epoch, int | float) or isinstance(epoch, bool) or epoch <= 0:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
