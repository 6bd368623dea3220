"""The decision as data: each file in tests/policy_cases/ is evidence in, clause lines out."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cli.render import MARK
from lab.decision.evaluate import evaluate
from lab.model import ClauseOutcome
from tests.support.policy_support import CASES, build_case, load_case

CASE_FILES = sorted(p for p in CASES.glob("*.yml") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_policy_case(path: Path) -> None:
    case = load_case(path)
    gate, stage, evidence, now = build_case(case, path)
    verdict = evaluate(gate, stage, evidence, now)
    expected = case["expected"]
    assert verdict.allowed is expected["allowed"], verdict.clauses
    outcomes = {c.name: c.outcome for c in verdict.clauses}
    for name, outcome in expected["clauses"].items():
        assert outcomes.get(name) is ClauseOutcome(outcome), (name, verdict.clauses)
    if "reasons" in expected:
        assert list(verdict.reasons) == expected["reasons"]
    lines = [f"[{MARK[c.outcome]}] {c.name}: {c.detail}" for c in verdict.clauses]
    for line in expected.get("lines", []):
        assert line in lines, (line, lines)
    if "next_open" in expected:
        assert verdict.next_open == expected["next_open"]
    assert list(verdict.waived) == expected.get("waived", [])
    assert verdict.stage == stage.name and verdict.digest == "aaaa1111"
    assert verdict.evaluated_at == now.isoformat(timespec="seconds").replace("Z", "+00:00")
    assert len(verdict.evidence_digest) == 64


def test_every_decision_has_one_line_per_clause_kind() -> None:
    gate, stage, evidence, now = build_case(load_case(CASES / "all-pass.yml"))
    names = [c.name for c in evaluate(gate, stage, evidence, now).clauses]
    assert names == ["previous stage", "campaign", "digest", "platform debian-12", "mandatory checks", "no errors",
                     "flaky", "advisory suites", "waivers", "soak", "approvals", "rejections", "window"]


def test_there_are_enough_cases_to_mean_something() -> None:
    assert len(CASE_FILES) >= 35
