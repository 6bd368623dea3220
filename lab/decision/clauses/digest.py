"""``digest``: every sandbox of the campaign reported exactly the build's sha256 after deploy."""

from __future__ import annotations

from lab.decision.context import GateClause, GateContext
from lab.model import Clause, ClauseOutcome


def judge(context: GateContext) -> list[Clause]:
    """Not met when a sandbox recorded no digest or another one, or when no sandbox reported at all."""
    evidence = context.evidence
    short = evidence.digest[:12]
    bad = []
    for sandbox in sorted(evidence.sandboxes):
        found = evidence.deployed_digests.get(sandbox)
        if found is None:
            bad.append(f"{sandbox}: no deployed digest recorded")
        elif found != evidence.digest:
            bad.append(f"{sandbox}: deployed {found[:12]}, not {short}")
    used = tuple(f"deploy on {s}: {(d or 'none')[:12]}" for s, d in sorted(evidence.deployed_digests.items()))
    if not evidence.sandboxes:
        return [Clause("digest", ClauseOutcome.NOT_MET, "no sandbox reported a deployed digest", used)]
    if bad:
        return [Clause("digest", ClauseOutcome.NOT_MET, "digest mismatch: " + "; ".join(bad), used)]
    return [Clause("digest", ClauseOutcome.MET, f"every sandbox ran exactly the build tested (sha256 {short}…)", used)]


CLAUSE = GateClause("digest", judge)
