"""``advisory suites``: how many advisory checks failed or errored. Never blocks: the line is there
so the change board sees them."""

from __future__ import annotations

from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome, Status


def judge(context: GateContext) -> list[Clause]:
    """Always not applicable, with the count."""
    counts = context.tally.counts
    bad = counts[("advisory", Status.FAIL)] + counts[("advisory", Status.ERROR)]
    return [Clause("advisory suites", ClauseOutcome.NOT_APPLICABLE,
                   f"{bad} advisory check(s) failed or errored; advisory results do not block", context.results_used)]


CLAUSE = GateClause("advisory suites", judge)
