"""``previous stage``: the build must already be in the stage before this one.

Reads the stage's ``previous`` (the stage before it in agreement.yml) and the evidence's stage
entries. Its sentence in ``lab validate`` opens the stage's line: ``from pilot``.
"""

from __future__ import annotations

from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome, Gate, Stage


def judge(context: GateContext) -> list[Clause]:
    """Met since the build entered the previous stage; not applicable for the first stage."""
    stage, evidence = context.stage, context.evidence
    if stage.previous is None:
        return [Clause("previous stage", ClauseOutcome.NOT_APPLICABLE, f"{stage.name} is the first stage")]
    since = evidence.entered.get(stage.previous)
    if since is None:
        return [Clause("previous stage", ClauseOutcome.NOT_MET,
                       f"{evidence.build_ref} is not in {stage.previous}; promote it to {stage.previous} first")]
    return [Clause("previous stage", ClauseOutcome.MET, f"in {stage.previous} since {since}",
                   (f"entry into {stage.previous} at {since}",))]


def describe(stage: Stage, gate: Gate) -> str:
    """``from pilot``."""
    return f"from {stage.previous}"


CLAUSE = GateClause("previous stage", judge, describe)
