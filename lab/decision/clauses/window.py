"""``window``: a promotion into the stage happens inside one of its maintenance windows and outside
its freezes (agreement.yml ``windows`` and ``freezes`` of the stage; a stage without windows is
always open except during a freeze). The rules themselves live in ``lab.decision.schedule``, which
rollouts use too. ``prepare`` hands the verdict the next open instant when the stage is closed.
Sentence, on the stage's "open:" line: ``weekdays 18:00-06:00 Europe/Oslo; freeze ...``.
"""

from __future__ import annotations

from dataclasses import replace

from lab.decision.context import OPEN_LINE, GateClause, GateContext
from lab.decision.schedule import describe_freeze, describe_window, reopens, window_line
from lab.model import Clause, Gate, Stage


def prepare(context: GateContext) -> GateContext:
    """The context with ``next_open``: when the stage next opens, if it is closed now."""
    return replace(context, next_open=reopens(context.stage, context.now))


def judge(context: GateContext) -> list[Clause]:
    """Met inside a window; not met outside or in a freeze, naming the next open window (``prepare``'s)."""
    return [window_line(context.stage, context.now, context.next_open)]


def describe(stage: Stage, gate: Gate) -> str | None:
    """The stage's windows and freezes in one line; nothing when a promotion may happen any time."""
    parts = [describe_window(w) for w in stage.windows] + [describe_freeze(f) for f in stage.freezes]
    return "; ".join(parts) if parts else None


CLAUSE = GateClause("window", judge, describe, prepare, OPEN_LINE)
