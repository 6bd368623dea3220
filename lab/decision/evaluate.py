"""The agreement, evaluated: a pure function from evidence, a gate, a stage and a clock to a decision.

No I/O and no clock reading here: ``now`` is injected. Missing evidence never passes: a missing
cell, an ``error`` result, a sandbox whose deployed digest is not the build's, an unfinished
campaign, an approval or waiver whose signature did not verify or that expired, or a closed
window each block. Each clause (one module of ``lab.decision.clauses``) says what it looked at.
"""

from __future__ import annotations

from datetime import datetime

from lab.decision.clauses import CLAUSES
from lab.decision.context import GateContext
from lab.decision.facts import (
    ApprovalFacts,
    CellFacts,
    Evidence,
    SuiteFacts,
    WaiverFacts,
    evidence_digest,
    evidence_document,
)
from lab.errors import ConfigError
from lab.model import ClauseOutcome, Gate, Stage, Verdict
from lab.util.clock import iso

__all__ = ["ApprovalFacts", "CellFacts", "Evidence", "SuiteFacts", "WaiverFacts", "evaluate", "evidence_digest",
           "evidence_document"]


def evaluate(gate: Gate, stage: Stage, evidence: Evidence, now: datetime) -> Verdict:
    """The decision of ``gate`` into ``stage`` on ``evidence`` at ``now``: allowed only when no
    clause is unmet. ``now`` must carry a time zone.

    Walks ``lab.decision.clauses.CLAUSES`` twice in its order: every clause's ``prepare`` (what it
    hands on: the waived failures, the next open instant), then every clause's ``judge``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError(f"the clock {now.isoformat()} has no time zone; policy needs an aware time")
    context = GateContext(gate, stage, evidence, now, evidence_digest(evidence))
    for clause in CLAUSES:
        context = clause.prepare(context)
    judged = tuple(line for clause in CLAUSES for line in clause.judge(context))
    allowed = all(c.outcome is not ClauseOutcome.NOT_MET for c in judged)
    opens = context.next_open
    return Verdict(evidence.build_ref, evidence.digest, stage.name, allowed, judged, context.evidence_digest,
                   iso(now), iso(opens) if opens is not None else None, tuple(sorted(context.waived)))
