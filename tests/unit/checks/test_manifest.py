"""Compiling suites into manifests, and reading the runner's answer back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.checks.manifest import compile_suite, parse_results
from lab.config.labfile import load_suite
from lab.errors import ConfigError
from lab.model import Check, Status, Suite
from lab.transports.base import CommandResult
from tests.support.labfiles import REPO, write


def suite(*ids: str) -> Suite:
    checks = tuple(Check(i, "file", {"path": f"/x/${{lab_port}}/{i}"}, 5.0, 0) for i in ids)
    return Suite("s", Path("s.yml"), True, ("debian-12",), checks)


def answer(*lines: object, code: int = 0, timed_out: bool = False) -> CommandResult:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return CommandResult(code, text.encode(), b"boom: runner died\n", timed_out, 12.0)


def line(check_id: str, status: str = "pass") -> dict[str, object]:
    return {"id": check_id, "status": status, "message": "m", "evidence": {}, "duration_ms": 1, "attempts": 1}


def test_compile_substitutes_sandbox_variables_as_text() -> None:
    manifest = compile_suite(suite("a"), "/root/x", {"lab_port": 8080})
    assert manifest == {"format": 1, "suite": "s", "root": "/root/x", "checks": [
        {"id": "a", "type": "file", "timeout": 5.0, "retries": 0, "params": {"path": "/x/8080/a"}}]}
    broken = compile_suite(suite("a"), "/", {})
    assert broken["checks"][0]["broken"] == "variable 'lab_port' is not set for this sandbox"


def test_missing_results_are_errors_never_passes() -> None:
    results = parse_results(suite("a", "b", "c"), answer(line("a"), "garbage {", line("c", "fail"), code=1))
    assert [(r.check_id, r.status) for r in results] == [("a", Status.PASS), ("b", Status.ERROR),
                                                         ("c", Status.FAIL)]
    assert results[1].message == "the runner stopped (exit code 1) before this check reported: boom: runner died"
    timed = parse_results(suite("a", "b"), answer(line("a"), timed_out=True))
    assert timed[1].message == "the suite timed out after 12s before this check reported"


def test_parts_of_a_check_are_kept_after_it() -> None:
    results = parse_results(suite("pester", "z"), answer(line("pester", "fail"), line("pester/Adds numbers"),
                                                         line("pester/Handles zero", "fail"), line("z"),
                                                         line("unknown"), {"end": True, "checks": 2}))
    assert [(r.check_id, r.status) for r in results] == [
        ("pester", Status.FAIL), ("pester/Adds numbers", Status.PASS), ("pester/Handles zero", Status.FAIL),
        ("z", Status.PASS)]


def test_windows_suites_validate_against_the_windows_types(tmp_path: Path) -> None:
    selftest = load_suite(REPO / "lab" / "checks" / "selftest-windows.yml")
    assert selftest.platforms == ("windows-server-2022",)
    assert {c.type for c in selftest.checks} >= {"registry", "launch", "eventlog", "pester", "service"}
    windows_only = write(tmp_path / "w.yml", "suite: w\nplatforms: [debian-12]\nchecks:\n"
                                               "  - id: r\n    type: registry\n    key: HKLM:\\\\SOFTWARE\n")
    with pytest.raises(ConfigError, match="unknown check type 'registry' for Linux platforms"):
        load_suite(windows_only)
