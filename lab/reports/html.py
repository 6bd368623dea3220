"""The change board's report: one self-contained HTML page (no external resources), autoescaped.

Verdict and its reasons first, then the build's promotion path (every stage, the decision now
for the next one, its signed records and production rollout), then the sandbox x suite matrix,
then every failing check with its evidence, then the digest and the timings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from lab.model import CellRecord, CellState, Result, Status
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
    env.filters["evidence_items"] = evidence_items
    env.filters["seconds"] = lambda value: "-" if value is None else f"{value:.1f} s"
    return env


def cell_summary(cell: CellRecord, data: ReportData) -> dict[str, Any]:
    counts = {s.value: 0 for s in Status} | {"waived": 0}
    for result in cell.results:
        counts[data.shown_status(cell, result)] += 1
    if cell.state is not CellState.DONE:
        worst = "missing"
    elif counts["error"]:
        worst = "error"
    elif counts["fail"]:
        worst = "fail"
    elif counts["waived"]:
        worst = "waived"
    elif counts["flaky"]:
        worst = "flaky"
    else:
        worst = "pass"
    return {"counts": counts, "worst": worst, "seconds": seconds_between(cell.started_at, cell.finished_at)}


@dataclass(frozen=True)
class Problem:
    """One check that failed, errored or was flaky, on every sandbox where it did."""

    suite: str
    check_id: str
    status: Status
    mandatory: bool
    occurrences: tuple[tuple[str, Result], ...]  # (sandbox, result)
    shown: str = ""  # the status as shown: "waived" for a failure a valid waiver covers

    @property
    def label(self) -> str:
        return self.shown or self.status.value


def group_problems(data: ReportData) -> list[Problem]:
    """Failing checks grouped by suite, check and status: the board reads one block per problem."""
    groups: dict[tuple[str, str, Status, str], list[tuple[str, Result]]] = {}
    for cell in data.cells:
        for result in cell.results:
            if result.status in (*BAD, Status.FLAKY):
                key = (cell.suite, result.check_id, result.status, data.shown_status(cell, result))
                groups.setdefault(key, []).append((cell.sandbox, result))
    problems = [Problem(suite, check, status, data.mandatory.get(suite, True), tuple(found), shown)
                for (suite, check, status, shown), found in groups.items()]
    problems.sort(key=lambda p: (not p.mandatory, p.status is Status.FLAKY, p.suite, p.check_id))
    return problems


def evidence_items(evidence: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Evidence as (key, text, is_block): strings as they are (multi-line output stays readable), the rest as
    JSON; short one-line values are shown inline, the others as blocks."""
    items = []
    for key, value in sorted(evidence.items()):
        text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
        items.append((key, printable(text), "\n" in text or len(text) > 100))
    return items


def html_report(data: ReportData) -> str:
    """The HTML page for a campaign."""
    sandboxes = sorted({c.sandbox for c in data.cells})
    suites = sorted({c.suite for c in data.cells}, key=lambda s: (not data.mandatory.get(s, True), s))
    matrix = {(c.sandbox, c.suite): cell_summary(c, data) for c in data.cells}
    problems = group_problems(data)
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
