"""What a gate clause is, and the one thing every clause is given: a GateContext.

A clause (``GateClause``) is one module of ``lab.decision.clauses``: its name, how it judges the
evidence (``judge``: one or more verdict lines), its sentence for ``lab validate`` (``describe``)
and, for the few clauses whose outcome other clauses or the verdict need, a ``prepare`` step that
hands it on through the context (the waivers clause: which failures are waived; the window
clause: when the stage next opens). ``lab.decision.evaluate`` runs them; see
``lab.decision.clauses`` for the order.

The context also offers what several clauses read the same way (the suites the gate requires,
the tally of the required results), computed once per context.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from lab.decision.facts import Evidence, SuiteFacts
from lab.model import CellState, Clause, Gate, Stage, Status

GATE_LINE = "gate"  # a sentence joined into the stage's line of `lab validate`
OPEN_LINE = "open"  # a sentence joined into the stage's "open:" line
SHOWN_PLACES = 6  # failing checks a clause names before "and N more"


@dataclass(frozen=True)
class Tally:
    """The results of the required suites' finished cells, once waived failures are taken out.

    ``counts`` by (``required`` or ``advisory``, status); ``failing`` lists ``(suite, check, sandbox)``
    for each required fail or error (check "" when the evidence did not name it); ``waived_count``
    is how many required failures a waiver hid.
    """

    counts: Counter[tuple[str, Status]]
    failing: dict[Status, list[tuple[str, str, str]]]
    waived_count: int

    def required(self, status: Status) -> int:
        return self.counts[("required", status)]

    def where(self, status: Status) -> list[str]:
        """Where the required results of ``status`` are, naming each check once with its sandboxes:
        ``suite/check on sbx-1, sbx-2`` (``suite on sbx-1`` when the check is not named), sorted,
        at most ``SHOWN_PLACES`` of them and then ``and N more``."""
        sandboxes: dict[tuple[str, str], set[str]] = {}
        for suite, check, sandbox in self.failing.get(status, []):
            sandboxes.setdefault((suite, check), set()).add(sandbox)
        named = [f"{suite}/{check} on {', '.join(sorted(found))}" if check else
                 f"{suite} on {', '.join(sorted(found))}" for (suite, check), found in sorted(sandboxes.items())]
        if len(named) > SHOWN_PLACES:
            named = [*named[:SHOWN_PLACES], f"and {len(named) - SHOWN_PLACES} more"]
        return named


@dataclass(frozen=True)
class GateContext:
    """The gate, the stage it guards, the evidence, the injected clock, the digest of the evidence
    (what approvers sign) and what earlier ``prepare`` steps produced."""

    gate: Gate
    stage: Stage
    evidence: Evidence
    now: datetime
    evidence_digest: str
    waived: frozenset[str] = frozenset()  # ``sandbox/suite/check`` failures a valid waiver keeps from blocking
    next_open: datetime | None = None  # when the stage next opens, if it is closed now

    @cached_property
    def required_suites(self) -> list[SuiteFacts]:
        """The suites the gate requires: its list, or every mandatory suite of the evidence."""
        if self.gate.suites is None:
            return [s for s in self.evidence.suites.values() if s.mandatory]
        return [self.evidence.suites.get(n) or SuiteFacts(n, True, ("any",)) for n in self.gate.suites]

    @cached_property
    def required_names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.required_suites)

    @cached_property
    def tally(self) -> Tally:
        """The finished cells' results, required or advisory, with the waived failures set aside."""
        counts: Counter[tuple[str, Status]] = Counter()
        failing: dict[Status, list[tuple[str, str, str]]] = {}
        waived_count = 0
        for cell in self.evidence.cells:
            if cell.state is not CellState.DONE:
                continue
            kind = "required" if cell.suite in self.required_names else "advisory"
            for check, status in cell.results():
                target = f"{cell.sandbox}/{cell.suite}/{check}"
                if kind == "required" and status is Status.FAIL and target in self.waived:
                    waived_count += 1
                    continue
                counts[(kind, status)] += 1
                if kind == "required" and status in (Status.FAIL, Status.ERROR):
                    failing.setdefault(status, []).append((cell.suite, check, cell.sandbox))
        return Tally(counts, failing, waived_count)

    @property
    def results_used(self) -> tuple[str, ...]:
        """The evidence the result clauses name: the campaign's results, when there is a campaign."""
        return (f"results of campaign {self.evidence.campaign_id}",) if self.evidence.campaign_id else ()


def unchanged(context: GateContext) -> GateContext:
    """A ``prepare`` step that hands nothing on."""
    return context


def no_sentence(stage: Stage, gate: Gate) -> str | None:
    """A ``describe`` for a clause that adds nothing to ``lab validate``'s line."""
    return None


@dataclass(frozen=True)
class GateClause:
    """One clause of the gate, as its module registers it (see the module docstring).

    ``judge`` returns the clause's verdict lines (a clause per required platform, say);
    ``describe`` its sentence for ``lab validate`` (None: nothing to say for this gate), on the
    stage's gate line or, with ``line=OPEN_LINE``, on its "open:" line; ``prepare`` what it hands
    on to the clauses judged after the prepare pass.
    """

    name: str
    judge: Callable[[GateContext], Sequence[Clause]]
    describe: Callable[[Stage, Gate], str | None] = no_sentence
    prepare: Callable[[GateContext], GateContext] = unchanged
    line: str = field(default=GATE_LINE)
