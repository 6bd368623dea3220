"""Honest clipping: one clip, head and tail around the true size and sha256 of the whole output;
the runner on the sandbox and lab's own clip write the same marker; commands read as command lines."""

from __future__ import annotations

import hashlib

from lxml import html

from lab.checks import runner
from lab.reports.html import evidence_items
from lab.util.clipping import clip, clipped_parts, shorten

OUTPUT = "line one\n" + "é" * 40_000 + "\n" + "x" * 50_000 + "\nlast line"  # multi-byte characters at the cut


def test_the_runner_and_lab_clip_alike_keeping_the_true_size_and_digest() -> None:
    whole = OUTPUT.encode("utf-8")
    by_runner = runner.clip(whole)
    parts = clipped_parts(by_runner)
    assert parts is not None
    assert (parts.total_bytes, parts.sha256, parts.by) == (len(whole), hashlib.sha256(whole).hexdigest(), "the runner")
    assert parts.head.startswith("line one\né") and parts.tail.endswith("x\nlast line")
    assert len(parts.head.encode()) == 49151 and len(parts.tail.encode()) == 16384  # whole characters only
    assert clip(OUTPUT, "the runner") == by_runner  # the same marker, written twice (runner.py cannot import lab)
    assert clip(by_runner) == by_runner  # what a runner clipped is never clipped again
    assert runner.clip(b"short") == "short" and clip("short") == "short"


def test_a_clip_cut_inside_a_character_keeps_whole_characters() -> None:
    text = "a" + "é" * 40_000  # 80,001 bytes: the head's last byte falls inside a character
    parts = clipped_parts(clip(text))
    assert parts is not None and parts.by == "the report"
    assert len(parts.head.encode()) == 49151 and parts.head.endswith("é")
    assert parts.total_bytes == 80_001


def test_shortened_evidence_keeps_the_runners_size_and_digest() -> None:
    by_runner = runner.clip(OUTPUT.encode("utf-8"))
    short = clipped_parts(shorten(by_runner, 100, 50))
    assert short is not None
    assert (short.total_bytes, short.sha256) == (len(OUTPUT.encode()), hashlib.sha256(OUTPUT.encode()).hexdigest())
    assert (short.head, short.tail) == ("line one\n" + "é" * 45, "x" * 40 + "\nlast line")


def test_the_page_shows_head_note_and_tail_once() -> None:
    big = "B" * 10_000_000
    items = evidence_items({"stdout": runner.clip(big.encode()), "command": ["journal-selftest", "--site", "a b"]})
    command, stdout = items
    assert (command.key, command.text, command.block) == ("command", "journal-selftest --site 'a b'", False)
    assert stdout.clip_note == (f"10,000,000 bytes in all, sha256 {hashlib.sha256(big.encode()).hexdigest()}; clipped "
                                "by the runner: the first 49,152 and the last 16,384 bytes are shown")
    assert (stdout.text, stdout.tail) == ("B" * 49152, "B" * 16384)


def test_a_long_text_no_runner_clipped_is_clipped_once_by_the_report() -> None:
    from tests.unit.reports.test_reports import BIG  # 10 MB that reached the report unclipped

    (item,) = evidence_items({"big": BIG})
    assert item.clip_note.startswith("10,000,000 bytes in all, sha256 "
                                     f"{hashlib.sha256(BIG.encode()).hexdigest()}; clipped by the report")
    fragment = html.fromstring(f"<pre>{item.text}</pre>")
    assert fragment.text_content() == "B" * 49152


def test_runner_ps1_writes_the_same_marker_with_the_same_sizes() -> None:
    """No PowerShell runs here: the marker format of runner.ps1's Limit-LabText, filled in as .NET's
    -f fills it, must be the line lab.util.clipping reads, and its sizes those of runner.py."""
    import re
    from pathlib import Path

    from lab.util.clipping import HEAD_BYTES, MARKER, TAIL_BYTES

    source = (Path(runner.__file__).parent / "runner.ps1").read_text(encoding="utf-8")
    function = source[source.index("function Limit-LabText"):source.index("function ConvertTo-LabLf")]

    def grab(pattern: str) -> str:
        found = re.search(pattern, function)
        assert found is not None, pattern
        return found[1]
    assert grab(r"\$head = (\d+)") == str(HEAD_BYTES) == str(runner.HEAD_BYTES)
    assert grab(r"\$tail = (\d+)") == str(TAIL_BYTES) == str(runner.TAIL_BYTES)
    template = grab(r'\$marker = "(.*?)" -f')
    data = b"a" + "\u00e9".encode() * 40_000  # 80,001 bytes: the head's last byte falls inside a character
    digest = hashlib.sha256(data).hexdigest()
    filled = template.replace("`n", "\n").format(80001, digest, 49151, 16384)
    found = MARKER.fullmatch(filled)
    assert found is not None, filled
    assert (found["by"], found["total"], found["sha256"], found["head"], found["tail"]) == (
        "the runner", "80001", digest, "49151", "16384")
    assert filled in runner.clip(data)  # the very line runner.py writes


def test_junit_keeps_the_runners_clip_and_clips_the_rest_once() -> None:
    import json

    from lab.reports.junit import evidence_text

    big = b"A" * 10_000_000
    shown = json.loads(evidence_text({"stdout": runner.clip(big), "other": "B" * 10_000_000, "exit_code": 1}))
    stdout, other = clipped_parts(shown["stdout"]), clipped_parts(shown["other"])
    assert stdout is not None and other is not None
    assert (stdout.by, stdout.total_bytes, stdout.sha256) == ("the runner", 10_000_000, hashlib.sha256(big).hexdigest())
    assert (stdout.head, stdout.tail) == ("A" * 49152, "A" * 16384)
    assert (other.by, other.total_bytes, other.head, other.tail) == ("the report", 10_000_000, "B" * 49152, "B" * 16384)
    assert shown["exit_code"] == 1
