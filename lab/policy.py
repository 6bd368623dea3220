"""The agreement, evaluated: a pure function from stored evidence and a gate to a verdict.

No I/O here. Missing evidence never passes: a missing cell, an ``error`` result, a sandbox
whose deployed digest is not the build's, or an unfinished campaign each block.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from lab.model import CellState, Clause, ClauseOutcome, Gate, Status, Verdict


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
    """One cell as evidence: its state and the statuses of its results."""

    sandbox: str
    suite: str
    state: CellState
    statuses: tuple[Status, ...]


@dataclass(frozen=True)
class Evidence:
    """Everything a gate may look at, gathered from the store by the caller."""

    build_ref: str
    digest: str
    campaign_id: str | None
    campaign_finished: bool
    sandboxes: dict[str, str]  # sandbox -> platform, as the campaign used them
    deployed_digests: dict[str, str | None]  # sandbox -> digest found on it after deploy
    suites: dict[str, SuiteFacts]
    cells: tuple[CellFacts, ...]


def required_suites(gate: Gate, evidence: Evidence) -> list[SuiteFacts]:
    if gate.suites is None:
        return [s for s in evidence.suites.values() if s.mandatory]
    return [evidence.suites.get(n) or SuiteFacts(n, True, ("any",)) for n in gate.suites]


def evaluate(gate: Gate, stage: str, evidence: Evidence) -> Verdict:
    """The verdict of ``gate`` on ``evidence``: allowed only when every clause is met."""
    clauses = [
        campaign_clause(evidence),
        digest_clause(evidence),
        *coverage_clauses(gate, evidence),
        *result_clauses(gate, evidence),
    ]
    allowed = all(c.outcome is not ClauseOutcome.NOT_MET for c in clauses)
    return Verdict(evidence.build_ref, evidence.digest, stage, allowed, tuple(clauses))


def campaign_clause(evidence: Evidence) -> Clause:
    if evidence.campaign_id is None:
        return Clause("campaign", ClauseOutcome.NOT_MET, f"no campaign of {evidence.build_ref} exists; run one")
    if not evidence.campaign_finished:
        return Clause("campaign", ClauseOutcome.NOT_MET,
                      f"campaign {evidence.campaign_id} has not finished; resume it")
    return Clause("campaign", ClauseOutcome.MET, f"campaign {evidence.campaign_id} finished")


def digest_clause(evidence: Evidence) -> Clause:
    short = evidence.digest[:12]
    bad = []
    for sandbox in sorted(evidence.sandboxes):
        found = evidence.deployed_digests.get(sandbox)
        if found is None:
            bad.append(f"{sandbox}: no deployed digest recorded")
        elif found != evidence.digest:
            bad.append(f"{sandbox}: deployed {found[:12]}, not {short}")
    if not evidence.sandboxes:
        return Clause("digest", ClauseOutcome.NOT_MET, "no sandbox reported a deployed digest")
    if bad:
        return Clause("digest", ClauseOutcome.NOT_MET, "digest mismatch: " + "; ".join(bad))
    return Clause("digest", ClauseOutcome.MET,
                  f"every sandbox ran exactly the build tested (sha256 {short}…)")


def coverage_clauses(gate: Gate, evidence: Evidence) -> list[Clause]:
    cells = {(c.sandbox, c.suite): c for c in evidence.cells}
    clauses = []
    for platform in gate.platforms:
        on_platform = sorted(s for s, p in evidence.sandboxes.items() if p == platform)
        if not on_platform:
            clauses.append(Clause(f"platform {platform}", ClauseOutcome.NOT_MET,
                                  f"no sandbox of required platform {platform} was tested"))
            continue
        missing = []
        for suite in required_suites(gate, evidence):
            if not suite.targets(platform):
                continue
            for sandbox in on_platform:
                cell = cells.get((sandbox, suite.name))
                if cell is None or cell.state is not CellState.DONE:
                    missing.append(f"{suite.name} on {sandbox}")
        if missing:
            clauses.append(Clause(f"platform {platform}", ClauseOutcome.NOT_MET,
                                  "missing cells (not run or unfinished): " + ", ".join(missing)))
        else:
            clauses.append(Clause(f"platform {platform}", ClauseOutcome.MET,
                                  f"every required suite ran on {len(on_platform)} sandbox(es) of {platform}"))
    return clauses


def result_clauses(gate: Gate, evidence: Evidence) -> list[Clause]:
    required = {s.name for s in required_suites(gate, evidence)}
    counts: Counter[tuple[str, Status]] = Counter()
    failing: dict[Status, list[str]] = {}
    for cell in evidence.cells:
        if cell.state is not CellState.DONE:
            continue
        kind = "required" if cell.suite in required else "advisory"
        for status in cell.statuses:
            counts[(kind, status)] += 1
            if kind == "required" and status in (Status.FAIL, Status.ERROR):
                failing.setdefault(status, []).append(f"{cell.suite} on {cell.sandbox}")
    clauses = []
    fails = counts[("required", Status.FAIL)]
    errors = counts[("required", Status.ERROR)]
    flaky = counts[("required", Status.FLAKY)]
    if fails:
        where = ", ".join(sorted(set(failing[Status.FAIL])))
        clauses.append(Clause("mandatory checks", ClauseOutcome.NOT_MET, f"{fails} mandatory check(s) failed: {where}"))
    else:
        passed = counts[("required", Status.PASS)] + flaky
        clauses.append(Clause("mandatory checks", ClauseOutcome.MET, f"{passed} mandatory check(s), none failed"))
    if errors:
        where = ", ".join(sorted(set(failing[Status.ERROR])))
        clauses.append(Clause("no errors", ClauseOutcome.NOT_MET,
                              f"{errors} check(s) could not be judged (error): {where}"))
    else:
        clauses.append(Clause("no errors", ClauseOutcome.MET, "every mandatory check could be judged"))
    if flaky > gate.max_flaky:
        clauses.append(Clause("flaky", ClauseOutcome.NOT_MET,
                              f"{flaky} flaky check(s), the gate tolerates {gate.max_flaky}"))
    else:
        clauses.append(Clause("flaky", ClauseOutcome.MET, f"{flaky} flaky check(s), tolerated {gate.max_flaky}"))
    advisory_bad = counts[("advisory", Status.FAIL)] + counts[("advisory", Status.ERROR)]
    clauses.append(Clause("advisory suites", ClauseOutcome.NOT_APPLICABLE,
                          f"{advisory_bad} advisory check(s) failed or errored; advisory results do not block"))
    return clauses
