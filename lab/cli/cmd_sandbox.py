"""``lab sandbox up|down|reset|list``: the lab's sandboxes, by hand, outside campaigns.

Every change takes the sandbox's lease first, so it never pulls a sandbox from under a
running campaign (it waits up to --lease-timeout, then says who holds it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from lab.cli.context import LabContext, pass_lab
from lab.errors import LabError
from lab.model import SandboxSpec
from lab.sandboxes.base import LabSite, SandboxProvider, provider_for
from lab.sandboxes.lease import current_holder, lease

UP_STATES = {"running", "ready", "static"}  # static hosts exist outside the lab: nothing to bring up
NAMES = click.argument("names", nargs=-1, metavar="[SANDBOX]...")
LEASE_TIMEOUT = click.option(
    "--lease-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
    help="How long to wait for a campaign holding a sandbox. Default: lab.yml's timeouts.lease.")


def selected(lab: LabContext, names: tuple[str, ...]) -> list[SandboxSpec]:
    """The named sandboxes (NotFoundError for an unknown name), or all of them."""
    config = lab.config
    return [config.sandbox(name) for name in names] if names else list(config.sandboxes)


def provider_of(lab: LabContext, spec: SandboxSpec) -> SandboxProvider:
    """The provider of ``spec``, set up as a campaign sets it up."""
    config = lab.config
    site = LabSite(config.root, config.inventory.path, config.timeouts.playbook)
    return provider_for(spec.provider, config.state_dir, site)


def age(since: object) -> str:
    """How long ago the epoch time ``since`` was, as 42s, 7m, 3h or 2d ("-" if unknown)."""
    if not isinstance(since, int | float) or since <= 0:
        return "-"
    seconds = max(0.0, time.time() - since)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def for_each(lab: LabContext, names: tuple[str, ...], lease_timeout: float | None, holder: str,
             action: Callable[[SandboxProvider, SandboxSpec], str | None]) -> int:
    """Run ``action`` on each selected sandbox under its lease; print one line each.

    Returns 0, or the exit code of the first failure (the others are still attempted).
    """
    config = lab.config
    wait = config.timeouts.lease if lease_timeout is None else lease_timeout
    code = 0
    for spec in selected(lab, names):
        try:
            with lease(config.state_dir, spec.name, holder, wait):
                message = action(provider_of(lab, spec), spec)
        except LabError as exc:
            click.echo(f"lab: {spec.name}: {exc}", err=True)
            code = code or exc.exit_code
            continue
        if message:
            click.echo(f"{spec.name}: {message}")
    return code


def summary(provider: SandboxProvider, spec: SandboxSpec) -> str:
    """One line on the sandbox's state, port, provider and location, from ``describe``."""
    info = provider.describe(spec)
    port = f", port {info['port']}" if info.get("port") else ""
    return f"{info.get('state', '?')}{port} ({spec.provider}, {info.get('where', '-')})"


@click.group()
def sandbox() -> None:
    """Manage the lab's sandboxes by hand: bring them up, reset or remove them, list them.

    SANDBOX names are inventory hosts of the lab; without names, a command acts on all of them.
    """


@sandbox.command()
@NAMES
@LEASE_TIMEOUT
@pass_lab
def up(lab: LabContext, names: tuple[str, ...], lease_timeout: float | None) -> int:
    """Start the sandboxes that are not running; those already up are left untouched."""

    def bring_up(provider: SandboxProvider, spec: SandboxSpec) -> str:
        if provider.describe(spec).get("state") in UP_STATES:
            return f"already up: {summary(provider, spec)}"
        started = time.monotonic()
        provider.reset(spec)
        return f"up in {time.monotonic() - started:.2f}s: {summary(provider, spec)}"

    return for_each(lab, names, lease_timeout, "lab sandbox up", bring_up)


@sandbox.command()
@NAMES
@LEASE_TIMEOUT
@pass_lab
def reset(lab: LabContext, names: tuple[str, ...], lease_timeout: float | None) -> int:
    """Reset sandboxes to their clean state: everything written in them since is discarded."""

    def do_reset(provider: SandboxProvider, spec: SandboxSpec) -> str:
        started = time.monotonic()
        provider.reset(spec)
        return f"reset in {time.monotonic() - started:.2f}s: {summary(provider, spec)}"

    return for_each(lab, names, lease_timeout, "lab sandbox reset", do_reset)


@sandbox.command()
@NAMES
@LEASE_TIMEOUT
@pass_lab
def down(lab: LabContext, names: tuple[str, ...], lease_timeout: float | None) -> int:
    """Remove sandboxes: stop everything they run and delete their files. Safe to repeat."""

    def destroy(provider: SandboxProvider, spec: SandboxSpec) -> str:
        provider.destroy(spec)
        return "down"

    return for_each(lab, names, lease_timeout, "lab sandbox down", destroy)


@sandbox.command(name="list")
@NAMES
@pass_lab
def list_sandboxes(lab: LabContext, names: tuple[str, ...]) -> None:
    """List sandboxes: provider, state, port, who holds the lease, age since the last reset."""
    config = lab.config
    click.echo(f"{'sandbox':<16} {'provider':<10} {'state':<9} {'port':>6}  {'lease':<24} {'age':>5}  where")
    for spec in selected(lab, names):
        try:
            info = provider_of(lab, spec).describe(spec)
        except LabError as exc:
            info = {"state": "unknown", "where": str(exc)}
        holder = current_holder(config.state_dir / "leases" / f"{spec.name}.lock") or "-"
        click.echo(f"{spec.name:<16} {spec.provider:<10} {info.get('state', '?'):<9} {info.get('port') or '-':>6}  "
                   f"{holder[:24]:<24} {age(info.get('since')):>5}  {info.get('where', '-')}")
        if info.get("detail"):
            click.echo(f"{'':<16} {info['detail']}")
