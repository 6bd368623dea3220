"""The change board's report: one self-contained HTML page (no external resources), autoescaped.

Verdict and its reasons first, then the sandbox x suite matrix, then every failing check with
its evidence, then the digest and the timings.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from lab.model import CellRecord, CellState, Status
from lab.reports.data import ReportData, printable, seconds_between

BAD = (Status.FAIL, Status.ERROR)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("lab.reports", "templates"),
        autoescape=True,  # every value is escaped; nothing from a sandbox is ever markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["printable"] = printable
    env.filters["pretty"] = lambda value: printable(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))
    env.filters["seconds"] = lambda value: "-" if value is None else f"{value:.1f} s"
    return env


def cell_summary(cell: CellRecord) -> dict[str, Any]:
    counts = {s.value: 0 for s in Status}
    for result in cell.results:
        counts[result.status.value] += 1
    if cell.state is not CellState.DONE:
        worst = "missing"
    elif counts["error"]:
        worst = "error"
    elif counts["fail"]:
        worst = "fail"
    elif counts["flaky"]:
        worst = "flaky"
    else:
        worst = "pass"
    return {"counts": counts, "worst": worst, "seconds": seconds_between(cell.started_at, cell.finished_at)}


def html_report(data: ReportData) -> str:
    """The HTML page for a campaign."""
    sandboxes = sorted({c.sandbox for c in data.cells})
    suites = sorted({c.suite for c in data.cells}, key=lambda s: (not data.mandatory.get(s, True), s))
    matrix = {(c.sandbox, c.suite): cell_summary(c) for c in data.cells}
    problems = [
        (cell, result) for cell in data.cells for result in cell.results if result.status in (*BAD, Status.FLAKY)
    ]
    problems.sort(key=lambda p: (not data.mandatory.get(p[0].suite, True), p[0].suite, p[0].sandbox))
    template = environment().get_template("report.html.j2")
    return template.render(
        data=data,
        counts=data.counts(),
        sandboxes=sandboxes,
        suites=suites,
        matrix=matrix,
        problems=problems,
        steps=[(s, seconds_between(s.started_at, s.finished_at)) for s in data.steps],
        unfinished=[c for c in data.cells if c.state is not CellState.DONE],
    )
