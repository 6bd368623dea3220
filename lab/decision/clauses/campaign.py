"""``campaign``: the build's latest campaign exists and has finished (no partial evidence passes)."""

from __future__ import annotations

from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome


def judge(context: GateContext) -> list[Clause]:
    """Met when the campaign finished; not met when there is none or it has not finished."""
    evidence = context.evidence
    if evidence.campaign_id is None:
        return [Clause("campaign", ClauseOutcome.NOT_MET, f"no campaign of {evidence.build_ref} exists; run one")]
    used = (f"campaign {evidence.campaign_id}",)
    if not evidence.campaign_finished:
        return [Clause("campaign", ClauseOutcome.NOT_MET,
                       f"campaign {evidence.campaign_id} has not finished; resume it", used)]
    return [Clause("campaign", ClauseOutcome.MET, f"campaign {evidence.campaign_id} finished", used)]


CLAUSE = GateClause("campaign", judge)
