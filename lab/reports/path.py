"""Where a build stands on the agreement's promotion path, for the change board's report.

One row per stage of the agreement (entered, the decision now for the next one, later), the
build's signed approvals, rejections and waivers with whether each signature verifies against
the approver keys in effect, and its latest production rollout. Read-only: decisions come from
the same functions ``lab gate`` uses, nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from lab.config import allowed_signers as signers
from lab.config.labfile import LabConfig
from lab.decision.evaluate import Evidence
from lab.decision.gather import latest_campaign, promotions_of, signoffs, verdict_for
from lab.evidence.store import Store
from lab.model import Build, Verdict
from lab.rollout.records import RolloutRecord, RolloutStore
from lab.util.clock import iso


@dataclass(frozen=True)
class StageRow:
    """One stage of the agreement as the build stands in it.

    ``status`` is ``registered`` (the first stage: entered when ``lab build`` registered it),
    ``promoted`` (``at`` when, on ``campaign_id``'s evidence), ``next`` (the first stage it has
    not entered: ``decision`` is the gate into it now, on ``campaign_id``; None when the stage
    has no gate) or ``later``.
    """

    stage: str
    status: str
    at: str | None = None
    campaign_id: str | None = None
    decision: Verdict | None = None


@dataclass(frozen=True)
class SignedRow:
    """One signed record of the build as recorded, and whether its signature verifies now.

    ``stage`` is None for a waiver, which names the check it ``waives`` (``sandbox/suite/check``)
    and its ``reason`` instead; ``problem`` says why a record does not verify.
    """

    record_id: int
    kind: str
    principal: str
    stage: str | None
    expires: str
    verified: bool
    problem: str
    waives: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class PromotionPath:
    """A build's stages, signed records and latest production rollout, as of ``evaluated_at``.

    ``signers`` is where signatures were verified (``lab.config.allowed_signers.signers_source``);
    ``signers_note`` the line saying an override file was used (None when it was the agreement's).
    """

    evaluated_at: str
    stages: tuple[StageRow, ...]
    signed: tuple[SignedRow, ...]
    signers: dict[str, Any]
    signers_note: str | None
    rollout: RolloutRecord | None

    @property
    def next_stage(self) -> StageRow | None:
        """The row of the first stage the build has not entered (None when it is in every stage)."""
        return next((row for row in self.stages if row.status == "next"), None)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON export; each decision in the form of the export's ``verdict``
        plus ``next_open`` and ``evaluated_at``."""
        return {
            "evaluated_at": self.evaluated_at,
            "stages": [{"stage": r.stage, "status": r.status, "at": r.at, "campaign": r.campaign_id,
                        "decision": None if r.decision is None else decision_json(r.decision)}
                       for r in self.stages],
            "signed": [asdict(s) for s in self.signed],
            "allowed_signers": self.signers,
            "rollout": None if self.rollout is None else rollout_json(self.rollout),
        }


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """A verdict as the JSON export shows it: stage, allowed, every clause, the waived failures."""
    return {"stage": verdict.stage, "allowed": verdict.allowed,
            "clauses": [asdict(c) for c in verdict.clauses], "waived": list(verdict.waived)}


def decision_json(verdict: Verdict) -> dict[str, Any]:
    return verdict_json(verdict) | {"next_open": verdict.next_open, "evaluated_at": verdict.evaluated_at}


def rollout_json(rollout: RolloutRecord) -> dict[str, Any]:
    """A rollout, compact: its state and why, and per wave its name, hosts and state."""
    return {"id": rollout.id, "state": rollout.state.value, "detail": rollout.detail,
            "created_at": rollout.created_at, "finished_at": rollout.finished_at,
            "waves": [{"wave": w.index, "name": w.name, "state": w.state.value, "hosts": [h.host for h in w.hosts],
                       "detail": w.detail} for w in rollout.waves]}


def stage_rows(config: LabConfig, store: Store, build: Build, now: datetime,
               known: Mapping[str, Evidence] | None = None) -> tuple[StageRow, ...]:
    """Every stage of the agreement, in order, as ``build`` stands in it at ``now``; ``known``: the
    evidence of campaigns the caller gathered already, by campaign id."""
    promoted = {row["stage"]: row for row in promotions_of(store, build)}
    rows: list[StageRow] = []
    for position, stage in enumerate(config.agreement.stages):
        row = promoted.get(stage.name)
        if position == 0:
            rows.append(StageRow(stage.name, "registered", build.registered_at))
        elif row is not None:
            rows.append(StageRow(stage.name, "promoted", str(row["promoted_at"]), str(row["campaign_id"])))
        elif any(r.status == "next" for r in rows):
            rows.append(StageRow(stage.name, "later"))
        else:
            campaign = latest_campaign(store, build)
            evidence = (known or {}).get(campaign.id) if campaign else None
            decision = None if stage.gate is None else verdict_for(config, store, build, stage.name, campaign, now,
                                                                   evidence)
            rows.append(StageRow(stage.name, "next", None, campaign.id if campaign else None, decision))
    return tuple(rows)


def signed_rows(config: LabConfig, store: Store, build: Build) -> tuple[SignedRow, ...]:
    """The build's approvals, rejections and waivers in recording order, each verified against the
    allowed_signers in effect (``lab.decision.gather.signoffs``)."""
    approvals, waivers = signoffs(store, build, config.agreement.allowed_signers)
    rows = [SignedRow(a.record_id, a.word, a.principal, a.stage, a.expires, a.signature_valid, a.problem)
            for a in approvals]
    rows += [SignedRow(w.record_id, "waiver", w.principal, None, w.expires, w.signature_valid, w.problem,
                       w.target, w.reason) for w in waivers]
    return tuple(sorted(rows, key=lambda r: r.record_id))


def latest_rollout(store: Store, build: Build) -> RolloutRecord | None:
    """The newest rollout of exactly this build (same digest), if any."""
    rollout = RolloutStore(store).latest(build.product, build.version)
    return rollout if rollout is not None and rollout.digest == build.digest else None


def promotion_path(config: LabConfig, store: Store, build: Build, now: datetime,
                   known: Mapping[str, Evidence] | None = None) -> PromotionPath:
    """Where ``build`` stands at ``now``: its stages (the next one decided as ``lab gate`` would,
    on its latest campaign), its signed records and its latest rollout, read from ``store``;
    ``known``: the evidence of campaigns the caller gathered already, by campaign id."""
    return PromotionPath(iso(now), stage_rows(config, store, build, now, known),
                         signed_rows(config, store, build), signers.signers_source(config.agreement),
                         signers.describe(config.agreement), latest_rollout(store, build))
