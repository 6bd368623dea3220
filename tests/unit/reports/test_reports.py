"""Reports: JUnit valid against the XSD, HTML self-contained and safe, JSON complete, files atomic."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from lab.config.labfile import LabConfig, load_lab
from lab.decision.evaluate import ApprovalFacts, WaiverFacts, evaluate
from lab.decision.gather import evidence_of, verdict_for
from lab.evidence.store import Store
from lab.model import Result, Status, StepRecord
from lab.reports import render, write_build_pages
from lab.reports.data import ReportData, gather
from lab.util.clock import now, parse_instant
from tests.support.labfiles import JUNIT_XSD, copy_default_lab, needs_junit_xsd

HOSTILE = "<script>alert('x')</script> ]]> \x00 NUL \x1b[31mred\x1b[0m & \"quotes\""
BIG = "B" * 10_000_000


@pytest.fixture
def data(tmp_path: Path) -> ReportData:
    config: LabConfig = load_lab(copy_default_lab(tmp_path / "lab"))
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.register_build("care-planner", "2.0.0", "ab" * 32, config.state_dir / "a.tgz")
    cells = [(s, n) for s in ("ts-sbx-01", "ts-sbx-02") for n in ("care-planner-smoke", "portfolio-compat")]
    campaign = store.create_campaign(build, cells, config.path)
    for sandbox in ("ts-sbx-01", "ts-sbx-02"):
        store.record_step(StepRecord(campaign.id, sandbox, "deploy", True, False, "ok", "ab" * 32, now(), now()))
    store.finish_cell(campaign.id, "ts-sbx-01", "care-planner-smoke", [
        Result("passes", Status.PASS, "fine", {}, 12, 1),
        Result("hostile<id>", Status.FAIL, HOSTILE, {"stdout": HOSTILE, "big": BIG}, 30, 1),
        Result("cannot-judge", Status.ERROR, "timed out after 5s", {}, 5000, 1),
        Result("skipped", Status.SKIP, "not here", {}, 0, 0),
        Result("wobbly", Status.FLAKY, "ok on retry", {"earlier_attempts": [{"status": "fail", "message": HOSTILE}]},
               40, 2),
    ])
    store.finish_cell(campaign.id, "ts-sbx-01", "portfolio-compat", [
        Result("health", Status.PASS, "ok", {}, 3, 1), Result("journal-running", Status.PASS, "up", {}, 4, 1)])
    store.finish_cell(campaign.id, "ts-sbx-02", "care-planner-smoke", [Result("passes", Status.PASS, "ok", {}, 3, 1)])
    store.start_cell(campaign.id, "ts-sbx-02", "portfolio-compat")  # interrupted: never finished
    return gather(config, store, store.campaign(campaign.id))


@needs_junit_xsd
def test_junit_validates_against_the_xsd_and_maps_every_status(data: ReportData) -> None:
    text = render(data, "junit")
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    document = etree.fromstring(text.encode("utf-8"))
    assert schema.validate(document), schema.error_log
    suites = document.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "ts-sbx-01.care-planner-smoke", "ts-sbx-01.portfolio-compat",
        "ts-sbx-02.care-planner-smoke", "ts-sbx-02.portfolio-compat"]
    props = {p.get("name"): p.get("value") for p in suites[0].find("properties")}
    assert props["build"] == "care-planner@2.0.0" and props["digest"] == "ab" * 32
    assert props["campaign"] == data.campaign.id and props["version"] == "2.0.0"
    cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    assert cases["hostile<id>"].find("failure") is not None
    assert cases["cannot-judge"].find("error").get("message") == "timed out after 5s"
    assert cases["skipped"].find("skipped") is not None
    assert cases["wobbly"].find("failure") is None
    assert cases["wobbly"].find("flakyFailure") is None  # xunit-viewer shows it as an unknown status
    assert cases["wobbly"].find("system-out").text.startswith("FLAKY: passed on attempt 2 after 1 failed attempt(s)")
    assert cases["wobbly"].find("system-err").text.startswith("attempt 1: fail: <script>")
    assert props["flaky"] == "wobbly"
    assert all(c.get("time") is not None for s in suites for c in s.findall("testcase"))
    assert cases["cannot-judge"].get("time") == "5.000"
    assert suites[0].get("file") == "test_suites/care-planner-smoke.yml"
    assert "file" not in cases["passes"].attrib  # junit-10.xsd has no file or line on a testcase
    unfinished = suites[3].findall("testcase")
    assert [(c.get("name"), c.find("error").get("type")) for c in unfinished] == [("(cell)", "unfinished")]
    assert (document.get("tests"), document.get("failures"), document.get("errors")) == ("9", "1", "2")


def test_junitparser_reads_every_status_the_description_and_the_flaky_check(data: ReportData) -> None:
    """junitparser (what many CI scripts use): a flaky check is a pass whose output says FLAKY."""
    junitparser = pytest.importorskip("junitparser", reason="pip install -e '.[test]' installs junitparser")
    xml = junitparser.JUnitXml.fromstring(render(data, "junit").encode("utf-8"))
    cases = {(suite.name, case.name): case for suite in xml for case in suite}
    wobbly = cases[("ts-sbx-01.care-planner-smoke", "wobbly")]
    assert (wobbly.is_passed, wobbly.is_skipped, wobbly.result) == (True, False, [])
    assert wobbly.system_out.startswith("FLAKY: passed on attempt 2")
    assert wobbly.system_err.startswith("attempt 1: fail:")
    failed = cases[("ts-sbx-01.care-planner-smoke", "hostile<id>")]
    assert [type(r).__name__ for r in failed.result] == ["Failure"]
    assert [type(r).__name__ for r in cases[("ts-sbx-01.care-planner-smoke", "cannot-judge")].result] == ["Error"]
    assert cases[("ts-sbx-01.care-planner-smoke", "skipped")].is_skipped
    assert {case.time for case in cases.values()} >= {0.012, 5.0}
    running = cases[("ts-sbx-01.portfolio-compat", "journal-running")]
    assert running.system_out == "the journal service is still running\nup"
    totals = [(suite.name, suite.tests, suite.failures, suite.errors, suite.skipped) for suite in xml]
    assert totals[0] == ("ts-sbx-01.care-planner-smoke", 5, 1, 1, 1)


def test_the_gitlab_flavour_gives_each_case_its_suite_file_and_line(data: ReportData) -> None:
    document = etree.fromstring(render(data, "junit-gitlab").encode("utf-8"))
    cases = document.findall(".//testsuite[@name='ts-sbx-01.portfolio-compat']/testcase")
    located = [(c.get("name"), c.get("file"), c.get("line")) for c in cases]
    # a check the suite does not declare (any more) keeps its file but has no line
    assert located == [("health", "test_suites/portfolio-compat.yml", None),
                       ("journal-running", "test_suites/portfolio-compat.yml", "10")]
    assert all(c.get("file") for c in document.iter("testcase") if c.get("name") != "(cell)")


def test_junit_escapes_hostile_output(data: ReportData) -> None:
    text = render(data, "junit")
    assert "\x00" not in text and "\x1b" not in text
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "\\x00 NUL \\x1b[31mred" in text
    assert len(text) < 1_000_000  # the 10 MB evidence was clipped long before the report


def test_html_is_self_contained_and_escapes_everything(data: ReportData) -> None:
    page = render(data, "html")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "\x00" not in page and "\x1b" not in page
    assert "\\x1b[31mred" in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "<link" not in page and "@import" not in page
    assert "BLOCKED from pilot" in page
    assert page.index("BLOCKED from pilot") < page.index("Sandbox \u00d7 suite") < page.index("Failing, erroring")
    assert "ab" * 32 in page
    assert "1 cell(s) did not finish" in page


def test_json_export_has_the_whole_campaign(data: ReportData) -> None:
    text = render(data, "json")  # written member by member: the same text as one dump of the whole
    assert text == json.dumps(data.to_json(), indent=2, sort_keys=True, default=str) + "\n"
    exported = json.loads(text)
    assert exported["build"] == {"product": "care-planner", "version": "2.0.0", "digest": "ab" * 32,
                                 "artifact": "a.tgz"}
    assert exported["verdict"]["allowed"] is False
    assert exported["counts"] == {"pass": 4, "fail": 1, "error": 1, "skip": 1, "flaky": 1, "waived": 0}
    states = {(c["sandbox"], c["suite"]): c["state"] for c in exported["cells"]}
    assert states[("ts-sbx-02", "portfolio-compat")] == "running"
    reasons = [c["detail"] for c in exported["verdict"]["clauses"] if c["outcome"] == "not met"]
    assert "campaign " + data.campaign.id + " has not finished; resume it" in reasons


def test_reports_are_written_atomically(data: ReportData, tmp_path: Path) -> None:
    config = load_lab(tmp_path / "lab" / "lab.yml")
    paths = write_build_pages(config, Store(config.state_dir / "lab.sqlite3"), data)
    assert [p.name for p in paths] == [f"{data.campaign.id}.html", f"{data.campaign.id}.junit.xml",
                                       f"{data.campaign.id}.json"]
    # no temp files left
    assert sorted(p.name for p in config.reports_dir.iterdir()) == sorted([p.name for p in paths] + ["index.html"])
    assert [p.read_text(encoding="utf-8") for p in paths] == [render(data, f) for f in ("html", "junit", "json")]


def test_a_waived_failure_is_shown_as_waived_in_every_report(tmp_path: Path) -> None:
    config: LabConfig = load_lab(copy_default_lab(tmp_path / "lab"))
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.register_build("care-planner", "2.0.0", "ab" * 32, config.state_dir / "a.tgz")
    campaign = store.create_campaign(build, [("ts-sbx-01", "portfolio-compat")], config.path)
    store.record_step(StepRecord(campaign.id, "ts-sbx-01", "deploy", True, False, "ok", "ab" * 32, now(), now()))
    store.finish_cell(campaign.id, "ts-sbx-01", "portfolio-compat", [
        Result("journal-health", Status.FAIL, "503 from the journal", {}, 3, 1),
        Result("journal-records", Status.PASS, "ok", {}, 3, 1)])
    store.finish_campaign(campaign.id)
    campaign = store.campaign(campaign.id)
    # A waiver the production gate accepts (its signature verified), by a change-board member.
    waiver = WaiverFacts(1, "kari.nordmann@example.no", "ts-sbx-01", "portfolio-compat", "journal-health", "ab" * 32,
                         "known issue", "2026-12-31T00:00:00+00:00", True)
    evidence = evidence_of(config, store, build, campaign)
    stage = config.agreement.stage("production")
    assert stage is not None and stage.gate is not None
    verdict = evaluate(stage.gate, stage, replace(evidence, waivers=(waiver,), approvals=tuple(
        ApprovalFacts(i, who, False, "production", "ab" * 32, "x", "2026-12-31T00:00:00+00:00", True)
        for i, who in enumerate(("a", "b")))), parse_instant("2026-12-01T10:00:00Z"))
    assert verdict.waived == ("ts-sbx-01/portfolio-compat/journal-health",)
    data = replace(gather(config, store, campaign), verdict=verdict)
    assert verdict_for(config, store, build, "pilot", campaign).waived == ()  # pilot: no waiver, no waived
    exported = json.loads(render(data, "json"))
    assert exported["counts"] == {"pass": 1, "fail": 0, "error": 0, "skip": 0, "flaky": 0, "waived": 1}
    assert [(r["check_id"], r["status"], r["shown_as"]) for r in exported["cells"][0]["results"]] == [
        ("journal-health", "fail", "waived"), ("journal-records", "pass", "pass")]
    assert exported["verdict"]["waived"] == ["ts-sbx-01/portfolio-compat/journal-health"]
    junit = etree.fromstring(render(data, "junit").encode("utf-8"))
    failure = junit.find(".//testcase[@name='journal-health']/failure")
    assert (failure.get("type"), failure.get("message")) == ("waived", "waived: 503 from the journal")
    page = render(data, "html")
    assert '<td class="waived">waived<br><span class="small">1 pass, 1 waived' in page
    assert '<h3 class="waived">WAIVED · portfolio-compat · <code>journal-health</code>' in page
    assert "PASS · portfolio-compat · <code>journal-health</code>" not in page


def test_a_report_decodes_the_campaigns_results_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config: LabConfig = load_lab(copy_default_lab(tmp_path / "lab"))
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.register_build("care-planner", "2.0.0", "ab" * 32, config.state_dir / "a.tgz")
    campaign = store.create_campaign(build, [("ts-sbx-01", "care-planner-smoke")], config.path)
    store.finish_cell(campaign.id, "ts-sbx-01", "care-planner-smoke", [Result("a", Status.PASS, "ok", {"k": 1}, 1, 1)])
    reads: list[str] = []
    real = Store.cells
    monkeypatch.setattr(Store, "cells", lambda self, campaign_id: reads.append(campaign_id) or real(self, campaign_id))
    data = gather(config, store, store.campaign(campaign.id))
    assert reads == [campaign.id]
    assert [r.evidence for c in data.cells for r in c.results] == [{"k": 1}]
    assert data.path.stages[1].decision is not None  # the next stage was decided, on the same read


def test_the_portfolio_row_of_a_build_just_reported_is_the_one_it_would_decide_itself(tmp_path: Path) -> None:
    from datetime import datetime

    from lab.reports.portfolio import gather_portfolio

    config: LabConfig = load_lab(copy_default_lab(tmp_path / "lab"))
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.register_build("care-planner", "2.0.0", "ab" * 32, config.state_dir / "a.tgz")
    campaign = store.create_campaign(build, [("ts-sbx-01", "care-planner-smoke")], config.path)
    store.finish_cell(campaign.id, "ts-sbx-01", "care-planner-smoke", [
        Result("passes", Status.PASS, "fine", {}, 12, 1), Result("breaks", Status.FAIL, "exit code 1", {}, 9, 1)])
    data = gather(config, store, store.campaign(campaign.id))
    at = datetime.fromisoformat(data.path.evaluated_at)
    (fresh,) = gather_portfolio(config, store, at).products[0].builds
    (reused,) = gather_portfolio(config, store, at, data).products[0].builds
    assert reused.standing is data.standing and reused.path is data.path  # taken from the report, not decided again
    assert (reused.standing, reused.path, reused.latest) == (fresh.standing, fresh.path, fresh.latest)
    assert fresh.standing.headline.startswith("BLOCKED from "), fresh.standing.headline
    write_build_pages(config, store, data)
    assert "BLOCKED from " in (config.reports_dir / "index.html").read_text(encoding="utf-8")
