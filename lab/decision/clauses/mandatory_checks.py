"""``mandatory checks``: zero failures among the required suites' results, or, when the gate sets
``min_pass_rate``, at least that share of the judged checks passed. A failure a valid waiver
covers does not count (the waivers clause prepares the waived set).

Reads the gate's ``suites`` (``mandatory``: every mandatory suite; or a list) and
``min_pass_rate``. Sentence: ``mandatory suites, zero failures`` or ``suites a, b, pass rate >= 95%``.
"""

from __future__ import annotations

from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome, Gate, Stage, Status


def judge(context: GateContext) -> list[Clause]:
    """Met with no failure (or a pass rate at or above the gate's); the failing places named otherwise."""
    gate, tally, used = context.gate, context.tally, context.results_used
    fails = tally.required(Status.FAIL)
    passed = tally.required(Status.PASS) + tally.required(Status.FLAKY)
    where = tally.where(Status.FAIL)
    also = f"; {tally.waived_count} waived failure(s) do not block" if tally.waived_count else ""
    if gate.min_pass_rate is None:
        if fails:
            return [Clause("mandatory checks", ClauseOutcome.NOT_MET,
                           f"{fails} mandatory check(s) failed: {'; '.join(where)}{also}", used)]
        return [Clause("mandatory checks", ClauseOutcome.MET, f"{passed} mandatory check(s), none failed{also}", used)]
    judged = passed + fails
    rate = passed / judged if judged else 0.0
    failed = f" ({fails} failed: {'; '.join(where)})" if fails else ""
    detail = (f"{rate:.1%} of {judged} mandatory check(s) passed, at least {gate.min_pass_rate:.1%} required"
              f"{failed}{also}")
    outcome = ClauseOutcome.MET if judged and rate >= gate.min_pass_rate else ClauseOutcome.NOT_MET
    return [Clause("mandatory checks", outcome, detail, used)]


def describe(stage: Stage, gate: Gate) -> str:
    """``mandatory suites, zero failures``."""
    suites = "mandatory suites" if gate.suites is None else f"suites {', '.join(gate.suites)}"
    rule = "zero failures" if gate.min_pass_rate is None else f"pass rate >= {gate.min_pass_rate:.0%}"
    return f"{suites}, {rule}"


CLAUSE = GateClause("mandatory checks", judge, describe)
