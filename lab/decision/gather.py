"""Gather a build's stored evidence and hand it to the policy: the I/O half of the decision.

Reads the campaign, its cells, steps and deployed digests, the build's stage entries, and its
approvals, rejections and waivers (each signature verified with ssh-keygen here, so the policy
stays pure). The clock is passed in; ``lab.util.clock.current`` is the default.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from lab.config.labfile import LabConfig
from lab.decision.evaluate import ApprovalFacts, CellFacts, Evidence, SuiteFacts, WaiverFacts, evaluate
from lab.decision.records import promotions
from lab.errors import ConfigError
from lab.evidence.store import Store, campaign_from_row
from lab.model import Build, Campaign, CampaignState, CellOutcomes, Stage, Verdict
from lab.signoff.approvals import payload_problem
from lab.signoff.records import signed
from lab.signoff.signing import verify
from lab.util.clock import current
from lab.util.suggest import nearest_hint


def stage_entries(config: LabConfig, store: Store, build: Build) -> dict[str, str]:
    """When the build entered each stage it is in: the first stage at registration (``lab build``),
    the others at their recorded promotion (for this digest only)."""
    entered = {config.agreement.stages[0].name: build.registered_at}
    for row in promotions_of(store, build):
        entered[row["stage"]] = row["promoted_at"]
    return entered


def promotions_of(store: Store, build: Build) -> list[dict[str, Any]]:
    """The recorded promotions of exactly this build (same digest), oldest first, as stored rows
    (``stage``, ``campaign_id``, ``promoted_at``, ...)."""
    return [row for row in promotions(store, build.product, build.version) if row["digest"] == build.digest]


def evidence_of(config: LabConfig, store: Store, build: Build, campaign: Campaign | None,
                cells: Sequence[CellOutcomes] | None = None) -> Evidence:
    """The evidence a gate may use: ``campaign``'s cells, steps and digests (or none at all), the
    build's stage entries, and its verified approvals, rejections and waivers. ``cells``: the
    campaign's cells' outcomes when the caller read them already (no result's evidence is decoded
    either way: a gate looks at check ids and statuses only)."""
    suites = {
        name: SuiteFacts(name, config.suites[name].mandatory, config.suites[name].platforms)
        for name in config.products[build.product].suites
    }
    entered = stage_entries(config, store, build)
    approvals, waivers = signoffs(store, build, config.agreement.allowed_signers)
    if campaign is None:
        return Evidence(build.ref, build.digest, None, False, {}, {}, suites, (), entered, approvals, waivers)
    platforms = {name: spec.platform for name in campaign.sandboxes
                 for spec in config.sandboxes if spec.name == name}
    digests: dict[str, str | None] = {name: None for name in campaign.sandboxes}
    for step in store.steps(campaign.id):
        if step.step == "deploy" and step.ok:
            digests[step.sandbox] = step.deployed_digest
    facts = tuple(
        CellFacts(c.sandbox, c.suite, c.state, c.statuses, c.check_ids)
        for c in (store.outcomes(campaign.id) if cells is None else cells)
    )
    return Evidence(build.ref, build.digest, campaign.id, campaign.state is CampaignState.FINISHED,
                    platforms, digests, suites, facts, entered, approvals, waivers)


def signoffs(store: Store, build: Build, allowed_signers: Path | None) -> tuple[tuple[ApprovalFacts, ...],
                                                                              tuple[WaiverFacts, ...]]:
    """Every approval, rejection and waiver recorded for ``build``, each verified with ssh-keygen
    against ``allowed_signers``, as facts for the policy."""
    approvals: list[ApprovalFacts] = []
    waivers: list[WaiverFacts] = []
    for item in signed(store, build.product, build.version):
        try:
            payload: Any = json.loads(item.payload)
        except json.JSONDecodeError:
            payload = None
        problem = payload_problem(item, payload, build)
        if not problem:
            checked = verify(item.payload.encode("utf-8"), item.signature, item.principal, allowed_signers)
            problem = checked.problem
        fields: dict[str, Any] = payload if isinstance(payload, dict) else {}
        text = {k: str(v) if v is not None else "" for k, v in fields.items()}
        if item.kind == "waiver":
            waivers.append(WaiverFacts(item.id, item.principal, text.get("sandbox", ""), text.get("suite", ""),
                                       text.get("check", ""), text.get("build_digest", ""), text.get("reason", ""),
                                       text.get("expires", "1970-01-01T00:00:00+00:00"), not problem, problem))
        else:
            approvals.append(ApprovalFacts(item.id, item.principal, item.kind == "rejection", text.get("stage", ""),
                                           text.get("build_digest", ""), text.get("evidence_digest", ""),
                                           text.get("expires", "1970-01-01T00:00:00+00:00"), not problem, problem))
    return tuple(approvals), tuple(waivers)


def latest_campaign(store: Store, build: Build) -> Campaign | None:
    """The newest campaign that tested exactly this build (same digest): one indexed row read, not
    every campaign (the portfolio page asks this once per build)."""
    with store.reading() as db:
        row = db.execute("SELECT * FROM campaigns WHERE product = ? AND version = ? AND digest = ? "
                         "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                         (build.product, build.version, build.digest)).fetchone()
    return None if row is None else campaign_from_row(row)


def gated_stage(config: LabConfig, stage: str) -> Stage:
    """The stage named ``stage``, which must have a gate; ConfigError naming the stages otherwise."""
    target = config.agreement.stage(stage)
    if target is None:
        names = ", ".join(s.name for s in config.agreement.stages)
        raise ConfigError(f"unknown stage {stage!r}; stages in {config.agreement.path.name}: {names}"
                          f"{nearest_hint(stage, [s.name for s in config.agreement.stages])}")
    if target.gate is None:
        raise ConfigError(f"stage {stage!r} has no gate in {config.agreement.path.name}; nothing can be promoted "
                          "into it. Add a gate or pick the next stage")
    return target


def verdict_for(config: LabConfig, store: Store, build: Build, stage: str,
                campaign: Campaign | None = None, now: datetime | None = None,
                evidence: Evidence | None = None) -> Verdict:
    """The gate into ``stage`` evaluated at ``now`` (default: ``lab.util.clock.current()``) on
    ``campaign`` (default: the build's latest campaign); ``evidence``: that campaign's evidence
    (``evidence_of``), if the caller gathered it already."""
    target = gated_stage(config, stage)
    assert target.gate is not None
    if evidence is None:
        evidence = evidence_of(config, store, build, campaign or latest_campaign(store, build))
    return evaluate(target.gate, target, evidence, now or current())


def first_gate_stage(config: LabConfig) -> str:
    """The first stage that has a gate (lab -> pilot in the default agreement)."""
    for stage in config.agreement.stages:
        if stage.gate is not None:
            return stage.name
    raise ConfigError(f"{config.agreement.path.name} declares no gate; give the second stage one")
