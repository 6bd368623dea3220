"""Build policy inputs (gate, stage, evidence, clock) from the plain data of tests/policy_cases/."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from lab.config.agreement import StageParser, stringify_dates
from lab.decision.evaluate import ApprovalFacts, CellFacts, Evidence, SuiteFacts, WaiverFacts, evidence_digest
from lab.model import CellState, Gate, Stage, Status
from lab.util.clock import parse_instant

CASES = Path(__file__).resolve().parents[1] / "policy_cases"
BASE: dict[str, Any] = yaml.safe_load((CASES / "_base.yml").read_text())


def statuses(raw: list[str]) -> tuple[tuple[str, ...], tuple[Status, ...]]:
    """``[pass, "health:fail"]`` -> check ids (``check-1`` unless named) and statuses."""
    ids, found = [], []
    for index, item in enumerate(raw):
        name, _, status = item.rpartition(":")
        ids.append(name or f"check-{index + 1}")
        found.append(Status(status))
    return tuple(ids), tuple(found)


def text(value: Any) -> str:
    """YAML gives dates and times as objects; the policy takes ISO text."""
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def build_stage(case: dict[str, Any], path: Path) -> Stage:
    """The stage of a case, parsed by the same code as agreement.yml."""
    body = dict(BASE["stage"], **case.get("stage", {}))
    stringify_dates(body)
    body["gate"] = case.get("gate", BASE["gate"])
    roles = {name: tuple(members) for name, members in case.get("roles", BASE["roles"]).items()}
    known = tuple(dict.fromkeys(p for members in roles.values() for p in members))
    parser = StageParser(path, body, roles, BASE["timezone"], known, None)
    previous = body.pop("previous", None)
    return parser.stage(body, previous, [])


def build_cells(case: dict[str, Any]) -> tuple[CellFacts, ...]:
    raw = BASE["evidence"]
    cells = {(s, n): (state, st) for s, n, state, st in raw["cells"]}
    if "cells" in case and case["cells"] is None:
        cells = {}
    for sandbox, suite, state, st in [*(case.get("cells") or []), *case.get("extra_cells", [])]:
        cells[(sandbox, suite)] = (state, st)
    for sandbox, suite in case.get("remove_cells", []):
        del cells[(sandbox, suite)]
    facts = []
    for (sandbox, suite), (state, raw_statuses) in sorted(cells.items()):
        ids, found = statuses(raw_statuses)
        facts.append(CellFacts(sandbox, suite, CellState(state), found, ids))
    return tuple(facts)


def build_case(case: dict[str, Any], path: Path = CASES / "_base.yml") -> tuple[Gate, Stage, Evidence, datetime]:
    """Gate, stage, evidence and clock of a case (``_base.yml`` with the case's overrides)."""
    raw = BASE["evidence"]
    stage = build_stage(case, path)
    assert stage.gate is not None
    campaign = case.get("campaign", raw["campaign"])
    suites = case.get("suites", raw["suites"])
    now = parse_instant(text(case.get("now", BASE["now"])))
    waivers = tuple(
        WaiverFacts(w.get("id", i + 1), w["by"], *w["target"].split("/", 2), w.get("digest", raw["digest"]),
                    w.get("reason", "accepted risk"), text(w.get("expires", "2026-12-31T00:00:00+00:00")),
                    w.get("valid", True), w.get("problem", ""))
        for i, w in enumerate(case.get("waivers", [])))
    evidence = Evidence(
        build_ref=raw["build"],
        digest=raw["digest"],
        campaign_id=campaign["id"] if campaign else None,
        campaign_finished=bool(campaign and campaign["finished"]),
        sandboxes=case.get("sandboxes", raw["sandboxes"]),
        deployed_digests=case.get("deployed", raw["deployed"]),
        suites={name: SuiteFacts(name, body["mandatory"], tuple(body["platforms"])) for name, body in suites.items()},
        cells=build_cells(case),
        entered={k: text(v) for k, v in case.get("entered", raw["entered"]).items()},
        waivers=waivers,
    )
    current = evidence_digest(evidence)
    approvals = tuple(
        ApprovalFacts(a.get("id", i + 1), a["by"], a.get("reject", False), a.get("stage", stage.name),
                      a.get("digest", raw["digest"]),
                      current if a.get("evidence", "current") == "current" else a["evidence"],
                      text(a.get("expires", "2026-12-08T00:00:00+00:00")), a.get("valid", True), a.get("problem", ""))
        for i, a in enumerate(case.get("approvals", [])))
    return stage.gate, stage, replace(evidence, approvals=approvals), now


def load_case(path: Path) -> dict[str, Any]:
    """A case file, layered over the base it names (``base: _production.yml``), if any."""
    case: dict[str, Any] = yaml.safe_load(path.read_text())
    if "base" in case:
        layered: dict[str, Any] = yaml.safe_load((CASES / case["base"]).read_text())
        layered.update(case)
        case = layered
    return copy.deepcopy(case)
