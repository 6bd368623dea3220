"""A campaign's reports written in parts, so that a decision re-renders only what it changes.

Every report is the text before its results section, that section, and the text after it
(``lab.reports.formats``). The results section shows each result as the campaign's gate shows it
(a failure a valid waiver covers as ``waived``) and nothing of the promotion path: it is a function
of the campaign's results, the failures a waiver covers, the lab's sandboxes and suites and lab's
own code. ``results_key`` digests all of it but the results themselves, which a cell records once,
with its ``done`` state, and never changes.

Each report written in the lab's reports directory gets a record under ``<state_dir>/report-parts/``:
its key, where its results section lies in the file and that section's sha256. A later write of the
same report with the same key (``lab promote``, ``approve``, ``waive``, ``rollout`` refreshing a
build's reports) renders only the text around the results and copies the section from the file on
disk, checking it against the recorded sha256 as it is copied; a report that has nothing around its
results (JUnit) and whose section is unchanged is not rewritten at all. When the record is missing,
has another key (a waiver that counts now, or one that expired; other code) or the bytes do not
match it, the results are decoded and rendered anew. Reports and records are written atomically
(``lab.util.atomic``), each record after its report: a crash in between leaves a record that no
longer matches, never a report that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import version
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from lab.config.labfile import LabConfig
from lab.reports.data import ReportData, ReportSummary
from lab.reports.formats import ReportFormat
from lab.util.atomic import write_chunks, write_text
from lab.util.canonical import digest_of

RECORDS = "report-parts"  # the records' directory, under the lab's state_dir
FORMAT = 1  # of a record, and of the key's basis
CHUNK = 1 << 20


@cache
def code_digest() -> str:
    """The sha256 of lab's own source, every module and template, and of the template engine's
    versions: a results section rendered by other code is never kept."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"jinja2 {version('jinja2')}, markupsafe {version('markupsafe')}\0".encode())
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".j2", ".css") and p.is_file()):
        content = path.read_bytes()
        digest.update(f"{path.relative_to(root).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def results_key(summary: ReportSummary) -> str:
    """The digest of everything the results sections of ``summary``'s reports are rendered from but
    the results: the campaign, the build, the failures a waiver covers, the sandboxes' platforms,
    the suites (mandatory or not, their files, each check's line and description), the campaign's
    notes, lab's code, and per cell its state, its times and how many results it has."""
    build = summary.build
    return digest_of({
        "format": FORMAT,
        "code": code_digest(),
        "campaign": asdict(summary.campaign),
        "build": [build.product, build.version, build.digest, str(build.artifact), build.registered_at],
        "waived": sorted(summary.verdict.waived),
        "platforms": summary.platforms,
        "mandatory": summary.mandatory,
        "suite_files": summary.suite_files,
        "check_notes": summary.check_notes,
        "notes": list(summary.notes),
        "cells": [[c.sandbox, c.suite, c.state.value, c.started_at, c.finished_at, len(c.check_ids)]
                  for c in summary.outcomes],
    })


@dataclass(frozen=True)
class Record:
    """A report as written: the file ``report`` of ``size`` bytes, whose bytes ``start`` to ``end``
    are its results section, rendered under ``key``, with that section's ``sha256``."""

    report: str
    key: str
    size: int
    start: int
    end: int
    sha256: str

    def moved(self, before: int, after: int) -> Record:
        """This record's section with ``before`` bytes before it and ``after`` after it."""
        end = before + self.end - self.start
        return Record(self.report, self.key, end + after, before, end, self.sha256)


class Mismatch(Exception):
    """The report on disk is not the one its record describes."""


def record_path(config: LabConfig, report: Path) -> Path:
    return config.state_dir / RECORDS / f"{report.name}.json"


def read_record(config: LabConfig, report: Path) -> Record | None:
    """The record of ``report``; None when there is none, it cannot be read, or it is of another file."""
    try:
        raw = json.loads(record_path(config, report).read_text(encoding="utf-8"))
        record = Record(str(raw["report"]), str(raw["key"]), int(raw["size"]), int(raw["start"]), int(raw["end"]),
                        str(raw["sha256"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if raw.get("format") == FORMAT and record.report == str(report) else None


def keep_record(config: LabConfig, record: Record) -> None:
    write_text(record_path(config, Path(record.report)), json.dumps({"format": FORMAT} | asdict(record)) + "\n")


def section(handle: BinaryIO, record: Record) -> Iterator[bytes]:
    """The results section of the open report ``handle`` in chunks, checked as it is read: Mismatch
    after the last chunk unless its bytes are the ones ``record`` names."""
    handle.seek(record.start)
    digest = hashlib.sha256()
    left = record.end - record.start
    while left > 0 and (chunk := handle.read(min(CHUNK, left))):
        digest.update(chunk)
        left -= len(chunk)
        yield chunk
    if left or digest.hexdigest() != record.sha256:
        raise Mismatch(f"{record.report}: its results section is not the one recorded")


def kept_results(report: Path, record: Record, before: bytes, after: bytes) -> Record:
    """Write ``report`` anew with ``before`` and ``after`` around the results section of the file on
    disk, which ``record`` describes (Mismatch, and the file left as it was, when it does not); left
    as it is when the text around its section is unchanged. The record of the file written."""
    with report.open("rb") as old:
        if os.fstat(old.fileno()).st_size != record.size:
            raise Mismatch(f"{report} is not the size its record says")
        was_before = old.read(record.start)
        old.seek(record.end)
        if (was_before, old.read()) == (before, after):
            for _ in section(old, record):  # read through: the bytes must still be the ones recorded
                pass
            return record
        write_chunks(report, chain((before,), section(old, record), (after,)))
    return record.moved(len(before), len(after))


def write_report(config: LabConfig, summary: ReportSummary, fmt: ReportFormat, key: str,
                 whole: Callable[[], ReportData], reuse: bool) -> Path:
    """Write ``summary``'s report in ``fmt`` to the lab's reports directory atomically, then its
    record; ``key``: ``results_key(summary)``. With ``reuse``, the results section of the report
    written before is kept when its record has ``key`` and its bytes match; otherwise the section is
    rendered from ``whole()``, the summary with its results decoded. Returns the report's path."""
    report = config.reports_dir / f"{summary.campaign.id}{fmt.suffix}"
    before, after = (text.encode("utf-8") for text in fmt.around(summary))
    record = read_record(config, report) if reuse else None
    if record is not None and record.key == key:
        try:
            kept: Record | None = kept_results(report, record, before, after)
        except (OSError, Mismatch):
            kept = None  # rendered anew below
        if kept is not None:
            if kept != record:
                keep_record(config, kept)
            return report
    results = fmt.results(whole()).encode("utf-8")
    write_chunks(report, (before, results, after))
    start, end = len(before), len(before) + len(results)
    keep_record(config, Record(str(report), key, end + len(after), start, end, hashlib.sha256(results).hexdigest()))
    return report
