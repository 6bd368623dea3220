"""JUnit XML for CI, written in one pass; valid against the Jenkins xUnit junit-10.xsd.

One testsuite per sandbox x suite; build, version, digest and campaign as properties, the suite's
file (relative to lab.yml) as the testsuite's ``file``. A fail is a <failure>, an error an
<error>, a skip <skipped>; an unfinished cell is an <error>; the evidence is the text of a
failure or error. Every testcase has a ``time`` and a <system-out> with the check's description
(when the suite gives one) and its message.

Flaky checks (failed, then passed on a retry) are passing testcases whose <system-out> starts with
``FLAKY: passed on attempt N`` and whose <system-err> holds each failed attempt; the testsuite's
``flaky`` property lists them. Surefire's <flakyFailure> is valid against the schema, but
xunit-viewer shows it as an unknown status and junitparser and GitLab ignore it (a plain pass
without a trace): this way every consumer shows a pass (the check did pass, and the gate counts
it so), with the flakiness on the page instead of lost.

The ``junit-gitlab`` flavour adds each testcase's ``file`` (the suite file) and ``line`` (the
check's line in it), which GitLab links failures to; junit-10.xsd has no such attributes on a
testcase, so that flavour is not valid against it, while ``junit`` is.

Text is escaped here, once, and written straight out: no tree is built, parsed again or
pretty-printed (at 100k results that cost most of the time and memory).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from lab.model import CellRecord, CellState, Result, Status
from lab.reports.data import ReportData, printable, visible
from lab.util.clipping import clip_strings


def text(value: str) -> str:
    """``value`` escaped for element content (str.replace: several times faster than translate)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def attribute(value: str) -> str:
    """``value`` escaped for an attribute, newlines and tabs kept as character references."""
    return (text(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
            .replace("\t", "&#9;"))


def attributes(pairs: dict[str, str]) -> str:
    """`` name="value"`` for each pair, values escaped."""
    return "".join(f' {name}="{attribute(value)}"' for name, value in pairs.items())


def evidence_text(evidence: dict[str, object]) -> str:
    """The evidence as JSON, each string in it clipped once (``lab.util.clipping``: what a runner
    clipped keeps its marker with the whole output's size and sha256), control bytes escaped.
    Clipping the JSON as a whole would clip a runner's output again (its marker's newlines are
    escaped there, so it is not recognised) and cut that marker out."""
    return visible(json.dumps(clip_strings(evidence), indent=2, sort_keys=True, ensure_ascii=False))


def seconds(duration_ms: int) -> str:
    return f"{duration_ms / 1000:.3f}"


def flaky_attempts(result: Result) -> list[str]:
    """One line per failed attempt of a flaky result."""
    attempts = result.evidence.get("earlier_attempts", [])
    lines = [f"attempt {n}: {a.get('status', 'fail')}: {a.get('message', '')}"
             for n, a in enumerate(attempts if isinstance(attempts, list) else [], 1) if isinstance(a, dict)]
    return lines or ["an earlier attempt failed"]


def case_body(data: ReportData, cell: CellRecord, result: Result, about: str) -> tuple[str, str]:
    """(the kind of outcome: pass, failure, error, skipped; the testcase's child elements). The
    evidence goes in the failure or error element (and a flaky check's output), not repeated."""
    message = printable(result.message)
    out = f"      <system-out>{text(about + message)}</system-out>\n"
    shown = data.shown_status(cell, result)
    if shown == "waived":  # still a failure, never a pass: marked waived
        return "failure", (f'      <failure{attributes({"type": "waived", "message": f"waived: {message}"})}>'
                           f"{text(evidence_text(result.evidence))}</failure>\n{out}")
    if result.status is Status.FAIL:
        return "failure", (f'      <failure{attributes({"type": "fail", "message": message})}>'
                           f"{text(evidence_text(result.evidence))}</failure>\n{out}")
    if result.status is Status.ERROR:
        return "error", (f'      <error{attributes({"type": "error", "message": message})}>'
                         f"{text(evidence_text(result.evidence))}</error>\n{out}")
    if result.status is Status.SKIP:
        return "skipped", f'      <skipped{attributes({"message": message})}/>\n{out}'
    if result.status is Status.FLAKY:
        failed = printable("\n".join(flaky_attempts(result)))
        head = f"FLAKY: passed on attempt {result.attempts} after {result.attempts - 1} failed attempt(s)\n"
        body = f"{head}{about}{message}\n{evidence_text(result.evidence)}"
        return "pass", (f"      <system-out>{text(body)}</system-out>\n"
                        f"      <system-err>{text(failed)}</system-err>\n")
    return "pass", out


def suite_xml(data: ReportData, cell: CellRecord, located: bool) -> tuple[str, dict[str, int], float]:
    """The <testsuite> of ``cell``, its counts and its time in seconds."""
    name = f"{cell.sandbox}.{cell.suite}"
    suite_file = data.suite_files.get(cell.suite, "")
    notes = data.check_notes.get(cell.suite, {})
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    cases: list[str] = []
    flaky: list[str] = []
    total_ms = 0
    if cell.state is not CellState.DONE:
        counts["tests"] += 1
        counts["errors"] += 1
        message = f"cell {cell.state.value}: not finished, no evidence"
        cases.append(f'    <testcase{attributes({"name": "(cell)", "classname": name, "time": "0.000"})}>\n'
                     f'      <error{attributes({"type": "unfinished", "message": message})}/>\n    </testcase>\n')
    for result in cell.results:
        line, description = notes.get(result.check_id, (None, ""))
        about = f"{printable(description)}\n" if description else ""
        kind, body = case_body(data, cell, result, about)
        counts["tests"] += 1
        if kind in ("failure", "error"):
            counts[kind + "s"] += 1
        elif kind == "skipped":
            counts["skipped"] += 1
        if result.status is Status.FLAKY:
            flaky.append(result.check_id)
        total_ms += result.duration_ms
        case = {"name": printable(result.check_id), "classname": name, "time": seconds(result.duration_ms)}
        if located:
            case |= {"file": suite_file, **({"line": str(line)} if line is not None else {})}
        cases.append(f"    <testcase{attributes(case)}>\n{body}    </testcase>\n")
    properties = {
        "product": data.build.product, "build": data.build.ref, "version": data.build.version,
        "digest": data.build.digest, "campaign": data.campaign.id, "sandbox": cell.sandbox,
        "platform": data.platforms.get(cell.sandbox, ""), "suite": cell.suite,
        "mandatory": str(data.mandatory.get(cell.suite, True)).lower(),
    }
    if flaky:
        properties["flaky"] = printable(", ".join(flaky))
    if data.notes:  # e.g. TLS validation turned off: CI sees it too
        properties["notes"] = printable("; ".join(data.notes))
    head = {"name": name, "tests": str(counts["tests"]), "failures": str(counts["failures"]),
            "errors": str(counts["errors"]), "skipped": str(counts["skipped"]), "time": seconds(total_ms),
            "hostname": cell.sandbox, "id": data.campaign.id, "package": data.build.product}
    if cell.started_at:
        head["timestamp"] = cell.started_at
    if suite_file:
        head["file"] = suite_file
    props = "".join(f"      <property{attributes({'name': k, 'value': v})}/>\n" for k, v in properties.items())
    opening = f"  <testsuite{attributes(head)}>\n    <properties>\n{props}    </properties>\n"
    return "".join([opening, *cases, "  </testsuite>\n"]), counts, total_ms / 1000


def document(data: ReportData, located: bool) -> Iterator[str]:
    """The document's pieces in order (the root's totals need every suite first)."""
    totals = {"tests": 0, "failures": 0, "errors": 0}
    suites: list[str] = []
    total_s = 0.0
    for cell in data.cells:
        xml, counts, took = suite_xml(data, cell, located)
        suites.append(xml)
        total_s += took
        for key in totals:
            totals[key] += counts[key]
    root = {"name": f"lab campaign {data.campaign.id}", "tests": str(totals["tests"]),
            "failures": str(totals["failures"]), "errors": str(totals["errors"]), "time": f"{total_s:.3f}"}
    yield f'<?xml version="1.0" encoding="utf-8"?>\n<testsuites{attributes(root)}>\n'
    yield from suites
    yield "</testsuites>\n"


def junit_xml(data: ReportData) -> str:
    """The JUnit XML document for a campaign, valid against junit-10.xsd."""
    return "".join(document(data, located=False))


def junit_gitlab_xml(data: ReportData) -> str:
    """The JUnit XML document with each testcase's ``file`` and ``line``, as GitLab reads them."""
    return "".join(document(data, located=True))

