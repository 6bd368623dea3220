"""The gate's clauses, one module each, registered in ``CLAUSES`` in the order a verdict lists them.

Each module defines ``CLAUSE``, a ``lab.decision.context.GateClause``: how it judges the evidence
(one or more verdict lines), its sentence for ``lab validate`` and, if other clauses or the
verdict need its outcome, a ``prepare`` step. ``lab.decision.evaluate.evaluate`` walks ``CLAUSES``
twice, in this order: first every ``prepare`` (``waivers`` decides which failures are waived,
``window`` when the stage next opens), then every ``judge``; the verdict's lines are the judged
clauses in this order, and ``lab validate`` joins the sentences in this order too.

Adding a clause: a module here with its ``CLAUSE``, its place in ``CLAUSES``, its agreement key in
``lab/config/schemas/agreement.json`` (parsed into ``lab.model.Gate`` by
``lab.config.agreement.StageParser.gate``, which sits below this package) and policy cases in
``tests/policy_cases/``.
"""

from __future__ import annotations

from lab.decision.clauses import (
    advisory,
    approvals,
    campaign,
    coverage,
    digest,
    errors,
    flaky,
    mandatory_checks,
    previous_stage,
    rejections,
    soak,
    waivers,
    window,
)
from lab.decision.context import GateClause

CLAUSES: tuple[GateClause, ...] = (
    previous_stage.CLAUSE,
    campaign.CLAUSE,
    digest.CLAUSE,
    coverage.CLAUSE,
    mandatory_checks.CLAUSE,
    errors.CLAUSE,
    flaky.CLAUSE,
    advisory.CLAUSE,
    waivers.CLAUSE,
    soak.CLAUSE,
    approvals.CLAUSE,
    rejections.CLAUSE,
    window.CLAUSE,
)
