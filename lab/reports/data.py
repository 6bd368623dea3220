"""What every report shows, gathered from the store: a campaign's summary (its verdict, steps, each
result's outcome without its evidence, the build's promotion path), and for the results sections
every cell with its results, decoded once."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from lab.config.labfile import LabConfig
from lab.decision.evaluate import Evidence
from lab.decision.gather import evidence_of, first_gate_stage, verdict_for
from lab.evidence.checkpoints import Checkpoint
from lab.evidence.store import Store
from lab.model import Build, Campaign, CellOutcomes, CellRecord, Result, Status, StepRecord, Verdict
from lab.reports.path import PromotionPath, promotion_path, verdict_json
from lab.reports.standing import FailingCheck, Standing, failing_checks, standing
from lab.signoff.checkpoints import latest_sealed, sealed_line
from lab.transports.security import security_notes
from lab.util.clipping import clip
from lab.util.clock import current, now

# Control characters other than tab and newline; shown as visible escapes, never passed through.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with control bytes (NUL, ANSI escapes, ...) shown as ``\\xNN``, clipped once: text
    a runner clipped stays as it came, longer text keeps its head and tail around a line with its
    size in bytes and its sha256 (``lab.util.clipping``)."""
    return visible(clip(text))


def visible(text: str) -> str:
    """``text`` with control bytes shown as ``\\xNN`` escapes, never passed through."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@dataclass(frozen=True)
class ReportSummary:
    """A campaign with everything its reports show but its results' evidence: the verdict, the
    build's promotion path, and each result's check id, status and message (``outcomes``, read
    without decoding any evidence). Every part of a report around its results section is rendered
    from this alone (``lab.reports.formats``)."""

    lab_name: str
    generated_at: str
    campaign: Campaign
    build: Build
    verdict: Verdict
    platforms: dict[str, str]
    mandatory: dict[str, bool]
    outcomes: tuple[CellOutcomes, ...]
    steps: tuple[StepRecord, ...]
    notes: tuple[str, ...]
    path: PromotionPath  # where the build stands on the agreement's stages, as of the report
    suite_files: dict[str, str] = field(default_factory=dict)  # suite -> its file, relative to lab.yml
    # suite -> check id -> (the check's line in its suite file, its description)
    check_notes: dict[str, dict[str, tuple[int | None, str]]] = field(default_factory=dict)
    campaigns: tuple[Campaign, ...] = field(default=())  # every campaign of this build, oldest first
    seal: Checkpoint | None = None  # the newest valid checkpoint of the audit log, when the report was made

    @cached_property
    def failing(self) -> list[FailingCheck]:
        """The mandatory checks that block: failed or errored, not waived at the gate the page shows
        (``gate``), as the portfolio page's row of the build counts them."""
        return failing_checks(self.outcomes, self.mandatory, self.gate.waived)

    @cached_property
    def standing(self) -> Standing:
        """Where the build stands now (its rollout, else the gate into its next stage)."""
        return standing(self.path, self.failing)

    @property
    def other_reasons(self) -> tuple[str, ...]:
        """The headline's reasons the list of failing checks does not already say (it names every
        failing mandatory check, so the clauses that count them are left out when it is shown)."""
        if not self.failing or self.path.rollout is not None:
            return self.standing.reasons
        return tuple(r for r in self.standing.reasons if not r.startswith(("mandatory checks:", "no errors:")))

    @property
    def gate(self) -> Verdict:
        """The one gate decision the page shows clause by clause: the gate into the build's next
        stage now, or the campaign's own gate when the build has entered every stage."""
        nxt = self.path.next_stage
        return nxt.decision if nxt is not None and nxt.decision is not None else self.verdict

    @cached_property
    def waived(self) -> frozenset[str]:
        """The failures (``sandbox/suite/check``) a valid waiver kept from blocking the campaign's gate."""
        return frozenset(self.verdict.waived)

    def shown(self, sandbox: str, suite: str, check_id: str, status: Status) -> str:
        """A result's status as every report shows it: ``waived`` for a failure that a valid waiver
        kept from blocking (never ``pass``), the result's own status otherwise."""
        if status is Status.FAIL and f"{sandbox}/{suite}/{check_id}" in self.waived:
            return "waived"
        return status.value

    def counts(self) -> dict[str, int]:
        """How many results are shown as each status (``shown``)."""
        totals = {s.value: 0 for s in Status} | {"waived": 0}
        for cell in self.outcomes:
            for status, number in Counter(cell.statuses).items():
                totals[status.value] += number
            if self.waived:
                waived = sum(1 for check_id, status in zip(cell.check_ids, cell.statuses, strict=True)
                             if self.shown(cell.sandbox, cell.suite, check_id, status) == "waived")
                totals["fail"] -= waived
                totals["waived"] += waived
        return totals

    def duration_s(self) -> float | None:
        return seconds_between(self.campaign.created_at, self.campaign.finished_at)

    @property
    def seal_line(self) -> str:
        """``audit chain sealed at seq N by P, TIME`` or ``audit chain not sealed: no signed checkpoint``."""
        return sealed_line(self.seal)

    def json_members(self) -> dict[str, Any]:
        """The JSON export's members in plain data (ISO timestamps), all but its ``cells``
        (``ReportData.cells_json``)."""
        return {
            "format": 1,
            "lab": self.lab_name,
            "generated_at": self.generated_at,
            "campaign": asdict(self.campaign),
            "build": {"product": self.build.product, "version": self.build.version, "digest": self.build.digest,
                      "artifact": self.build.artifact.name},
            "verdict": verdict_json(self.verdict),
            "counts": self.counts(),
            "steps": [asdict(s) for s in self.steps],
            "notes": list(self.notes),
            "promotion_path": self.path.to_json(),
            "audit_seal": {"line": self.seal_line, "checkpoint": None if self.seal is None else self.seal.to_json()},
            "standing": {"word": self.standing.word, "headline": self.standing.headline, "tone": self.standing.tone,
                         "stage": self.standing.stage, "reasons": list(self.standing.reasons)},
        }


@dataclass(frozen=True)
class ReportData(ReportSummary):
    """A campaign with everything needed to report on it: its summary and every cell with its
    results, evidence decoded."""

    cells: tuple[CellRecord, ...] = field(kw_only=True)

    def shown_status(self, cell: CellRecord, result: Result) -> str:
        """``result``'s status as every report shows it (``ReportSummary.shown``)."""
        return self.shown(cell.sandbox, cell.suite, result.check_id, result.status)

    def cells_json(self) -> list[dict[str, Any]]:
        """The export's ``cells``: each cell with every result and how it is shown."""
        return [
            {"sandbox": c.sandbox, "platform": self.platforms.get(c.sandbox), "suite": c.suite,
             "mandatory": self.mandatory.get(c.suite, True), "state": c.state.value,
             "started_at": c.started_at, "finished_at": c.finished_at,
             "results": [asdict(r) | {"shown_as": self.shown_status(c, r)} for r in c.results]}
            for c in self.cells
        ]

    def to_json(self) -> dict[str, Any]:
        """A plain-data form for the JSON export (stable keys, ISO timestamps)."""
        return self.json_members() | {"cells": self.cells_json()}


def summarise(config: LabConfig, store: Store, campaign: Campaign, at: datetime | None = None,
              outcomes: tuple[CellOutcomes, ...] | None = None) -> ReportSummary:
    """Everything the reports of ``campaign`` show but its results' evidence, read from the store
    without decoding any: the campaign's verdict into the first gated stage and the build's
    promotion path, both decided at ``at`` (default: ``lab.util.clock.current()``). ``outcomes``:
    the campaign's cells' outcomes when the caller read them already."""
    at = at or current()
    build = store.build(campaign.product, campaign.version)
    if build is None or build.digest != campaign.digest:
        declared = config.products[campaign.product].builds.get(campaign.version) \
            if campaign.product in config.products else None
        artifact = build.artifact if build is not None else declared.artifact if declared else Path(campaign.build_ref)
        build = Build(campaign.product, campaign.version, artifact, campaign.digest, campaign.created_at)
    cells = tuple(store.outcomes(campaign.id)) if outcomes is None else outcomes
    evidence = evidence_of(config, store, build, campaign, cells)  # gathered once, for both decisions
    path = promotion_path(config, store, build, at, {campaign.id: evidence})
    platforms = {s.name: s.platform for s in config.sandboxes}
    mandatory = {name: suite.mandatory for name, suite in config.suites.items()}
    notes = tuple(tls_notes(config, campaign))
    verdict = campaign_verdict(config, store, build, campaign, at, evidence, path)
    return ReportSummary(config.name, now(), campaign, build, verdict, platforms, mandatory,
                         cells, tuple(store.steps(campaign.id)), notes, path,
                         {name: relative_to_lab(config, suite.path) for name, suite in config.suites.items()},
                         {name: {c.id: (c.line, c.description) for c in suite.checks}
                          for name, suite in config.suites.items()},
                         tuple(campaigns_of(store, build)), latest_sealed(store, config.agreement.allowed_signers))


def campaign_verdict(config: LabConfig, store: Store, build: Build, campaign: Campaign, at: datetime,
                     evidence: Evidence, path: PromotionPath) -> Verdict:
    """The gate into the first gated stage on ``campaign``'s ``evidence`` at ``at``: the path's
    decision of its next stage when that is the same gate on the same campaign, else decided here."""
    first = first_gate_stage(config)
    nxt = path.next_stage
    if nxt is not None and nxt.stage == first and nxt.campaign_id == campaign.id and nxt.decision is not None:
        return nxt.decision
    return verdict_for(config, store, build, first, campaign, at, evidence)


def complete(summary: ReportSummary, cells: tuple[CellRecord, ...]) -> ReportData:
    """``summary`` with its campaign's ``cells`` read whole (the same cells its outcomes were read from)."""
    return ReportData(**{f.name: getattr(summary, f.name) for f in fields(ReportSummary)}, cells=cells)


def gather(config: LabConfig, store: Store, campaign: Campaign, at: datetime | None = None) -> ReportData:
    """Everything the reports of ``campaign`` need, read from the store in one go (each result
    decoded once, for the verdicts and every format), decided at ``at`` as ``summarise`` does."""
    cells = tuple(store.cells(campaign.id))
    return complete(summarise(config, store, campaign, at, tuple(CellOutcomes.of(c) for c in cells)), cells)


def relative_to_lab(config: LabConfig, path: Path) -> str:
    """``path`` relative to the lab's directory (as CI checks the lab out), else as it is."""
    try:
        return path.resolve().relative_to(config.path.parent.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def campaigns_of(store: Store, build: Build) -> list[Campaign]:
    """Every campaign that tested exactly ``build`` (same digest), oldest first."""
    return [c for c in store.campaigns()
            if c.product == build.product and c.version == build.version and c.digest == build.digest]


def tls_notes(config: LabConfig, campaign: Campaign) -> list[str]:
    """Say so in the report whenever a sandbox's connection weakens security (TLS certificate validation off)."""
    return [note for spec in config.sandboxes if spec.name in campaign.sandboxes
            for note in security_notes(spec.name, spec.host_vars)]
