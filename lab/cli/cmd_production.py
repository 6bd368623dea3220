"""``lab production up|stop|down|status``: the production hosts that `lab rollout` deploys to."""

from __future__ import annotations

import click

from lab import api
from lab.cli.options import pass_lab


@click.group()
def production() -> None:
    """The production hosts that `lab rollout` deploys to (the rollout settings' inventory group)."""


@production.command("up")
@click.option("--rebuild", is_flag=True, help="Provision every local host again from a fresh tree.")
@pass_lab
def production_up(lab: api.Lab, rebuild: bool) -> None:
    """Provision the local production hosts with the baseline playbook: one Ansible run for all.

    Hosts already provisioned are left as they are (unless --rebuild). Exits 3 naming the hosts
    the baseline failed on.
    """
    outcome = api.production_up(lab, rebuild)
    click.echo(f"production: {len(outcome.provisioned)} host(s) provisioned, {len(outcome.already)} already up "
               f"({outcome.seconds:.1f}s)")


@production.command("stop")
@pass_lab
def production_stop(lab: api.Lab) -> None:
    """Stop what the local production hosts run, keeping their files (what each installed and logged).

    Static hosts are never touched. `lab production up` provisions stopped hosts again, fresh.
    """
    stopped = api.production_stop(lab)
    click.echo(f"production: {len(stopped.hosts)} local host(s) stopped; their files stay under the state dir")


@production.command("down")
@pass_lab
def production_down(lab: api.Lab) -> None:
    """Stop and remove the local production hosts (static hosts are never touched)."""
    removed = api.production_down(lab)
    click.echo(f"production: {len(removed.hosts)} local host(s) removed")


@production.command("status")
@pass_lab
def production_status(lab: api.Lab) -> None:
    """One line per production host: state, where it lives, what it runs."""
    for host in api.production_status(lab):
        runs = ", ".join(f"{p} {v}" for p, v in host.installed.items()) or "-"
        click.echo(f"{host.name:<14} {host.state:<7} {host.where}  runs: {runs}")
