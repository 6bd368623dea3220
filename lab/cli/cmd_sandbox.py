"""``lab sandbox up|stop|down|reset|list``: the lab's sandboxes, by hand, outside campaigns.

Every change takes the sandbox's lease first, so it never pulls a sandbox from under a
running campaign (it waits up to --lease-timeout, then says who holds it).
"""

from __future__ import annotations

import time

import click

from lab import api
from lab.cli.options import JSON, LEASE_TIMEOUT, NAMES, pass_lab
from lab.cli.render import print_json


def age(since: object) -> str:
    """How long ago the epoch time ``since`` was, as 42s, 7m, 3h or 2d ("-" if unknown)."""
    if not isinstance(since, int | float) or since <= 0:
        return "-"
    seconds = max(0.0, time.time() - since)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def print_outcome(outcome: api.SandboxOutcome) -> None:
    """One line per sandbox as it is done: what was done and how it stands now; a failure on stderr."""
    if outcome.error is not None:
        click.echo(f"lab: {outcome.name}: {outcome.error}", err=True)
        return
    info = outcome.info
    port = f", port {info['port']}" if info.get("port") else ""
    summary = f"{info.get('state', '?')}{port} ({outcome.provider}, {info.get('where', '-')})"
    if outcome.action == "down":
        click.echo(f"{outcome.name}: down")
    elif outcome.seconds is None:
        click.echo(f"{outcome.name}: {outcome.action}: {summary}")
    else:
        click.echo(f"{outcome.name}: {outcome.action} in {outcome.seconds:.2f}s: {summary}")


@click.group()
def sandbox() -> None:
    """Manage the lab's sandboxes by hand: bring them up, reset or remove them, list them.

    SANDBOX names are inventory hosts of the lab; without names, a command acts on all of them.
    """


@sandbox.command()
@NAMES
@LEASE_TIMEOUT
@pass_lab
def up(lab: api.Lab, names: tuple[str, ...], lease_timeout: float | None) -> int:
    """Start the sandboxes that are not running; those already up are left untouched."""
    return api.sandbox_up(lab, names, lease_timeout, each=print_outcome).code


@sandbox.command()
@NAMES
@LEASE_TIMEOUT
@pass_lab
def reset(lab: api.Lab, names: tuple[str, ...], lease_timeout: float | None) -> int:
    """Reset sandboxes to their clean state: everything written in them since is discarded."""
    return api.sandbox_reset(lab, names, lease_timeout, each=print_outcome).code


@sandbox.command()
@NAMES
@LEASE_TIMEOUT
@pass_lab
def rebaseline(lab: api.Lab, names: tuple[str, ...], lease_timeout: float | None) -> int:
    """Install the baseline afresh (one playbook run) and keep it as the golden image resets return to."""
    return api.sandbox_rebaseline(lab, names, lease_timeout, each=print_outcome).code


@sandbox.command()
@NAMES
@LEASE_TIMEOUT
@pass_lab
def stop(lab: api.Lab, names: tuple[str, ...], lease_timeout: float | None) -> int:
    """Stop what sandboxes run, keeping their files to read; the next campaign or `up` starts them clean."""
    return api.sandbox_stop(lab, names, lease_timeout, each=print_outcome).code


@sandbox.command()
@NAMES
@LEASE_TIMEOUT
@pass_lab
def down(lab: api.Lab, names: tuple[str, ...], lease_timeout: float | None) -> int:
    """Remove sandboxes: stop everything they run and delete their files. Safe to repeat."""
    return api.sandbox_down(lab, names, lease_timeout, each=print_outcome).code


@sandbox.command(name="list")
@NAMES
@JSON
@pass_lab
def list_sandboxes(lab: api.Lab, names: tuple[str, ...], as_json: bool) -> None:
    """List sandboxes: provider, state, port, who holds the lease, age since the last reset."""
    rows = api.sandbox_list(lab, names)
    if as_json:
        print_json(rows.to_json())
        return
    click.echo(f"{'sandbox':<16} {'provider':<10} {'state':<9} {'port':>6}  {'lease':<24} {'age':>5}  where")
    for row in rows:
        holder = row.holder or "-"
        click.echo(f"{row.name:<16} {row.provider:<10} {row.state:<9} {row.port or '-':>6}  "
                   f"{holder[:24]:<24} {age(row.since):>5}  {row.where}")
        if row.detail:
            click.echo(f"{'':<16} {row.detail}")
