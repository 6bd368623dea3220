"""The verdict as data: each file in tests/policy_cases/ is evidence in, decision out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.model import CellState, ClauseOutcome, Gate, Status
from lab.policy import CellFacts, Evidence, SuiteFacts, evaluate

CASES = Path(__file__).resolve().parent.parent / "policy_cases"
BASE = yaml.safe_load((CASES / "_base.yml").read_text())


def build_case(case: dict[str, Any]) -> tuple[Gate, Evidence]:
    raw = dict(BASE["evidence"])
    gate_raw = case.get("gate", BASE["gate"])
    suites_list = gate_raw.get("suites", "mandatory")
    gate = Gate(tuple(gate_raw["platforms"]), None if suites_list == "mandatory" else tuple(suites_list),
                gate_raw.get("max_flaky", 0))
    cells = {(s, n): (state, statuses) for s, n, state, statuses in raw["cells"]}
    if "cells" in case and case["cells"] is None:
        cells = {}
    for sandbox, suite, state, statuses in case.get("cells") or []:
        cells[(sandbox, suite)] = (state, statuses)
    for sandbox, suite, state, statuses in case.get("extra_cells", []):
        cells[(sandbox, suite)] = (state, statuses)
    for sandbox, suite in case.get("remove_cells", []):
        del cells[(sandbox, suite)]
    campaign = case.get("campaign", raw["campaign"]) if "campaign" in case else raw["campaign"]
    suites = case.get("suites", raw["suites"])
    evidence = Evidence(
        build_ref=raw["build"],
        digest=raw["digest"],
        campaign_id=campaign["id"] if campaign else None,
        campaign_finished=bool(campaign and campaign["finished"]),
        sandboxes=case.get("sandboxes", raw["sandboxes"]),
        deployed_digests=case.get("deployed", raw["deployed"]),
        suites={name: SuiteFacts(name, body["mandatory"], tuple(body["platforms"])) for name, body in suites.items()},
        cells=tuple(CellFacts(s, n, CellState(state), tuple(Status(x) for x in statuses))
                    for (s, n), (state, statuses) in sorted(cells.items())),
    )
    return gate, evidence


@pytest.mark.parametrize("path", sorted(p for p in CASES.glob("*.yml") if not p.name.startswith("_")),
                         ids=lambda p: p.stem)
def test_policy_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    gate, evidence = build_case(case)
    verdict = evaluate(gate, "pilot", evidence)
    expected = case["expected"]
    assert verdict.allowed is expected["allowed"], verdict.clauses
    outcomes = {c.name: c.outcome for c in verdict.clauses}
    for name, outcome in expected["clauses"].items():
        assert outcomes.get(name) is ClauseOutcome(outcome), (name, verdict.clauses)
    if "reasons" in expected:
        assert list(verdict.reasons) == expected["reasons"]
    assert verdict.stage == "pilot" and verdict.digest == "aaaa1111"


def test_there_are_enough_cases_to_mean_something() -> None:
    assert len([p for p in CASES.glob("*.yml") if not p.name.startswith("_")]) >= 12
