"""``soak``: the build spent at least the gate's ``soak`` (agreement.yml ``gate.soak``, a duration)
in the previous stage, counted from entering it. Sentence: ``soak 2d`` (nothing without a soak)."""

from __future__ import annotations

from datetime import timedelta

from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome, Gate, Stage
from lab.util.clock import format_duration, iso, parse_instant


def judge(context: GateContext) -> list[Clause]:
    """Met once the soak time has passed; not met before, saying when it ends."""
    gate, stage, entered, now = context.gate, context.stage, context.evidence.entered, context.now
    clock = f"clock {iso(now)}"
    if not gate.soak_seconds:
        return [Clause("soak", ClauseOutcome.NOT_APPLICABLE, "the gate asks for no soak time")]
    need = format_duration(gate.soak_seconds)
    since = entered.get(stage.previous) if stage.previous else None
    if since is None:
        where = stage.previous or "a previous stage"
        return [Clause("soak", ClauseOutcome.NOT_MET, f"{need} in {where} required; the build is not there yet",
                       (clock,))]
    start = parse_instant(since, "stage entry")
    done = start + timedelta(seconds=gate.soak_seconds)
    spent = format_duration((now - start).total_seconds())
    used = (f"entry into {stage.previous} at {since}", clock)
    if now >= done:
        return [Clause("soak", ClauseOutcome.MET, f"in {stage.previous} for {spent} since {since}, {need} required",
                       used)]
    return [Clause("soak", ClauseOutcome.NOT_MET,
                   f"in {stage.previous} for {spent} since {since}, {need} required: soak ends at {iso(done)}", used)]


def describe(stage: Stage, gate: Gate) -> str | None:
    """``soak 2d``, or nothing when the gate asks for no soak."""
    return f"soak {format_duration(gate.soak_seconds)}" if gate.soak_seconds else None


CLAUSE = GateClause("soak", judge, describe)
