"""Use cases of the promotion path: the gate's decision, signed approvals and waivers, promotion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lab.api.campaigns import ReportsRefresh, refresh_reports
from lab.api.documents import document
from lab.api.session import Lab, build_spec, instant
from lab.campaign.builds import verified_build
from lab.config import allowed_signers as signers
from lab.decision import promotion
from lab.decision.evaluate import evidence_digest
from lab.decision.gather import evidence_of, gated_stage, latest_campaign
from lab.decision.promotion import PromotionOutcome
from lab.errors import ConfigError, GateBlocked
from lab.model import Build, CellState, Status, Verdict
from lab.signoff.approvals import approval_payload, refuse_unjustified, sign_and_record, waiver_payload
from lab.signoff.signing import signer_identity
from lab.util.clock import parse_expiry


@dataclass(frozen=True)
class Decision:
    """The gate's decision, and the line saying approvals were verified against an override (if so)."""

    verdict: Verdict
    signers_note: str | None

    def to_json(self) -> dict[str, Any]:
        """``lab gate --json``: build, product, version, digest, stage, allowed, clauses (name, outcome,
        detail, evidence), reasons, waived, evidence_digest, evaluated_at, next_open, signers_note."""
        verdict = self.verdict
        product, _, version = verdict.build_ref.partition("@")
        return document(build=verdict.build_ref, product=product, version=version, digest=verdict.digest,
                        stage=verdict.stage, allowed=verdict.allowed,
                        clauses=[{"name": c.name, "outcome": c.outcome.value, "detail": c.detail,
                                  "evidence": list(c.evidence)} for c in verdict.clauses],
                        reasons=list(verdict.reasons), waived=list(verdict.waived),
                        evidence_digest=verdict.evidence_digest, evaluated_at=verdict.evaluated_at,
                        next_open=verdict.next_open, signers_note=self.signers_note)


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` did (``outcome``), the signers override note, and the reports refreshed (only
    when a promotion was recorded)."""

    outcome: PromotionOutcome
    signers_note: str | None
    refreshed: ReportsRefresh | None


class PromotionRefused(GateBlocked):
    """The gate blocked the promotion; ``promotion`` holds the decision with its reasons (audited)."""

    def __init__(self, promotion: Promotion) -> None:
        verdict = promotion.outcome.verdict
        reasons = "; ".join(verdict.reasons) if verdict is not None else ""
        super().__init__(f"{promotion.outcome.build.ref} may not enter {promotion.outcome.stage}: {reasons}")
        self.promotion = promotion


@dataclass(frozen=True)
class SignedWord:
    """An approval, rejection or waiver, signed and recorded: record id, principal, the signed
    payload (build and evidence digests, stage or check, expiry, reason), the campaign it speaks
    of, the signers override note, and the build's reports refreshed."""

    build: Build
    kind: str  # approval, rejection or waiver
    record_id: int
    principal: str
    payload: dict[str, Any]
    campaign_id: str | None
    signers_note: str | None
    refreshed: ReportsRefresh


def gate(lab: Lab, build_ref: str, stage: str, now: datetime | None = None) -> Decision:
    """Decide whether ``build_ref`` may enter ``stage`` at ``now``, clause by clause, with the evidence used.

    Nothing moves; the decision is recorded in the audit log.
    """
    config = lab.config
    build = verified_build(build_spec(lab, build_ref), lab.store)
    verdict = promotion.decide(config, lab.store, build, stage, instant(now))
    return Decision(verdict, signers.describe(config.agreement))


def promote(lab: Lab, build_ref: str, stage: str, now: datetime | None = None) -> Promotion:
    """Promote ``build_ref`` into ``stage`` when the gate allows it at ``now``, and refresh its reports.

    Raises PromotionRefused (a GateBlocked, exit 1) carrying the decision when the gate blocks; a
    promotion already recorded is left as it is (``outcome.recorded`` false).
    """
    config = lab.config
    build = verified_build(build_spec(lab, build_ref), lab.store)
    moment = instant(now)
    outcome = promotion.promote(config, lab.store, build, stage, moment)
    note = signers.describe(config.agreement) if outcome.verdict is not None else None
    if not outcome.allowed:
        raise PromotionRefused(Promotion(outcome, note, None))
    refreshed = refresh_reports(lab, build, moment) if outcome.recorded else None
    return Promotion(outcome, note, refreshed)


def approve(lab: Lab, build_ref: str, stage: str, key: Path, reject: bool = False, expires: str = "7d",
            principal: str | None = None, now: datetime | None = None) -> SignedWord:
    """Sign with ``key`` (its path only goes to ssh-keygen) an approval of ``build_ref`` into ``stage``,
    or with ``reject`` a rejection, and record it; then refresh the build's reports.

    The signature covers the build's digest, the digest of the evidence the gate uses now, the stage,
    the expiry (``expires``: a duration such as 7d, a date valid through its day, or a time) and the
    approver (``principal``, default the one allowed_signers lists for the key). ConfigError, and
    nothing recorded, when there is nothing to approve or the signature would not verify.
    """
    config = lab.config
    moment = instant(now)
    expiry = parse_expiry(expires, moment)
    build = verified_build(build_spec(lab, build_ref), lab.store)
    gated_stage(config, stage)
    campaign = latest_campaign(lab.store, build)
    if campaign is None and not reject:
        raise ConfigError(f"nothing to approve: {build.ref} has no campaign; run `lab run {build.ref}` first")
    evidence = evidence_of(config, lab.store, build, campaign)
    allowed = config.agreement.allowed_signers
    who = signer_identity(key.expanduser(), allowed, principal)
    payload = approval_payload(build, stage, evidence_digest(evidence), campaign.id if campaign else None,
                               expiry, who, moment, reject)
    record = sign_and_record(lab.store, build, payload, key.expanduser(), who, allowed, moment)
    return SignedWord(build, payload["kind"], record.id, who, payload, campaign.id if campaign else None,
                      signers.describe(config.agreement), refresh_reports(lab, build, moment))


def parse_target(text: str) -> tuple[str, str, str]:
    """``sandbox/suite/check`` -> its three parts (the check id may itself contain ``/``)."""
    parts = text.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"{text!r} is not SANDBOX/SUITE/CHECK (e.g. ts-sbx-01/portfolio-compat/journal-health)")
    return parts[0], parts[1], parts[2]


def waive(lab: Lab, build_ref: str, target: str, reason: str, expires: str, key: Path,
          principal: str | None = None, now: datetime | None = None) -> SignedWord:
    """Sign and record a waiver of one failed check, ``target`` = SANDBOX/SUITE/CHECK, of ``build_ref``'s
    latest campaign, with a justification and an expiry; then refresh the build's reports.

    Only a check whose result is ``fail`` can be waived (ConfigError otherwise: an error or a
    missing cell cannot be); nothing is recorded when the signature would not verify.
    """
    config = lab.config
    moment = instant(now)
    expiry = parse_expiry(expires, moment)
    refuse_unjustified(reason)
    build = verified_build(build_spec(lab, build_ref), lab.store)
    sandbox, suite, check = parse_target(target)
    campaign = latest_campaign(lab.store, build)
    if campaign is None:
        raise ConfigError(f"nothing to waive: {build.ref} has no campaign")
    cell = next((c for c in lab.store.outcomes(campaign.id) if c.sandbox == sandbox and c.suite == suite), None)
    if cell is None or cell.state is not CellState.DONE:
        raise ConfigError(f"campaign {campaign.id} has no finished cell {sandbox}/{suite}")
    status = next((s for i, s in zip(cell.check_ids, cell.statuses, strict=True) if i == check), None)
    if status is not Status.FAIL:
        found = "no such check" if status is None else f"its result is {status.value}"
        raise ConfigError(f"{target} cannot be waived ({found}); only a failed check can be")
    allowed = config.agreement.allowed_signers
    who = signer_identity(key.expanduser(), allowed, principal)
    payload = waiver_payload(build, (sandbox, suite, check), reason, expiry, who, moment)
    record = sign_and_record(lab.store, build, payload, key.expanduser(), who, allowed, moment)
    return SignedWord(build, "waiver", record.id, who, payload, campaign.id, signers.describe(config.agreement),
                      refresh_reports(lab, build, moment))
