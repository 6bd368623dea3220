"""The change board's report: one self-contained HTML page (no external resources), autoescaped.

Where the build stands now first (``lab.reports.standing``: headline, icon and colour, the failing
checks named), then the gate into its next stage clause by clause (once), its promotion path and
signed records, its production rollout with each failed host's failing health checks and their
output, the sandbox x suite matrix, every failing check with its evidence, the campaigns of the
build and the timings. One stylesheet (``templates/common.css``) serves screen and print (A4, a
page header with build, digest and page numbers, all evidence expanded).

The matrix and the failing checks are the page's results section (``templates/results.html.j2``,
``html_results``), rendered from the decoded results; the rest (``templates/report.html.j2``,
``html_around``) from the campaign's summary alone, so a decision re-renders only that part.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from lab.model import CellRecord, CellState, Result, Status
from lab.reports.data import ReportData, ReportSummary, printable, seconds_between, visible
from lab.reports.standing import anchor_for, failed_hosts
from lab.util.clipping import clip, clipped_parts

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
    env.filters["css_string"] = css_string
    env.globals["wave_class"] = wave_class
    return env


def css_string(text: str) -> str:
    """``text`` made safe inside a double-quoted CSS string (the print header): quotes, backslashes,
    angle brackets and control characters escaped as CSS hex escapes."""
    return "".join(ch if ch.isalnum() or ch in " .,:;@_-+/()" else f"\\{ord(ch):x} " for ch in text)


def wave_class(state: str) -> str:
    """The colour class of a wave's state (its words say it too)."""
    if state == "done":
        return "pass"
    if state in ("planned", "cancelled"):
        return "missing"
    return "fail"


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

    @property
    def alike(self) -> list[tuple[tuple[str, ...], Result]]:
        """The occurrences with the same message and evidence told once, with every sandbox that
        gave it, in order (three sandboxes failing alike print one block, not three)."""
        found: dict[str, tuple[list[str], Result]] = {}
        for sandbox, result in self.occurrences:
            key = json.dumps([result.message, result.evidence], sort_keys=True, default=str)
            found.setdefault(key, ([], result))[0].append(sandbox)
        return [(tuple(sandboxes), result) for sandboxes, result in found.values()]

    @property
    def anchor(self) -> str:
        """The id of the problem's block, as the headline's list of failing checks links to it."""
        return anchor_for(self.suite, self.check_id, self.label)


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


@dataclass(frozen=True)
class EvidenceItem:
    """One evidence value as the page shows it: inline when short and on one line, else a block;
    a clipped block in two parts (``text`` its head, ``tail``) around ``clip_note``."""

    key: str
    text: str
    block: bool
    clip_note: str = ""
    tail: str = ""


COMMAND_KEYS = ("command", "argv", "cmdline")


def evidence_text(key: str, value: Any) -> str:
    """A value as text: strings as they are, a command's argument list as one shell-quoted command
    line, the rest as JSON."""
    if isinstance(value, str):
        return value
    if key in COMMAND_KEYS and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return shlex.join(value)
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def evidence_items(evidence: dict[str, Any]) -> list[EvidenceItem]:
    """Evidence in key order: multi-line or long output as blocks (clipped once, head and tail shown
    around its true size and sha256), short values inline."""
    items = []
    for key, value in sorted(evidence.items()):
        text = clip(evidence_text(key, value))
        parts = clipped_parts(text)
        if parts is not None:
            items.append(EvidenceItem(key, visible(parts.head), True, parts.note(), visible(parts.tail)))
        else:
            items.append(EvidenceItem(key, visible(text), "\n" in text or len(text) > 100))
    return items


RESULTS = "<!-- the campaign's results -->"  # where the page's results section goes; escaping keeps it unique


def html_around(summary: ReportSummary) -> tuple[str, str]:
    """The page but its results section: the text before it (headline, gate, promotion path,
    rollout) and after it (campaigns, steps, audit seal)."""
    page = environment().get_template("report.html.j2").render(
        data=summary,
        results=RESULTS,
        steps=[(s, seconds_between(s.started_at, s.finished_at)) for s in summary.steps],
        failed_hosts=failed_hosts(summary.path.rollout) if summary.path.rollout else [],
    )
    before, found, after = page.partition(RESULTS)
    if not found or RESULTS in after:
        raise ValueError("the page template must place its results section exactly once")
    return before, after


def html_results(data: ReportData) -> str:
    """The page's results section: the sandbox x suite matrix and every failing, erroring or flaky
    check with its evidence."""
    sandboxes = sorted({c.sandbox for c in data.cells})
    suites = sorted({c.suite for c in data.cells}, key=lambda s: (not data.mandatory.get(s, True), s))
    return environment().get_template("results.html.j2").render(
        data=data,
        counts=data.counts(),
        sandboxes=sandboxes,
        suites=suites,
        matrix={(c.sandbox, c.suite): cell_summary(c, data) for c in data.cells},
        problems=group_problems(data),
        unfinished=[c for c in data.cells if c.state is not CellState.DONE],
    )


def html_report(data: ReportData) -> str:
    """The HTML page for a campaign."""
    before, after = html_around(data)
    return before + html_results(data) + after
