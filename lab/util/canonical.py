"""Canonical JSON and sha256: the one way the lab turns data into bytes it hashes or signs.

Two equal values always give the same bytes (sorted keys, no spaces, UTF-8), so a digest or a
signature over them can be checked again later, offline, by anyone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text: sorted keys, no insignificant whitespace, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_bytes(value: Any) -> bytes:
    """``canonical_json(value)`` encoded as UTF-8: the bytes that are hashed and signed."""
    return canonical_json(value).encode("utf-8")


def sha256_hex(data: bytes | str) -> str:
    """The hex sha256 of ``data`` (text is hashed as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def digest_of(value: Any) -> str:
    """The hex sha256 of ``value``'s canonical JSON."""
    return sha256_hex(canonical_bytes(value))
