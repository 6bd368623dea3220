"""``no errors``: every required check could be judged. An ``error`` (unreachable, timeout, runner
crash) is never a pass and cannot be waived."""

from __future__ import annotations

from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome, Status


def judge(context: GateContext) -> list[Clause]:
    """Not met with any error among the required results, naming where."""
    errors = context.tally.required(Status.ERROR)
    if errors:
        where = "; ".join(context.tally.where(Status.ERROR))
        return [Clause("no errors", ClauseOutcome.NOT_MET, f"{errors} check(s) could not be judged (error): {where}",
                       context.results_used)]
    return [Clause("no errors", ClauseOutcome.MET, "every mandatory check could be judged", context.results_used)]


CLAUSE = GateClause("no errors", judge)
