"""The agreement, evaluated: a pure function from evidence, a gate, a stage and a clock to a decision.

No I/O and no clock reading here: ``now`` is injected. Missing evidence never passes: a missing
cell, an ``error`` result, a sandbox whose deployed digest is not the build's, an unfinished
campaign, an approval or waiver whose signature did not verify or that expired, or a closed
window each block. Each clause says what it looked at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lab.decision.schedule import window_clause
from lab.decision.signoff_clauses import (
    ApprovalFacts,
    approvals_clause,
    previous_stage_clause,
    rejections_clause,
    soak_clause,
)
from lab.errors import ConfigError
from lab.model import CellState, Clause, ClauseOutcome, Gate, Stage, Status, Verdict
from lab.util.canonical import digest_of
from lab.util.clock import iso, parse_instant

__all__ = ["ApprovalFacts", "CellFacts", "Evidence", "SuiteFacts", "WaiverFacts", "evaluate", "evidence_digest",
           "evidence_document"]


@dataclass(frozen=True)
class SuiteFacts:
    """What the gate needs to know about a suite."""

    name: str
    mandatory: bool
    platforms: tuple[str, ...]

    def targets(self, platform: str) -> bool:
        return "any" in self.platforms or platform in self.platforms


@dataclass(frozen=True)
class CellFacts:
    """One cell as evidence: its state and the statuses of its results (with their check ids, if known)."""

    sandbox: str
    suite: str
    state: CellState
    statuses: tuple[Status, ...]
    check_ids: tuple[str, ...] = ()

    def results(self) -> Iterator[tuple[str, Status]]:
        """(check id, status) pairs; the id is "" when the evidence did not name the checks."""
        ids = self.check_ids if len(self.check_ids) == len(self.statuses) else ("",) * len(self.statuses)
        return zip(ids, self.statuses, strict=True)


@dataclass(frozen=True)
class WaiverFacts:
    """A recorded waiver of one failing check, with the outcome of its signature's verification."""

    record_id: int
    principal: str
    sandbox: str
    suite: str
    check_id: str
    build_digest: str
    reason: str
    expires: str  # ISO 8601 with offset
    signature_valid: bool
    problem: str = ""  # why the signature did not verify (empty when it did)

    @property
    def target(self) -> str:
        return f"{self.sandbox}/{self.suite}/{self.check_id}"


@dataclass(frozen=True)
class Evidence:
    """Everything a gate may look at, gathered from the store by the caller.

    ``entered`` maps each stage the build is in to when it entered it (ISO 8601).
    """

    build_ref: str
    digest: str
    campaign_id: str | None
    campaign_finished: bool
    sandboxes: dict[str, str]  # sandbox -> platform, as the campaign used them
    deployed_digests: dict[str, str | None]  # sandbox -> digest found on it after deploy
    suites: dict[str, SuiteFacts]
    cells: tuple[CellFacts, ...]
    entered: dict[str, str] = field(default_factory=dict)
    approvals: tuple[ApprovalFacts, ...] = ()
    waivers: tuple[WaiverFacts, ...] = ()


def evidence_digest(evidence: Evidence) -> str:
    """The sha256 of the canonical JSON of ``evidence_document``: what approvers sign."""
    return digest_of(evidence_document(evidence))


def evidence_document(evidence: Evidence) -> dict[str, Any]:
    """The evidence approvers sign, as plain data: build, campaign, digests, suites, every result
    and the recorded waivers. Approvals, stage entries and the clock are not part of it (an
    approval cannot sign over itself)."""
    return {
        "format": 1,
        "build": evidence.build_ref,
        "digest": evidence.digest,
        "campaign": evidence.campaign_id,
        "finished": evidence.campaign_finished,
        "sandboxes": evidence.sandboxes,
        "deployed": evidence.deployed_digests,
        "suites": {n: {"mandatory": s.mandatory, "platforms": list(s.platforms)} for n, s in evidence.suites.items()},
        "cells": sorted([c.sandbox, c.suite, c.state.value, [[i, s.value] for i, s in c.results()]]
                        for c in evidence.cells),
        "waivers": sorted([w.target, w.principal, w.build_digest, w.expires, w.reason] for w in evidence.waivers),
    }


def evaluate(gate: Gate, stage: Stage, evidence: Evidence, now: datetime) -> Verdict:
    """The decision of ``gate`` into ``stage`` on ``evidence`` at ``now``: allowed only when no
    clause is unmet. ``now`` must carry a time zone."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError(f"the clock {now.isoformat()} has no time zone; policy needs an aware time")
    digest = evidence_digest(evidence)
    waived, waiver_line = waiver_clause(gate, evidence, now)
    window, opens = window_clause(stage, now)
    clauses = [
        previous_stage_clause(stage, evidence.build_ref, evidence.entered),
        campaign_clause(evidence),
        digest_clause(evidence),
        *coverage_clauses(gate, evidence),
        *result_clauses(gate, evidence, waived),
        waiver_line,
        soak_clause(gate, stage, evidence.entered, now),
        approvals_clause(gate, stage, evidence.digest, digest, evidence.approvals, now),
        rejections_clause(gate, stage, evidence.digest, digest, evidence.approvals, now),
        window,
    ]
    allowed = all(c.outcome is not ClauseOutcome.NOT_MET for c in clauses)
    return Verdict(evidence.build_ref, evidence.digest, stage.name, allowed, tuple(clauses), digest, iso(now),
                   iso(opens) if opens is not None else None, tuple(sorted(waived)))


def required_suites(gate: Gate, evidence: Evidence) -> list[SuiteFacts]:
    if gate.suites is None:
        return [s for s in evidence.suites.values() if s.mandatory]
    return [evidence.suites.get(n) or SuiteFacts(n, True, ("any",)) for n in gate.suites]


def campaign_clause(evidence: Evidence) -> Clause:
    if evidence.campaign_id is None:
        return Clause("campaign", ClauseOutcome.NOT_MET, f"no campaign of {evidence.build_ref} exists; run one")
    used = (f"campaign {evidence.campaign_id}",)
    if not evidence.campaign_finished:
        return Clause("campaign", ClauseOutcome.NOT_MET,
                      f"campaign {evidence.campaign_id} has not finished; resume it", used)
    return Clause("campaign", ClauseOutcome.MET, f"campaign {evidence.campaign_id} finished", used)


def digest_clause(evidence: Evidence) -> Clause:
    short = evidence.digest[:12]
    bad = []
    for sandbox in sorted(evidence.sandboxes):
        found = evidence.deployed_digests.get(sandbox)
        if found is None:
            bad.append(f"{sandbox}: no deployed digest recorded")
        elif found != evidence.digest:
            bad.append(f"{sandbox}: deployed {found[:12]}, not {short}")
    used = tuple(f"deploy on {s}: {(d or 'none')[:12]}" for s, d in sorted(evidence.deployed_digests.items()))
    if not evidence.sandboxes:
        return Clause("digest", ClauseOutcome.NOT_MET, "no sandbox reported a deployed digest", used)
    if bad:
        return Clause("digest", ClauseOutcome.NOT_MET, "digest mismatch: " + "; ".join(bad), used)
    return Clause("digest", ClauseOutcome.MET,
                  f"every sandbox ran exactly the build tested (sha256 {short}…)", used)


def coverage_clauses(gate: Gate, evidence: Evidence) -> list[Clause]:
    cells = {(c.sandbox, c.suite): c for c in evidence.cells}
    clauses = []
    for platform in gate.platforms:
        name = f"platform {platform}"
        on_platform = sorted(s for s, p in evidence.sandboxes.items() if p == platform)
        if not on_platform:
            clauses.append(Clause(name, ClauseOutcome.NOT_MET,
                                  f"no sandbox of required platform {platform} was tested"))
            continue
        missing, used = [], []
        for suite in required_suites(gate, evidence):
            if not suite.targets(platform):
                continue
            for sandbox in on_platform:
                cell = cells.get((sandbox, suite.name))
                if cell is None or cell.state is not CellState.DONE:
                    missing.append(f"{suite.name} on {sandbox}")
                else:
                    used.append(f"cell {sandbox}/{suite.name}")
        if missing:
            clauses.append(Clause(name, ClauseOutcome.NOT_MET,
                                  "missing cells (not run or unfinished): " + ", ".join(missing), tuple(used)))
        else:
            clauses.append(Clause(name, ClauseOutcome.MET,
                                  f"every required suite ran on {len(on_platform)} sandbox(es) of {platform}",
                                  tuple(used)))
    return clauses


def failing_targets(gate: Gate, evidence: Evidence) -> set[str]:
    """``sandbox/suite/check`` of every failed result of a required suite in a finished cell."""
    required = {s.name for s in required_suites(gate, evidence)}
    return {f"{c.sandbox}/{c.suite}/{check}" for c in evidence.cells
            if c.state is CellState.DONE and c.suite in required
            for check, status in c.results() if status is Status.FAIL and check}


def waiver_problem(gate: Gate, waiver: WaiverFacts, evidence: Evidence, failing: set[str], now: datetime) -> str:
    """Why ``waiver`` does not count at this gate now ("" when it does)."""
    if not waiver.signature_valid:
        return waiver.problem or "signature does not verify"
    if waiver.build_digest != evidence.digest:
        return f"signed for build sha256 {waiver.build_digest[:12]}…, not this one"
    if waiver.principal not in gate.waiver_approvers:
        return f"{waiver.principal} may not waive at this gate"
    if parse_instant(waiver.expires, "waiver expiry") <= now:
        return f"expired {waiver.expires}"
    if waiver.target not in failing:
        return "no failing mandatory check of that name (an error or a missing cell cannot be waived)"
    return ""


def waiver_clause(gate: Gate, evidence: Evidence, now: datetime) -> tuple[set[str], Clause]:
    """The failures validly waived at this gate now, and the ``waivers`` clause explaining it."""
    if not evidence.waivers:
        return set(), Clause("waivers", ClauseOutcome.NOT_APPLICABLE, "no waiver recorded")
    used = tuple(f"waiver #{w.record_id} by {w.principal}" for w in evidence.waivers)
    if not gate.waivers:
        return set(), Clause("waivers", ClauseOutcome.NOT_APPLICABLE,
                             f"this gate allows no waivers; {len(evidence.waivers)} recorded waiver(s) do not count",
                             used)
    failing = failing_targets(gate, evidence)
    waived: dict[str, str] = {}
    ignored = []
    for waiver in evidence.waivers:
        problem = waiver_problem(gate, waiver, evidence, failing, now)
        if problem:
            ignored.append(f"{waiver.target} by {waiver.principal} ({problem})")
        else:
            waived.setdefault(waiver.target, f"{waiver.target} by {waiver.principal} until {waiver.expires}: "
                                             f"{waiver.reason}")
    parts = [f"{len(waived)} failure(s) waived: " + "; ".join(waived[t] for t in sorted(waived))] if waived else []
    if ignored:
        parts.append("not counted: " + "; ".join(ignored))
    outcome = ClauseOutcome.MET if waived else ClauseOutcome.NOT_APPLICABLE
    return set(waived), Clause("waivers", outcome, "; ".join(parts), used)


def result_clauses(gate: Gate, evidence: Evidence, waived: set[str]) -> list[Clause]:
    required = {s.name for s in required_suites(gate, evidence)}
    counts: Counter[tuple[str, Status]] = Counter()
    failing: dict[Status, list[str]] = {}
    waived_count = 0
    for cell in evidence.cells:
        if cell.state is not CellState.DONE:
            continue
        kind = "required" if cell.suite in required else "advisory"
        for check, status in cell.results():
            if kind == "required" and status is Status.FAIL and f"{cell.sandbox}/{cell.suite}/{check}" in waived:
                waived_count += 1
                continue
            counts[(kind, status)] += 1
            if kind == "required" and status in (Status.FAIL, Status.ERROR):
                failing.setdefault(status, []).append(f"{cell.suite} on {cell.sandbox}")
    used = (f"results of campaign {evidence.campaign_id}",) if evidence.campaign_id else ()
    fails = counts[("required", Status.FAIL)]
    errors = counts[("required", Status.ERROR)]
    flaky = counts[("required", Status.FLAKY)]
    passed = counts[("required", Status.PASS)] + flaky
    also = f"; {waived_count} waived failure(s) do not block" if waived_count else ""
    clauses = [checks_clause(gate, passed, fails, sorted(set(failing.get(Status.FAIL, []))), also, used)]
    if errors:
        where = ", ".join(sorted(set(failing[Status.ERROR])))
        clauses.append(Clause("no errors", ClauseOutcome.NOT_MET,
                              f"{errors} check(s) could not be judged (error): {where}", used))
    else:
        clauses.append(Clause("no errors", ClauseOutcome.MET, "every mandatory check could be judged", used))
    if flaky > gate.max_flaky:
        clauses.append(Clause("flaky", ClauseOutcome.NOT_MET,
                              f"{flaky} flaky check(s), the gate tolerates {gate.max_flaky}", used))
    else:
        clauses.append(Clause("flaky", ClauseOutcome.MET, f"{flaky} flaky check(s), tolerated {gate.max_flaky}", used))
    advisory_bad = counts[("advisory", Status.FAIL)] + counts[("advisory", Status.ERROR)]
    clauses.append(Clause("advisory suites", ClauseOutcome.NOT_APPLICABLE,
                          f"{advisory_bad} advisory check(s) failed or errored; advisory results do not block", used))
    return clauses


def checks_clause(gate: Gate, passed: int, fails: int, where: list[str], also: str, used: tuple[str, ...]) -> Clause:
    """``mandatory checks``: zero failures, or at least ``min_pass_rate`` of the judged checks passed."""
    if gate.min_pass_rate is None:
        if fails:
            return Clause("mandatory checks", ClauseOutcome.NOT_MET,
                          f"{fails} mandatory check(s) failed: {', '.join(where)}{also}", used)
        return Clause("mandatory checks", ClauseOutcome.MET, f"{passed} mandatory check(s), none failed{also}", used)
    judged = passed + fails
    rate = passed / judged if judged else 0.0
    failed = f" ({fails} failed: {', '.join(where)})" if fails else ""
    detail = (f"{rate:.1%} of {judged} mandatory check(s) passed, at least {gate.min_pass_rate:.1%} required"
              f"{failed}{also}")
    outcome = ClauseOutcome.MET if judged and rate >= gate.min_pass_rate else ClauseOutcome.NOT_MET
    return Clause("mandatory checks", outcome, detail, used)
