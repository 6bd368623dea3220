"""Gate clauses are a registry: every module of lab/decision/clauses/ is one registered clause, and
the registry's order is the order verdicts and `lab validate` have always listed them in."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace

from lab.decision import clauses
from lab.decision.clauses import CLAUSES
from lab.decision.context import GATE_LINE, OPEN_LINE, GateClause
from lab.decision.describe import describe_gate, describe_times
from lab.decision.evaluate import evaluate
from tests.support.policy_support import CASES, build_case, load_case

VERDICT_ORDER = ["previous stage", "campaign", "digest", "platform <name>", "mandatory checks", "no errors", "flaky",
                 "advisory suites", "waivers", "soak", "approvals", "rejections", "window"]


def test_every_module_of_the_package_is_a_registered_clause() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules(clauses.__path__))
    assert names == ["advisory", "approvals", "campaign", "coverage", "digest", "errors", "flaky", "mandatory_checks",
                     "previous_stage", "rejections", "soak", "waivers", "window"]
    registered = [importlib.import_module(f"lab.decision.clauses.{name}").CLAUSE for name in names]
    assert all(isinstance(clause, GateClause) for clause in registered)
    assert sorted(registered, key=CLAUSES.index) == list(CLAUSES)  # each once, none left out
    assert len(CLAUSES) == len(names)


def test_the_registry_order_is_the_verdicts_order() -> None:
    assert [c.name for c in CLAUSES] == VERDICT_ORDER
    gate, stage, evidence, now = build_case(load_case(CASES / "all-pass.yml"))
    verdict = evaluate(replace(gate, platforms=("debian-12", "windows-2022")), stage, evidence, now)
    assert [c.name for c in verdict.clauses] == [*VERDICT_ORDER[:3], "platform debian-12", "platform windows-2022",
                                                 *VERDICT_ORDER[4:]]


def test_each_clause_says_its_own_part_of_the_validate_lines() -> None:
    gate, stage, _, _ = build_case(load_case(CASES / "production-all-met.yml"))
    said = {c.name: c.describe(stage, gate) for c in CLAUSES}
    assert said == {
        "previous stage": "from pilot", "campaign": None, "digest": None, "platform <name>": "platforms debian-12",
        "mandatory checks": "mandatory suites, zero failures", "no errors": None, "flaky": "flaky <= 0",
        "advisory suites": None, "waivers": "waivers allowed", "soak": "soak 2d", "rejections": None,
        "approvals": "2 distinct approval(s) from role change-board",
        "window": "weekdays 18:00-06:00 Europe/Helsinki; weekends 00:00-24:00 Europe/Helsinki; "
                  "freeze 2026-12-20..2027-01-06 Europe/Helsinki (year-end freeze)",
    }
    assert [c.name for c in CLAUSES if c.line == OPEN_LINE] == ["window"]
    assert all(c.line == GATE_LINE for c in CLAUSES if c.name != "window")
    assert describe_gate(stage, gate) == ("from pilot; platforms debian-12; mandatory suites, zero failures; "
                                          "flaky <= 0; waivers allowed; soak 2d; 2 distinct approval(s) from role "
                                          "change-board")
    assert describe_times(stage, gate) == said["window"]
