"""Use cases of the lab itself: validate it, register builds, run and resume campaigns, read and report them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lab.api.documents import document
from lab.api.session import Lab, build_spec
from lab.campaign.builds import build_and_register, verified_build
from lab.campaign.catalog import register_new
from lab.campaign.cells import Progress
from lab.campaign.runner import CampaignRunner, refuse_finished
from lab.config.labfile import LabConfig
from lab.config.rollout_plan import has_rollout, load_rollout_settings
from lab.decision.describe import describe_agreement, describe_rollout
from lab.errors import ConfigError
from lab.executors.select import opened
from lab.model import Build, Campaign, CellState
from lab.reports import refresh, render, write_build_pages
from lab.reports.data import ReportData, gather
from lab.util.atomic import write_text
from lab.util.versions import sorted_versions

NO_ROLLOUT = "rollout: none (no rollout: section in the agreement; `lab rollout` is unavailable)"


@dataclass(frozen=True)
class Validation:
    """A lab that loaded and validated: its configuration, its agreement and rollout plan in words."""

    config: LabConfig
    agreement: tuple[str, ...]
    rollout: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """``lab validate --json``: valid (true), lab, path, sandboxes (name, platform, provider), suites
        (name, file, checks, mandatory, platforms), products (name, deploy, suites, builds: the declared
        versions in version order, ci_builds: versions and artifacts, or null), agreement (name,
        stages, rules: the gates in words), rollout (the plan in words)."""
        config = self.config
        return document(
            valid=True, lab=config.name, path=str(config.path),
            sandboxes=[{"name": s.name, "platform": s.platform, "provider": s.provider} for s in config.sandboxes],
            suites=[{"name": s.name, "file": str(s.path), "checks": len(s.checks), "mandatory": s.mandatory,
                     "platforms": list(s.platforms)} for s in config.suites.values()],
            products=[{"name": p.name, "deploy": str(p.deploy_playbook), "suites": list(p.suites),
                       "builds": sorted_versions(list(p.builds)),
                       "ci_builds": None if p.ci is None else {"versions": p.ci.versions,
                                                               "artifacts": str(p.ci.artifacts)}}
                      for p in config.products.values()],
            agreement={"name": config.agreement.name, "stages": [s.name for s in config.agreement.stages],
                       "rules": list(self.agreement)},
            rollout=list(self.rollout))


@dataclass(frozen=True)
class Registration:
    """A build registered by its digest; ``new`` is false when it was already registered, unchanged."""

    build: Build
    new: bool


@dataclass(frozen=True)
class CampaignStarting:
    """Sent to ``run``'s event handler before the first sandbox is touched."""

    build_ref: str
    digest: str
    sandboxes: int
    parallel: int


RunEvent = CampaignStarting | Progress
RunEvents = Callable[[RunEvent], None]


@dataclass(frozen=True)
class CampaignOutcome:
    """A campaign that ran to its end: its evidence and verdict, the reports written, and the exit code
    CI relies on (``outcome_code``)."""

    data: ReportData
    reports: tuple[Path, ...]
    code: int


@dataclass(frozen=True)
class CampaignRow:
    """One campaign of the store with how many of its cells are done."""

    campaign: Campaign
    done: int
    cells: int


class CampaignRows(tuple[CampaignRow, ...]):
    """The campaigns of the store, oldest first."""

    def to_json(self) -> dict[str, Any]:
        """``lab list --json``: campaigns, oldest first: id, build, product, version, digest, state,
        created_at, finished_at, cells_done, cells_total."""
        return document(campaigns=[
            {"id": row.campaign.id, "build": row.campaign.build_ref, "product": row.campaign.product,
             "version": row.campaign.version, "digest": row.campaign.digest, "state": row.campaign.state.value,
             "created_at": row.campaign.created_at, "finished_at": row.campaign.finished_at,
             "cells_done": row.done, "cells_total": row.cells}
            for row in self])


@dataclass(frozen=True)
class WrittenReport:
    """What ``report`` produced: the files written, or the report itself when asked for as text."""

    paths: tuple[Path, ...]
    text: str | None = None


@dataclass(frozen=True)
class ReportsRefresh:
    """The reports of ``build_ref``'s latest campaign, brought up to date after something changed
    where it stands. ``paths`` is empty when the build has no campaign; ``problem`` says why they could not be
    written (what was recorded before stands all the same)."""

    build_ref: str
    paths: tuple[Path, ...]
    problem: str | None = None


def outcome_code(data: ReportData) -> int:
    """0 promotable; 3 blocked with an infrastructure error on the way; 1 blocked otherwise."""
    if data.verdict.allowed:
        return 0
    if any(step.infrastructure_error for step in data.steps):
        return 3
    return 1


def refresh_reports(lab: Lab, build: Build, at: datetime | None = None) -> ReportsRefresh:
    """Bring the HTML, JUnit and JSON reports of ``build``'s latest campaign up to date, decided at
    ``at`` (default: the clock), so they show where the build stands now (``lab.reports.refresh``:
    only what changed is rendered). Never raises for a report that cannot be written: the result
    names the problem instead."""
    try:
        paths = refresh(lab.config, lab.store, build, at)
    except OSError as exc:
        return ReportsRefresh(build.ref, (), str(exc))
    return ReportsRefresh(build.ref, tuple(paths))


def validate(lab: Lab) -> Validation:
    """Load and check lab.yml, the inventory, every suite, the agreement and its rollout plan.

    Raises ConfigError naming file:line on the first problem; returns only when all of it is valid.
    """
    config = lab.config
    rollout = describe_rollout(load_rollout_settings(config)) if has_rollout(config) else [NO_ROLLOUT]
    return Validation(config, tuple(describe_agreement(config.agreement)), tuple(rollout))


def build(lab: Lab, build_ref: str, version: str | None = None, artifact: Path | None = None,
          sources: Sequence[Path] = ()) -> Registration:
    """Register a build by its sha256, packing it from source where it comes from a source tree.

    ``build_ref`` alone (PRODUCT@VERSION) is a build lab.yml declares (or one registered before).
    With ``version`` (``build_ref`` then names the product) or with ``artifact`` or ``sources``, it is
    a new build lab.yml does not list, taken from the file ``artifact`` or packed from the ``sources``
    trees, for a product whose ``ci_builds`` pattern the version matches. The same version is never
    registered with another digest (ConfigError): what the lab tested is what gets deployed.
    """
    if version is None and artifact is None and not sources:
        registered, new = build_and_register(build_spec(lab, build_ref), lab.store)
        return Registration(registered, new)
    product, _, named = build_ref.partition("@")
    if named and version is not None and named != version:
        raise ConfigError(f"{build_ref} and --version {version} name two versions; give the version once")
    if not (version or named):
        raise ConfigError(f"lab build {product}: give the new build's version with --version V")
    registered, new = register_new(lab.config, lab.store, product, version or named, artifact, sources)
    return Registration(registered, new)


def run(lab: Lab, build_ref: str, reports: bool = True, events: RunEvents | None = None,
        outputs: Mapping[str, Path] | None = None) -> CampaignOutcome:
    """Run a campaign of the registered build ``build_ref`` (PRODUCT@VERSION or PRODUCT@latest) over every
    sandbox x suite, to its end.

    The artifact is hashed again first (ConfigError if it changed). ``events`` gets a
    ``CampaignStarting`` and then every ``Progress`` (from worker threads). With ``reports``, the
    HTML, JUnit and JSON reports are written to the lab's reports directory; ``outputs`` (format ->
    path, e.g. ``{"junit": Path("out/lab.xml")}``) writes those reports there as well, for CI to collect.
    """
    config = lab.config
    registered = verified_build(build_spec(lab, build_ref), lab.store)
    handler = events or (lambda event: None)
    handler(CampaignStarting(registered.ref, registered.digest, len(config.sandboxes), config.parallel))
    with opened(lab.config.executor, lab.store) as executor:
        campaign = CampaignRunner(config, lab.store, handler, executor, f"lab run {registered.ref}").start(registered)
    return finished(lab, campaign, reports, outputs)


def resume(lab: Lab, campaign_id: str, reports: bool = True,
           events: Callable[[Progress], None] | None = None,
           outputs: Mapping[str, Path] | None = None) -> CampaignOutcome:
    """Finish the interrupted campaign ``campaign_id`` (or ``latest``): finished cells keep their
    results, unfinished ones run again. Reports (and ``outputs``) as for ``run``."""
    campaign = lab.store.campaign(campaign_id)
    refuse_finished(campaign)
    registered = verified_build(build_spec(lab, campaign.build_ref), lab.store)
    with opened(lab.config.executor, lab.store) as executor:
        campaign = CampaignRunner(lab.config, lab.store, events, executor,
                                  f"lab resume {campaign.id}").resume(campaign.id, registered)
    return finished(lab, campaign, reports, outputs)


def finished(lab: Lab, campaign: Campaign, reports: bool, outputs: Mapping[str, Path] | None) -> CampaignOutcome:
    data = gather(lab.config, lab.store, campaign)
    written = write_build_pages(lab.config, lab.store, data) if reports else []
    for fmt, path in (outputs or {}).items():
        write_text(path, render(data, fmt))
        written.append(path)
    return CampaignOutcome(data, tuple(written), outcome_code(data))


def list_campaigns(lab: Lab) -> CampaignRows:
    """Every campaign in the store, oldest first, with its cells done and planned."""
    rows = []
    for campaign in lab.store.campaigns():
        cells = lab.store.cells(campaign.id)
        rows.append(CampaignRow(campaign, sum(1 for c in cells if c.state is CellState.DONE), len(cells)))
    return CampaignRows(rows)


def show(lab: Lab, campaign_id: str) -> ReportData:
    """Everything known about campaign ``campaign_id`` (or ``latest``): cells, results, the verdict
    and where its build stands on the promotion path. NotFoundError for an unknown id."""
    return gather(lab.config, lab.store, lab.store.campaign(campaign_id))


def report(lab: Lab, campaign_id: str, fmt: str = "html", output: Path | None = None,
           as_text: bool = False) -> WrittenReport:
    """The report of campaign ``campaign_id`` in format ``fmt`` (html, junit or json).

    With ``as_text`` it is returned, not written; with ``output`` it is written there; else to the
    lab's reports directory. Every file is written atomically.
    """
    data = show(lab, campaign_id)
    if as_text:
        return WrittenReport((), render(data, fmt))
    if output is not None:
        write_text(output, render(data, fmt))
        return WrittenReport((output,))
    return WrittenReport(tuple(write_build_pages(lab.config, lab.store, data, (fmt,))))
