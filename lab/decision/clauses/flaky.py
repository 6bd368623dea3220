"""``flaky``: at most the gate's ``max_flaky`` required checks failed and then passed on retry.

Sentence: ``flaky <= 0``.
"""

from __future__ import annotations

from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome, Gate, Stage, Status


def judge(context: GateContext) -> list[Clause]:
    """Not met when more required checks were flaky than the gate tolerates."""
    flaky, limit = context.tally.required(Status.FLAKY), context.gate.max_flaky
    if flaky > limit:
        return [Clause("flaky", ClauseOutcome.NOT_MET, f"{flaky} flaky check(s), the gate tolerates {limit}",
                       context.results_used)]
    return [Clause("flaky", ClauseOutcome.MET, f"{flaky} flaky check(s), tolerated {limit}", context.results_used)]


def describe(stage: Stage, gate: Gate) -> str:
    """``flaky <= 0``."""
    return f"flaky <= {gate.max_flaky}"


CLAUSE = GateClause("flaky", judge, describe)
