"""``rejections``: a valid, unexpired rejection by someone who may approve at this gate blocks until
that person approves this evidence later. A rejection blocks whatever evidence it was signed over."""

from __future__ import annotations

from lab.decision.clauses.approvals import standing
from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome


def judge(context: GateContext) -> list[Clause]:
    """Not met while a counted rejection is its principal's latest word, naming who rejected."""
    kept, _ = standing(context)
    latest = {r.principal: r for r in kept}
    rejections = [r for r in latest.values() if r.rejection]
    stage = context.stage.name
    used = tuple(f"rejection #{r.record_id} by {r.principal}" for r in context.evidence.approvals
                 if r.rejection and r.stage == stage)
    if rejections:
        who = "; ".join(f"{r.principal} (rejection #{r.record_id}, until {r.expires})" for r in rejections)
        return [Clause("rejections", ClauseOutcome.NOT_MET, f"rejected by {who}", used)]
    return [Clause("rejections", ClauseOutcome.MET, f"no valid rejection of this build for {stage}", used)]


CLAUSE = GateClause("rejections", judge)
