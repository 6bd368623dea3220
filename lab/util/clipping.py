"""Clipping long output honestly: head and tail kept, the true size and the sha256 of the whole said.

The runners on the sandboxes (``lab/checks/runner.py``, ``runner.ps1``) clip a check's output in
the same format before it travels (they cannot import lab, so each writes the marker itself; a
test holds all three to the same text). A report clips only text that no runner clipped, so any
output is clipped once: the reader sees the head, one line such as ``[... clipped by the runner:
10485760 bytes in all, sha256 9f2c...; the first 49152 and the last 16384 bytes are shown ...]``
and the tail.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

HEAD_BYTES = 48 * 1024
TAIL_BYTES = 16 * 1024
MARKER = re.compile(r"\n\[\.\.\. clipped by (?P<by>[a-z ]+): (?P<total>\d+) bytes in all, "
                    r"sha256 (?P<sha256>[0-9a-f]{64}); "
                    r"the first (?P<head>\d+) and the last (?P<tail>\d+) bytes are shown \.\.\.\]\n")


@dataclass(frozen=True)
class Clipped:
    """A clipped text's parts: what was kept of its start and end, and what the whole was."""

    head: str
    tail: str
    total_bytes: int
    sha256: str
    by: str  # "the runner" or "the report"

    def note(self) -> str:
        """``10,485,760 bytes in all, sha256 9f2c...; clipped by the runner, head and tail shown``."""
        return (f"{self.total_bytes:,} bytes in all, sha256 {self.sha256}; clipped by {self.by}: the first "
                f"{len(self.head.encode('utf-8')):,} and the last {len(self.tail.encode('utf-8')):,} bytes are shown")


def clip(text: str, by: str = "the report", head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> str:
    """``text`` unchanged when its UTF-8 form fits in ``head + tail`` bytes or a runner clipped it
    already; otherwise its first ``head`` and last ``tail`` bytes around one marker line naming
    the whole's size in bytes and its sha256."""
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= head + tail or MARKER.search(text):
        return text
    return marked(data[:head], data[len(data) - tail:], len(data), hashlib.sha256(data).hexdigest(), by)


def clip_strings(value: Any) -> Any:
    """``value`` with every string in it (inside lists and mappings too) clipped as ``clip`` does."""
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, dict):
        return {key: clip_strings(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clip_strings(item) for item in value]
    return value


def shorten(text: str, head: int, tail: int, by: str = "lab") -> str:
    """``text`` kept to at most ``head`` + ``tail`` bytes of its output: a text some runner clipped
    keeps that runner's size and sha256 of the whole; any other is clipped as ``clip`` does."""
    parts = clipped_parts(text)
    if parts is None:
        return clip(text, by, head, tail)
    first, last = parts.head.encode("utf-8"), parts.tail.encode("utf-8")
    return marked(first[:head], last[max(0, len(last) - tail):], parts.total_bytes, parts.sha256, parts.by)


def marked(first: bytes, last: bytes, total: int, sha256: str, by: str) -> str:
    """``first`` and ``last`` (cut at character boundaries) around the marker line."""
    head, tail = first.decode("utf-8", errors="ignore"), last.decode("utf-8", errors="ignore")
    return (f"{head}\n[... clipped by {by}: {total} bytes in all, sha256 {sha256}; the first "
            f"{len(head.encode('utf-8'))} and the last {len(tail.encode('utf-8'))} bytes are shown ...]\n{tail}")


def clipped_parts(text: str) -> Clipped | None:
    """The parts of a text that ``clip`` (or a runner) clipped; None for a text that is whole."""
    found = MARKER.search(text)
    if found is None:
        return None
    return Clipped(text[: found.start()], text[found.end():], int(found["total"]), found["sha256"], found["by"])
