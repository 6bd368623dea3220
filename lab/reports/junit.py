"""JUnit XML for CI, built with junit-xml; valid against the Jenkins xUnit junit-10.xsd.

One testsuite per sandbox x suite; build, version, digest and campaign as properties. A fail is
a <failure>, an error an <error>, a skip <skipped>; a flaky check passes with a <flakyFailure>
for each failed attempt, as Maven Surefire records reruns. An unfinished cell is an <error>.
"""

from __future__ import annotations

import json
import xml.dom.minidom
import xml.etree.ElementTree as ET

from junit_xml import TestCase, TestSuite

from lab.model import CellState, Status
from lab.reports.data import ReportData, printable

# junit-xml writes attributes the schema does not allow; they carry nothing CI needs.
NOT_IN_SCHEMA = {"testsuites": ("disabled",), "testsuite": ("disabled", "assertions"),
                 "testcase": ("status", "class", "file", "line", "log", "url", "timestamp", "assertions")}


def evidence_text(evidence: dict[str, object]) -> str:
    return printable(json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False))


def junit_xml(data: ReportData) -> str:
    """The JUnit XML document for a campaign."""
    suites: list[TestSuite] = []
    flaky: dict[tuple[str, str], list[dict[str, str]]] = {}
    for cell in data.cells:
        suite_name = f"{cell.sandbox}.{cell.suite}"
        properties = {
            "product": data.build.product, "build": data.build.ref, "version": data.build.version,
            "digest": data.build.digest, "campaign": data.campaign.id, "sandbox": cell.sandbox,
            "platform": data.platforms.get(cell.sandbox, ""), "suite": cell.suite,
            "mandatory": str(data.mandatory.get(cell.suite, True)).lower(),
        }
        if data.notes:  # e.g. TLS validation turned off: CI sees it too
            properties["notes"] = printable("; ".join(data.notes))
        cases = []
        if cell.state is not CellState.DONE:
            case = TestCase("(cell)", classname=suite_name)
            case.add_error_info(message=f"cell {cell.state.value}: not finished, no evidence", error_type="unfinished")
            cases.append(case)
        for result in cell.results:
            case = TestCase(printable(result.check_id), classname=suite_name, elapsed_sec=result.duration_ms / 1000)
            message = printable(result.message)
            output = evidence_text(result.evidence)
            if data.shown_status(cell, result) == "waived":  # still a failure, never a pass: marked waived
                case.add_failure_info(message=f"waived: {message}", output=output, failure_type="waived")
            elif result.status is Status.FAIL:
                case.add_failure_info(message=message, output=output, failure_type="fail")
            elif result.status is Status.ERROR:
                case.add_error_info(message=message, output=output, error_type="error")
            elif result.status is Status.SKIP:
                case.add_skipped_info(message=message)
            elif result.status is Status.FLAKY:
                attempts = result.evidence.get("earlier_attempts", [])
                flaky[(suite_name, case.name)] = [
                    {"message": printable(str(a.get("message", ""))), "status": str(a.get("status", "fail"))}
                    for a in (attempts if isinstance(attempts, list) else [])
                ] or [{"message": "failed before passing", "status": "fail"}]
                case.stdout = printable(f"flaky: passed on attempt {result.attempts}\n{output}")
            cases.append(case)
        suites.append(TestSuite(suite_name, cases, hostname=cell.sandbox, id=data.campaign.id,
                                package=data.build.product, timestamp=cell.started_at, properties=properties))
    root = ET.Element("testsuites", {"name": f"lab campaign {data.campaign.id}"})
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for suite in suites:
        element = suite.build_xml_doc()
        for key in totals:
            totals[key] += int(element.get(key, "0"))
        element.set("time", f"{sum(c.elapsed_sec or 0 for c in suite.test_cases):.3f}")
        for case_element in element.iter("testcase"):
            for attempt in flaky.get((element.get("name", ""), case_element.get("name", "")), []):
                kind = "flakyError" if attempt["status"] == "error" else "flakyFailure"
                rerun = ET.Element(kind, {"type": attempt["status"], "message": attempt["message"]})
                case_element.insert(0, rerun)
        root.append(element)
    for key, value in totals.items():
        root.set(key, str(value))
    for element in root.iter():
        for attribute in NOT_IN_SCHEMA.get(element.tag, ()):
            element.attrib.pop(attribute, None)
    text = ET.tostring(root, encoding="unicode")
    # Pretty-printing our own freshly serialized document, not untrusted input.
    pretty = xml.dom.minidom.parseString(text.encode("utf-8"))  # noqa: S318
    return pretty.toprettyxml(indent="  ", encoding="utf-8").decode()
