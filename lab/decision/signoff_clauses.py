"""The people-and-time half of a gate: previous stage, soak, signed approvals and rejections.

Pure functions like the rest of the policy: the caller verifies signatures (``ssh-keygen``) and
hands over the outcome as ``ApprovalFacts``; ``now`` is injected. An approval counts only when
its signature verified, it names this build's digest, this stage and exactly the evidence being
judged, its signer may approve at this gate, and it has not expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lab.model import Clause, ClauseOutcome, Gate, Stage
from lab.util.clock import format_duration, iso, parse_instant


@dataclass(frozen=True)
class ApprovalFacts:
    """A recorded approval or rejection, with the outcome of its signature's verification."""

    record_id: int
    principal: str
    rejection: bool
    stage: str
    build_digest: str
    evidence_digest: str
    expires: str  # ISO 8601 with offset
    signature_valid: bool
    problem: str = ""  # why the signature did not verify (empty when it did)

    @property
    def word(self) -> str:
        return "rejection" if self.rejection else "approval"


def previous_stage_clause(stage: Stage, build_ref: str, entered: dict[str, str]) -> Clause:
    """``previous stage``: the build must already be in the stage before this one."""
    if stage.previous is None:
        return Clause("previous stage", ClauseOutcome.NOT_APPLICABLE, f"{stage.name} is the first stage")
    since = entered.get(stage.previous)
    if since is None:
        return Clause("previous stage", ClauseOutcome.NOT_MET,
                      f"{build_ref} is not in {stage.previous}; promote it to {stage.previous} first")
    return Clause("previous stage", ClauseOutcome.MET, f"in {stage.previous} since {since}",
                  (f"entry into {stage.previous} at {since}",))


def soak_clause(gate: Gate, stage: Stage, entered: dict[str, str], now: datetime) -> Clause:
    """``soak``: at least ``gate.soak_seconds`` in the previous stage, counted from entering it."""
    clock = f"clock {iso(now)}"
    if not gate.soak_seconds:
        return Clause("soak", ClauseOutcome.NOT_APPLICABLE, "the gate asks for no soak time")
    need = format_duration(gate.soak_seconds)
    since = entered.get(stage.previous) if stage.previous else None
    if since is None:
        where = stage.previous or "a previous stage"
        return Clause("soak", ClauseOutcome.NOT_MET, f"{need} in {where} required; the build is not there yet",
                      (clock,))
    start = parse_instant(since, "stage entry")
    done = start + timedelta(seconds=gate.soak_seconds)
    spent = format_duration((now - start).total_seconds())
    used = (f"entry into {stage.previous} at {since}", clock)
    if now >= done:
        return Clause("soak", ClauseOutcome.MET, f"in {stage.previous} for {spent} since {since}, {need} required",
                      used)
    return Clause("soak", ClauseOutcome.NOT_MET,
                  f"in {stage.previous} for {spent} since {since}, {need} required: soak ends at {iso(done)}", used)


def eligible(gate: Gate) -> tuple[str, ...]:
    """Who may approve or reject at this gate: its approval rule's people, else the agreement's approvers."""
    return gate.approvals.approvers if gate.approvals is not None else gate.waiver_approvers


def approval_problem(gate: Gate, record: ApprovalFacts, build_digest: str, evidence_digest: str,
                     now: datetime) -> str:
    """Why ``record`` does not count at this gate now ("" when it does). Records for another
    stage are filtered out before this is asked."""
    if not record.signature_valid:
        return record.problem or "signature does not verify"
    if record.build_digest != build_digest:
        return f"signed for build sha256 {record.build_digest[:12]}…, not this one"
    if record.principal not in eligible(gate):
        return f"{record.principal} is not an approver of this gate"
    if parse_instant(record.expires, f"{record.word} expiry") <= now:
        return f"expired {record.expires}"
    if not record.rejection and record.evidence_digest != evidence_digest:
        return f"signed over other evidence (sha256 {record.evidence_digest[:12]}…, now {evidence_digest[:12]}…)"
    return ""


def standing(gate: Gate, stage: Stage, build_digest: str, evidence_digest: str, records: tuple[ApprovalFacts, ...],
             now: datetime) -> tuple[list[ApprovalFacts], list[tuple[ApprovalFacts, str]]]:
    """The records that count, in recording order, each principal's latest one deciding whether
    they approve or reject; and the records that do not count, with why."""
    counted: list[ApprovalFacts] = []
    ignored: list[tuple[ApprovalFacts, str]] = []
    for record in sorted(records, key=lambda r: r.record_id):
        if record.stage != stage.name:
            continue
        problem = approval_problem(gate, record, build_digest, evidence_digest, now)
        if problem:
            ignored.append((record, problem))
        else:
            counted.append(record)
    latest = {r.principal: r for r in counted}
    # A principal's latest word stands: a rejection hides their earlier approvals, a later
    # approval withdraws their earlier rejections.
    kept = [r for r in counted if r is latest[r.principal] or not (r.rejection or latest[r.principal].rejection)]
    return kept, ignored


def approvals_clause(gate: Gate, stage: Stage, build_digest: str, evidence_digest: str,
                     records: tuple[ApprovalFacts, ...], now: datetime) -> Clause:
    """``approvals``: enough valid approvals (distinct people if the rule says so) over this evidence."""
    rule = gate.approvals
    if rule is None:
        return Clause("approvals", ClauseOutcome.NOT_APPLICABLE, "the gate asks for no approvals")
    kept, ignored = standing(gate, stage, build_digest, evidence_digest, records, now)
    approvals = [r for r in kept if not r.rejection]
    count = len({r.principal for r in approvals}) if rule.distinct else len(approvals)
    source = f"role {rule.role}" if rule.role else ", ".join(rule.approvers)
    people = ", ".join(f"{r.principal} (until {r.expires})" for r in approvals) or "none"
    kind = "distinct approver(s)" if rule.distinct else "approval(s)"
    detail = f"{count} of {rule.min_count} {kind} from {source}: {people}"
    not_counted = [f"{r.word} #{r.record_id} by {r.principal} ({why})" for r, why in ignored if not r.rejection]
    if not_counted:
        detail += "; not counted: " + "; ".join(not_counted)
    used = tuple(f"{r.word} #{r.record_id} by {r.principal}" for r in records if r.stage == stage.name)
    used += (f"evidence sha256 {evidence_digest}", f"clock {iso(now)}")
    outcome = ClauseOutcome.MET if count >= rule.min_count else ClauseOutcome.NOT_MET
    return Clause("approvals", outcome, detail, used)


def rejections_clause(gate: Gate, stage: Stage, build_digest: str, evidence_digest: str,
                      records: tuple[ApprovalFacts, ...], now: datetime) -> Clause:
    """``rejections``: a valid, unexpired rejection by an approver blocks until that approver approves
    this evidence later (a rejection blocks whatever evidence it was signed over)."""
    kept, _ = standing(gate, stage, build_digest, evidence_digest, records, now)
    latest = {r.principal: r for r in kept}
    rejections = [r for r in latest.values() if r.rejection]
    used = tuple(f"rejection #{r.record_id} by {r.principal}" for r in records if r.rejection and r.stage == stage.name)
    if rejections:
        who = "; ".join(f"{r.principal} (rejection #{r.record_id}, until {r.expires})" for r in rejections)
        return Clause("rejections", ClauseOutcome.NOT_MET, f"rejected by {who}", used)
    return Clause("rejections", ClauseOutcome.MET, f"no valid rejection of this build for {stage.name}", used)
