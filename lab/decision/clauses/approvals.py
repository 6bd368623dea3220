"""``approvals``: enough valid signed approvals (distinct people, if the rule says so) over exactly
the evidence being judged.

An approval counts only when its signature verified (the caller ran ``ssh-keygen``), every field it
promises is there (stage, both digests, signer, a valid expiry: ``lab.signoff.fields``, re-checked
here however the record was made), it names this build's digest, this stage and this evidence's
digest, its signer may approve at this gate (the gate's approvers or role members, else the
agreement's approvers) and it has not expired. A
principal's latest word stands: a later rejection withdraws their approval (see ``rejections``).
Reads agreement.yml ``gate.approvals`` (``approvers``/``role``, ``min``, ``distinct``).
Sentence: ``2 distinct approval(s) from role change-board`` (nothing without an approval rule).
"""

from __future__ import annotations

from datetime import datetime

from lab.decision.context import GateClause, GateContext
from lab.decision.facts import ApprovalFacts
from lab.model import Clause, ClauseOutcome, Gate, Stage
from lab.signoff.fields import expiry_problem, missing_problem
from lab.util.clock import iso, parse_instant


def eligible(gate: Gate) -> tuple[str, ...]:
    """Who may approve or reject at this gate: its approval rule's people, else the agreement's approvers."""
    return gate.approvals.approvers if gate.approvals is not None else gate.waiver_approvers


def approval_problem(gate: Gate, record: ApprovalFacts, build_digest: str, evidence_digest: str,
                     now: datetime) -> str:
    """Why ``record`` does not count at this gate now ("" when it does). Records for another
    stage are filtered out before this is asked."""
    if not record.signature_valid:
        return record.problem or "signature does not verify"
    fields = {"stage": record.stage, "build digest": record.build_digest, "signer": record.principal}
    if not record.rejection:  # a rejection blocks whatever evidence it was signed over
        fields["evidence digest"] = record.evidence_digest
    incomplete = missing_problem(fields) or expiry_problem(record.expires)
    if incomplete:
        return incomplete
    if record.build_digest != build_digest:
        return f"signed for build sha256 {record.build_digest[:12]}…, not this one"
    if record.principal not in eligible(gate):
        return f"{record.principal} is not an approver of this gate"
    if parse_instant(record.expires) <= now:
        return f"expired {record.expires}"
    if not record.rejection and record.evidence_digest != evidence_digest:
        return f"signed over other evidence (sha256 {record.evidence_digest[:12]}…, now {evidence_digest[:12]}…)"
    return ""


def standing(context: GateContext) -> tuple[list[ApprovalFacts], list[tuple[ApprovalFacts, str]]]:
    """The records for this stage that count, in recording order, each principal's latest one
    deciding whether they approve or reject; and the records that do not count, with why."""
    counted: list[ApprovalFacts] = []
    ignored: list[tuple[ApprovalFacts, str]] = []
    for record in sorted(context.evidence.approvals, key=lambda r: r.record_id):
        if record.stage != context.stage.name:
            continue
        problem = approval_problem(context.gate, record, context.evidence.digest, context.evidence_digest,
                                   context.now)
        if problem:
            ignored.append((record, problem))
        else:
            counted.append(record)
    latest = {r.principal: r for r in counted}
    # A principal's latest word stands: a rejection hides their earlier approvals, a later
    # approval withdraws their earlier rejections.
    kept = [r for r in counted if r is latest[r.principal] or not (r.rejection or latest[r.principal].rejection)]
    return kept, ignored


def judge(context: GateContext) -> list[Clause]:
    """Met with at least the rule's minimum; not applicable without a rule; the uncounted ones named."""
    rule, stage, now = context.gate.approvals, context.stage, context.now
    if rule is None:
        return [Clause("approvals", ClauseOutcome.NOT_APPLICABLE, "the gate asks for no approvals")]
    kept, ignored = standing(context)
    approvals = [r for r in kept if not r.rejection]
    count = len({r.principal for r in approvals}) if rule.distinct else len(approvals)
    source = f"role {rule.role}" if rule.role else ", ".join(rule.approvers)
    people = ", ".join(f"{r.principal} (until {r.expires})" for r in approvals) or "none"
    kind = "distinct approver(s)" if rule.distinct else "approval(s)"
    detail = f"{count} of {rule.min_count} {kind} from {source}: {people}"
    not_counted = [f"{r.word} #{r.record_id} by {r.principal} ({why})" for r, why in ignored if not r.rejection]
    if not_counted:
        detail += "; not counted: " + "; ".join(not_counted)
    used = tuple(f"{r.word} #{r.record_id} by {r.principal}" for r in context.evidence.approvals
                 if r.stage == stage.name)
    used += (f"evidence sha256 {context.evidence_digest}", f"clock {iso(now)}")
    outcome = ClauseOutcome.MET if count >= rule.min_count else ClauseOutcome.NOT_MET
    return [Clause("approvals", outcome, detail, used)]


def describe(stage: Stage, gate: Gate) -> str | None:
    """``2 distinct approval(s) from role change-board``, or nothing when the gate asks for none."""
    rule = gate.approvals
    if rule is None:
        return None
    who = f"role {rule.role}" if rule.role else ", ".join(rule.approvers)
    return f"{rule.min_count}{' distinct' if rule.distinct else ''} approval(s) from {who}"


CLAUSE = GateClause("approvals", judge, describe)
