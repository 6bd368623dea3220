"""``waivers``: which failing required checks a signed waiver keeps from blocking.

A waiver counts only when the gate allows waivers (agreement.yml ``gate.waivers``), its signature
verified, every field it promises is there (the waived check, a justification with words in it,
a valid expiry: ``lab.signoff.fields``, re-checked here however the record was made), it names
this build's digest, its signer may waive here (the gate's approvers, else the
agreement's), it has not expired, and it names a check that failed in a finished cell of a
required suite (an ``error`` or a missing cell cannot be waived). ``prepare`` hands the waived
set to the result clauses judged after it. Sentence: ``waivers allowed`` or ``no waivers``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from lab.decision.context import GateClause, GateContext
from lab.decision.facts import WaiverFacts
from lab.model import CellState, Clause, ClauseOutcome, Gate, Stage, Status
from lab.signoff.fields import expiry_problem, justification_problem, missing_problem
from lab.util.clock import parse_instant


def failing_targets(context: GateContext) -> set[str]:
    """``sandbox/suite/check`` of every failed result of a required suite in a finished cell."""
    return {f"{c.sandbox}/{c.suite}/{check}" for c in context.evidence.cells
            if c.state is CellState.DONE and c.suite in context.required_names
            for check, status in c.results() if status is Status.FAIL and check}


def problem(context: GateContext, waiver: WaiverFacts, failing: set[str], now: datetime) -> str:
    """Why ``waiver`` does not count at this gate now ("" when it does)."""
    if not waiver.signature_valid:
        return waiver.problem or "signature does not verify"
    incomplete = (missing_problem({"sandbox": waiver.sandbox, "suite": waiver.suite, "check": waiver.check_id,
                                   "signer": waiver.principal})
                  or expiry_problem(waiver.expires) or justification_problem(waiver.reason))
    if incomplete:
        return incomplete
    if waiver.build_digest != context.evidence.digest:
        return f"signed for build sha256 {waiver.build_digest[:12]}…, not this one"
    if waiver.principal not in context.gate.waiver_approvers:
        return f"{waiver.principal} may not waive at this gate"
    if parse_instant(waiver.expires) <= now:
        return f"expired {waiver.expires}"
    if waiver.target not in failing:
        return "no failing mandatory check of that name (an error or a missing cell cannot be waived)"
    return ""


def weigh(context: GateContext) -> tuple[set[str], Clause]:
    """The failures validly waived at this gate now, and the ``waivers`` clause explaining it."""
    evidence, gate = context.evidence, context.gate
    if not evidence.waivers:
        return set(), Clause("waivers", ClauseOutcome.NOT_APPLICABLE, "no waiver recorded")
    used = tuple(f"waiver #{w.record_id} by {w.principal}" for w in evidence.waivers)
    if not gate.waivers:
        return set(), Clause("waivers", ClauseOutcome.NOT_APPLICABLE,
                             f"this gate allows no waivers; {len(evidence.waivers)} recorded waiver(s) do not count",
                             used)
    failing = failing_targets(context)
    waived: dict[str, str] = {}
    ignored = []
    for waiver in evidence.waivers:
        why_not = problem(context, waiver, failing, context.now)
        if why_not:
            ignored.append(f"{waiver.target} by {waiver.principal} ({why_not})")
        else:
            waived.setdefault(waiver.target, f"{waiver.target} by {waiver.principal} until {waiver.expires}: "
                                             f"{waiver.reason}")
    parts = [f"{len(waived)} failure(s) waived: " + "; ".join(waived[t] for t in sorted(waived))] if waived else []
    if ignored:
        parts.append("not counted: " + "; ".join(ignored))
    outcome = ClauseOutcome.MET if waived else ClauseOutcome.NOT_APPLICABLE
    return set(waived), Clause("waivers", outcome, "; ".join(parts), used)


def prepare(context: GateContext) -> GateContext:
    """The context with the waived failures, for the result clauses."""
    waived, _ = weigh(context)
    return replace(context, waived=frozenset(waived))


def judge(context: GateContext) -> list[Clause]:
    """Met when a waiver counts; not applicable otherwise (a waiver never blocks), with what did not count."""
    return [weigh(context)[1]]


def describe(stage: Stage, gate: Gate) -> str:
    """``waivers allowed`` or ``no waivers``."""
    return "waivers allowed" if gate.waivers else "no waivers"


CLAUSE = GateClause("waivers", judge, describe, prepare)
