"""Decisions and promotions: evaluate a gate, record the decision in the audit log, and move a
build into a stage atomically.

``decide`` is what ``lab gate`` calls; ``promote`` is what ``lab promote`` (and later staged
rollout) calls. A promotion re-evaluates the gate inside the same write transaction that records
it, so two processes racing for the same build and stage give exactly one record, and nothing
can change the evidence between the decision and the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lab.config.allowed_signers import signers_source
from lab.config.labfile import LabConfig
from lab.decision.gather import gated_stage, latest_campaign, verdict_for
from lab.decision.records import insert_promotion, promotion
from lab.evidence.audit import append
from lab.evidence.checkpoints import CHECKPOINTS
from lab.evidence.store import Store
from lab.model import Build, Verdict
from lab.signoff.checkpoints import Sealing, sealer
from lab.util.clock import iso


@dataclass(frozen=True)
class PromotionOutcome:
    """What ``promote`` did: ``recorded`` a new promotion, found it ``already`` done, or was refused
    (``verdict.allowed`` false). ``verdict`` is None only when the promotion already existed."""

    build: Build
    stage: str
    verdict: Verdict | None
    recorded: bool
    campaign_id: str | None
    promoted_at: str | None
    sealing: Sealing | None = None  # the checkpoint sealing a recorded promotion, or why there is none

    @property
    def already(self) -> bool:
        return self.verdict is None

    @property
    def allowed(self) -> bool:
        return self.verdict is None or self.verdict.allowed


def decision_payload(verdict: Verdict) -> dict[str, Any]:
    """A decision as plain data: for the audit log, the promotion record and evidence bundles."""
    return {
        "build": verdict.build_ref, "digest": verdict.digest, "stage": verdict.stage, "allowed": verdict.allowed,
        "evidence_digest": verdict.evidence_digest, "evaluated_at": verdict.evaluated_at,
        "next_open": verdict.next_open, "waived": list(verdict.waived),
        "clauses": [[c.name, c.outcome.value, c.detail] for c in verdict.clauses],
    }


def recorded_decision(config: LabConfig, verdict: Verdict) -> dict[str, Any]:
    """The decision as the audit log and the promotion record keep it: with the approver keys used."""
    return {**decision_payload(verdict), "allowed_signers": signers_source(config.agreement)}


def subject(build: Build, stage: str) -> str:
    return f"{build.ref} -> {stage}"


def decide(config: LabConfig, store: Store, build: Build, stage: str, now: datetime) -> Verdict:
    """The gate into ``stage`` evaluated at ``now`` on the build's latest campaign, recorded in the audit log."""
    gated_stage(config, stage)
    with store.transaction() as db:
        verdict = verdict_for(config, store, build, stage, now=now)
        append(db, "decision", subject(build, stage), recorded_decision(config, verdict))
    return verdict


def promote(config: LabConfig, store: Store, build: Build, stage: str, now: datetime) -> PromotionOutcome:
    """Move ``build`` into ``stage`` if the gate allows it at ``now``, atomically.

    Promises: an existing promotion is left exactly as it is (``already``); otherwise the gate
    is evaluated inside the write transaction, the decision is audited, and when allowed the
    promotion (with its decision), its audit entry and a signed checkpoint sealing that entry
    (``lab.signoff.checkpoints``; when the lab can seal) are committed together, at ``now``.
    """
    gated_stage(config, stage)
    store.ensure(CHECKPOINTS)
    sealing = None
    with store.transaction() as db:
        existing = promotion(store, build.product, build.version, stage)
        if existing is not None:
            return PromotionOutcome(build, stage, None, False, existing["campaign_id"], existing["promoted_at"])
        campaign = latest_campaign(store, build)
        verdict = verdict_for(config, store, build, stage, campaign, now)
        decision = recorded_decision(config, verdict)
        append(db, "decision", subject(build, stage), decision)
        if not verdict.allowed or campaign is None:
            return PromotionOutcome(build, stage, verdict, False, campaign.id if campaign else None, None)
        recorded = insert_promotion(db, campaign, stage, {**decision, "campaign": campaign.id}, iso(now),
                                    verdict.evidence_digest)
        if recorded:
            sealing = sealer(config).seal(db, f"promotion of {subject(build, stage)}")
    return PromotionOutcome(build, stage, verdict, recorded, campaign.id, iso(now), sealing)
