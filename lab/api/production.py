"""Use cases of production: staged rollouts of promoted builds, and the production hosts they reach."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lab.api.campaigns import ReportsRefresh, refresh_reports
from lab.api.session import Lab, build_spec, instant
from lab.campaign.builds import registered_build, verified_build
from lab.config.rollout_plan import load_rollout_settings
from lab.errors import NotFoundError
from lab.executors.select import executor_for
from lab.model import Build
from lab.rollout.endpoints import ProvisionOutcome, describe, endpoints, halt_hosts, provision, teardown
from lab.rollout.engine import EventHandler, RolloutRunner, outcome_code
from lab.rollout.records import RolloutRecord, RolloutStore


@dataclass(frozen=True)
class RolloutOutcome:
    """A rollout as it stands after a start, resume or abort; the build's reports refreshed; and the
    exit code CI relies on (``lab.rollout.engine.outcome_code``)."""

    record: RolloutRecord
    refreshed: ReportsRefresh
    code: int


@dataclass(frozen=True)
class ProductionHost:
    """A production host: its state (up, down, absent, static), where it lives, what it runs."""

    name: str
    state: str
    where: str
    installed: dict[str, str]


@dataclass(frozen=True)
class ProductionRemoved:
    """The local production hosts ``production_down`` removed."""

    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ProductionStopped:
    """The local production hosts ``production_stop`` stopped (those that were up)."""

    hosts: tuple[str, ...]


def runner_of(lab: Lab, now: datetime | None, events: EventHandler | None) -> RolloutRunner:
    return RolloutRunner(lab.config, lab.store, load_rollout_settings(lab.config), events, clock=lambda: instant(now),
                         executor=executor_for(lab.config.executor, lab.store))


def rolled(lab: Lab, record: RolloutRecord, build: Build, now: datetime | None) -> RolloutOutcome:
    return RolloutOutcome(record, refresh_reports(lab, build, instant(now)), outcome_code(record))


def rollout_start(lab: Lab, build_ref: str, wait: bool = True, now: datetime | None = None,
                  events: EventHandler | None = None) -> RolloutOutcome:
    """Roll ``build_ref``, promoted into production, out to the production hosts wave by wave.

    Waves start only inside the production stage's maintenance window (GateBlocked naming the next
    open one; a window that closes between waves leaves the rollout waiting). Without ``wait`` a
    pause between waves ends the call (resume later). A build whose rollout already ended is not
    rolled out again: that record is returned. ``events`` gets every step as it happens.
    """
    runner = runner_of(lab, now, events)
    build = verified_build(build_spec(lab, build_ref), lab.store)
    return rolled(lab, runner.start(build, wait=wait), build, now)


def rollout_resume(lab: Lab, build_ref: str, wait: bool = True, now: datetime | None = None,
                   events: EventHandler | None = None) -> RolloutOutcome:
    """Continue the unfinished rollout of ``build_ref`` from its last recorded step (after a crash, a
    pause or a closed window). NotFoundError without a rollout, ConfigError when it has ended."""
    runner = runner_of(lab, now, events)
    build = verified_build(build_spec(lab, build_ref), lab.store)
    return rolled(lab, runner.resume(build, wait=wait), build, now)


def rollout_abort(lab: Lab, build_ref: str, now: datetime | None = None,
                  events: EventHandler | None = None) -> RolloutOutcome:
    """End the unfinished rollout of ``build_ref``: roll back what its current wave changed (never held
    by a window), cancel the waves after it; waves already done stay as they are."""
    runner = runner_of(lab, now, events)
    build = registered_build(build_spec(lab, build_ref), lab.store)
    return rolled(lab, runner.abort(build), build, now)


def rollout_status(lab: Lab, build_ref: str) -> RolloutRecord:
    """The latest rollout of ``build_ref`` as stored; reads the store only. NotFoundError without one."""
    spec = build_spec(lab, build_ref)
    record = RolloutStore(lab.store).latest(spec.product, spec.version)
    if record is None:
        raise NotFoundError(f"{spec.ref} has no rollout")
    return record


def production_up(lab: Lab, rebuild: bool = False) -> ProvisionOutcome:
    """Provision the local production hosts with the baseline playbook, in one Ansible run; hosts
    already provisioned are left as they are unless ``rebuild``. InfrastructureError naming the
    hosts the baseline failed on."""
    return provision(lab.config, load_rollout_settings(lab.config), rebuild)


def production_down(lab: Lab) -> ProductionRemoved:
    """Stop and remove the local production hosts; static hosts are never touched."""
    return ProductionRemoved(tuple(teardown(lab.config, load_rollout_settings(lab.config))))


def production_stop(lab: Lab) -> ProductionStopped:
    """Stop what the local production hosts run, keeping their files; static hosts are never touched.
    The next ``production_up`` provisions them again from a fresh state."""
    return ProductionStopped(tuple(halt_hosts(lab.config, load_rollout_settings(lab.config))))


def production_status(lab: Lab) -> tuple[ProductionHost, ...]:
    """Every production host of the rollout settings' group, as it is now."""
    hosts = []
    for item in endpoints(lab.config, load_rollout_settings(lab.config)):
        info = describe(item)
        hosts.append(ProductionHost(item.name, str(info["state"]), str(info["where"]), dict(info["installed"])))
    return tuple(hosts)
