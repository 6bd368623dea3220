"""Use cases on hosts by hand, outside campaigns: the lab's sandboxes, and the Windows self-test.

Every change to a sandbox takes its lease first, so it never pulls a sandbox from under a running
campaign (it waits up to the lease timeout, then says who holds it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.api.documents import document, iso
from lab.api.session import Lab
from lab.campaign.golden import rebaseline
from lab.campaign.selftest import HostFacts, run_selftest
from lab.errors import LabError
from lab.evidence.leases import holder_of, lease
from lab.model import Result, SandboxSpec, Status, Suite
from lab.sandboxes.base import LabSite, Provider
from lab.sandboxes.registry import provider_for

UP_STATES = {"running", "ready", "static"}  # static hosts exist outside the lab: nothing to bring up


@dataclass(frozen=True)
class SandboxOutcome:
    """What one sandbox command did to one sandbox: ``action`` (up, already up, reset, down) taking
    ``seconds``, the sandbox as its provider describes it afterwards (``info``: state, port, where,
    ...); or, when it could not be done, ``error`` and its exit code."""

    name: str
    provider: str
    action: str = ""
    seconds: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    exit_code: int = 0


@dataclass(frozen=True)
class SandboxesDone:
    """One outcome per selected sandbox; ``code`` is 0 or the exit code of the first failure."""

    outcomes: tuple[SandboxOutcome, ...]

    @property
    def code(self) -> int:
        return next((o.exit_code for o in self.outcomes if o.exit_code), 0)


@dataclass(frozen=True)
class SandboxRow:
    """A sandbox as ``sandbox_list`` sees it: provider's description (``state`` unknown, ``where`` the
    error, when it cannot describe it), the lease holder, the epoch time of its last reset."""

    name: str
    provider: str
    state: str
    port: object
    holder: str | None
    since: object
    where: str
    detail: str | None


class SandboxRows(tuple[SandboxRow, ...]):
    """Sandboxes as ``sandbox_list`` sees them."""

    def to_json(self) -> dict[str, Any]:
        """``lab sandbox list --json``: sandboxes: name, provider, state, port (null if none), lease_holder
        (null when free), reset_at (the last reset, or null), where, detail."""
        return document(sandboxes=[
            {"name": r.name, "provider": r.provider, "state": r.state,
             "port": r.port if isinstance(r.port, int) else None, "lease_holder": r.holder,
             "reset_at": iso(r.since), "where": r.where, "detail": r.detail}
            for r in self])


@dataclass(frozen=True)
class SelftestOutcome:
    """The self-test suite run on ``host`` and one result per check (or per part that could not run)."""

    host: str
    suite: Suite
    results: tuple[Result, ...]
    facts: HostFacts | None = None  # what the bootstrap found before any check (None: no facts came back)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.status in (Status.PASS, Status.FLAKY))

    @property
    def code(self) -> int:
        """0 when every check passed, 1 otherwise."""
        return 0 if self.passed == len(self.results) else 1


SandboxAction = Callable[[Provider, SandboxSpec], SandboxOutcome]
SandboxEvents = Callable[[SandboxOutcome], None]


def selected(lab: Lab, names: Sequence[str]) -> list[SandboxSpec]:
    """The named sandboxes (NotFoundError for an unknown name), or all of them."""
    config = lab.config
    return [config.sandbox(name) for name in names] if names else list(config.sandboxes)


def provider_of(lab: Lab, spec: SandboxSpec) -> Provider:
    """The provider of ``spec``, set up as a campaign sets it up."""
    config = lab.config
    site = LabSite(config.root, config.inventory.sources, config.timeouts.playbook, config.ansible)
    return provider_for(spec.provider, config.state_dir, site)


def for_each(lab: Lab, names: Sequence[str], lease_timeout: float | None, holder: str, action: SandboxAction,
             each: SandboxEvents | None) -> SandboxesDone:
    """Run ``action`` on each selected sandbox under its lease, telling ``each`` as each is done; a
    sandbox that fails does not stop the others."""
    config = lab.config
    wait = config.timeouts.lease if lease_timeout is None else lease_timeout
    outcomes = []
    for spec in selected(lab, names):
        try:
            with lease(config, spec.name, holder, wait):
                outcome = action(provider_of(lab, spec), spec)
        except LabError as exc:
            outcome = SandboxOutcome(spec.name, spec.provider, error=str(exc), exit_code=exc.exit_code)
        outcomes.append(outcome)
        if each is not None:
            each(outcome)
    return SandboxesDone(tuple(outcomes))


def timed_reset(action: str) -> SandboxAction:
    def reset(provider: Provider, spec: SandboxSpec) -> SandboxOutcome:
        started = time.monotonic()
        provider.reset(spec)
        return SandboxOutcome(spec.name, spec.provider, action, time.monotonic() - started, provider.describe(spec))

    return reset


def sandbox_up(lab: Lab, names: Sequence[str] = (), lease_timeout: float | None = None,
               each: SandboxEvents | None = None) -> SandboxesDone:
    """Start the named sandboxes (all without names) that are not running; those up are left untouched.
    ``lease_timeout`` (default lab.yml's) bounds the wait for a campaign holding one."""
    start = timed_reset("up")

    def bring_up(provider: Provider, spec: SandboxSpec) -> SandboxOutcome:
        info = provider.describe(spec)
        if info.get("state") in UP_STATES:
            return SandboxOutcome(spec.name, spec.provider, "already up", None, info)
        return start(provider, spec)

    return for_each(lab, names, lease_timeout, "lab sandbox up", bring_up, each)


def sandbox_reset(lab: Lab, names: Sequence[str] = (), lease_timeout: float | None = None,
                  each: SandboxEvents | None = None) -> SandboxesDone:
    """Reset the named sandboxes (all without names) to their clean state; their writes are discarded."""
    return for_each(lab, names, lease_timeout, "lab sandbox reset", timed_reset("reset"), each)


def sandbox_rebaseline(lab: Lab, names: Sequence[str] = (), lease_timeout: float | None = None,
                       each: SandboxEvents | None = None) -> SandboxesDone:
    """Install the baseline as it is now on the named sandboxes (all without names), each reset afresh,
    in one baseline run, and keep the result as the golden image later resets return to (replacing
    the old one). Each sandbox's outcome says the golden key (``info['golden']``) or why it failed."""
    config = lab.config
    started = time.monotonic()
    wait = config.timeouts.lease if lease_timeout is None else lease_timeout
    outcomes = []
    for done in rebaseline(config, selected(lab, names), wait, "lab sandbox rebaseline"):
        outcome = SandboxOutcome(done.sandbox, done.provider, f"rebaselined ({done.detail})",
                                 time.monotonic() - started, {"state": "ready", "golden": done.golden}) if done.ok \
            else SandboxOutcome(done.sandbox, done.provider, error=done.detail, exit_code=done.exit_code)
        outcomes.append(outcome)
        if each is not None:
            each(outcome)
    return SandboxesDone(tuple(outcomes))


def sandbox_down(lab: Lab, names: Sequence[str] = (), lease_timeout: float | None = None,
                 each: SandboxEvents | None = None) -> SandboxesDone:
    """Remove the named sandboxes (all without names): stop what they run, delete their files. Idempotent."""

    def destroy(provider: Provider, spec: SandboxSpec) -> SandboxOutcome:
        provider.destroy(spec)
        return SandboxOutcome(spec.name, spec.provider, "down")

    return for_each(lab, names, lease_timeout, "lab sandbox down", destroy, each)


def sandbox_stop(lab: Lab, names: Sequence[str] = (), lease_timeout: float | None = None,
                 each: SandboxEvents | None = None) -> SandboxesDone:
    """Stop what the named sandboxes (all without names) run, keeping their files for reading; the next
    campaign, ``sandbox_up`` or ``sandbox_reset`` starts them clean. Idempotent."""

    def halt(provider: Provider, spec: SandboxSpec) -> SandboxOutcome:
        started = time.monotonic()
        provider.halt(spec)
        return SandboxOutcome(spec.name, spec.provider, "stop", time.monotonic() - started, provider.describe(spec))

    return for_each(lab, names, lease_timeout, "lab sandbox stop", halt, each)


def sandbox_list(lab: Lab, names: Sequence[str] = ()) -> SandboxRows:
    """The named sandboxes (all without names) with their state, port, lease holder and last reset."""
    config = lab.config
    rows = []
    for spec in selected(lab, names):
        try:
            info = provider_of(lab, spec).describe(spec)
        except LabError as exc:
            info = {"state": "unknown", "where": str(exc)}
        holder = holder_of(config, spec.name)
        rows.append(SandboxRow(spec.name, spec.provider, str(info.get("state", "?")), info.get("port"), holder,
                               info.get("since"), str(info.get("where", "-")), info.get("detail")))
    return SandboxRows(rows)


def selftest(lab: Lab, host: str, timeout: float = 300) -> SelftestOutcome:
    """Run every check type of runner.ps1 against ``host``, a Windows host of the inventory, within
    ``timeout`` seconds. NotFoundError for a host the inventory lacks; InfrastructureError when it
    cannot be reached."""
    run = run_selftest(lab.config, host, timeout)
    return SelftestOutcome(host, run.suite, tuple(run.results), run.facts)
