"""What every field of a signed approval, rejection or waiver must hold to count.

One set of rules for ``lab approve``/``lab waive`` (which refuse to sign a record that breaks
them) and for the gate (which re-checks every record it is given, however it was produced:
signed by hand with ``ssh-keygen``, written by an older lab, or built by a caller of the API).
Each function returns why a value does not do ("" when it does); none raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from lab.errors import ConfigError
from lab.util.clock import parse_instant

MIN_JUSTIFICATION = 3  # letters or digits: "-", "n/a" or "." is not a reason


def justification_problem(reason: object) -> str:
    """Why ``reason`` is not a justification: missing, not text, or without words."""
    if not isinstance(reason, str) or not reason.strip():
        return "it gives no justification (an empty reason)"
    if sum(ch.isalnum() for ch in reason) < MIN_JUSTIFICATION:
        return f"its reason {reason.strip()!r} justifies nothing; a waiver says why the failure is acceptable"
    return ""


def instant_of(value: object) -> datetime | None:
    """``value`` as an ISO 8601 instant with an offset, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except ConfigError:
        return None


def expiry_problem(expires: object, signed_at: object = None) -> str:
    """Why ``expires`` is not a valid expiry: missing, not an instant with an offset, or (when
    ``signed_at`` is given) not after the signing."""
    until = instant_of(expires)
    if until is None:
        return f"its expiry {expires!r} is missing or not an ISO 8601 time with an offset"
    if signed_at is not None:
        since = instant_of(signed_at)
        if since is None:
            return f"its signing time {signed_at!r} is missing or not an ISO 8601 time with an offset"
        if until <= since:
            return f"it expires ({expires}) before it was signed ({signed_at})"
    return ""


def missing_problem(fields: Mapping[str, object]) -> str:
    """Why a record's named fields are incomplete: the first one that is not a non-empty string."""
    for name, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            return f"its {name} is missing or empty"
    return ""
