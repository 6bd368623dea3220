"""``lab worker --queue ZONE``: serve one zone's campaign cells and rollout shards on this machine."""

from __future__ import annotations

import click

from lab import api
from lab.cli.options import pass_lab


@click.command()
@click.option("--queue", "zone", required=True, metavar="ZONE",
              help="The zone whose tasks this worker runs: a `lab_zone` of the inventory (default zones: "
                   "`lab` for sandboxes, `production` for production hosts).")
@pass_lab
def worker(lab: api.Lab, zone: str) -> None:
    """Run a Celery worker for ZONE's queue until stopped (lab.yml's executor section: kind celery).

    It takes one task at a time and acknowledges it when done, runs only tasks signed with the
    key in executor.key_file, reaches hosts with this machine's inventory, secrets and vault,
    takes builds from the artifact share by sha256, and never writes the store: outcomes go back
    to the controller.
    """
    api.worker(lab, zone)
