"""``platform <name>``, one line per platform the gate requires: every required suite aimed at that
platform finished on every sandbox of it (a missing or unfinished cell blocks).

Reads the gate's ``platforms`` (agreement.yml ``gate.platforms``) and its required suites (see
``mandatory_checks``). Sentence: ``platforms debian-12, windows-server-2022``.
"""

from __future__ import annotations

from lab.decision.context import GateClause, GateContext
from lab.model import CellState, Clause, ClauseOutcome, Gate, Stage


def judge(context: GateContext) -> list[Clause]:
    """One clause per required platform, in the gate's order."""
    evidence = context.evidence
    cells = {(c.sandbox, c.suite): c for c in evidence.cells}
    clauses = []
    for platform in context.gate.platforms:
        name = f"platform {platform}"
        on_platform = sorted(s for s, p in evidence.sandboxes.items() if p == platform)
        if not on_platform:
            clauses.append(Clause(name, ClauseOutcome.NOT_MET,
                                  f"no sandbox of required platform {platform} was tested"))
            continue
        missing, used = [], []
        for suite in context.required_suites:
            if not suite.targets(platform):
                continue
            for sandbox in on_platform:
                cell = cells.get((sandbox, suite.name))
                if cell is None or cell.state is not CellState.DONE:
                    missing.append(f"{suite.name} on {sandbox}")
                else:
                    used.append(f"cell {sandbox}/{suite.name}")
        if missing:
            clauses.append(Clause(name, ClauseOutcome.NOT_MET,
                                  "missing cells (not run or unfinished): " + ", ".join(missing), tuple(used)))
        else:
            clauses.append(Clause(name, ClauseOutcome.MET,
                                  f"every required suite ran on {len(on_platform)} sandbox(es) of {platform}",
                                  tuple(used)))
    return clauses


def describe(stage: Stage, gate: Gate) -> str:
    """``platforms debian-12``."""
    return f"platforms {', '.join(gate.platforms) or 'any'}"


CLAUSE = GateClause("platform <name>", judge, describe)
