"""The click options and arguments several commands share, and the session they receive."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from lab import api
from lab.util.clock import parse_instant

pass_lab = click.make_pass_decorator(api.Lab)


def injected_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """``--now TEXT`` as an instant (ConfigError, exit 2, when it is not one); None when not given."""
    return parse_instant(value, "--now") if value else None


NOW = click.option("--now", "now", hidden=True, metavar="ISO-TIME", callback=injected_time,
                   help="Decide as if it were this time (tests, replays); default $LAB_NOW or the clock.")
BUILD_REF = click.argument("build_ref", metavar="PRODUCT@VERSION")
CAMPAIGN_ID = click.argument("campaign_id", metavar="CAMPAIGN")
NO_REPORTS = click.option("--no-reports", is_flag=True, help="Do not write reports under the lab's reports directory.")
NO_WAIT = click.option("--no-wait", is_flag=True,
                       help="Stop at a pause between waves (exit 0) instead of waiting it out.")
KEY = click.option("--key", "key", required=True, type=click.Path(dir_okay=False, path_type=Path),
                   help="Your SSH private key (its path only is given to ssh-keygen), e.g. ~/.ssh/id_ed25519.")
AS = click.option("--as", "principal", metavar="PRINCIPAL",
                  help="Who you are in allowed_signers; default: the one principal listed for the key.")
NAMES = click.argument("names", nargs=-1, metavar="[SANDBOX]...")
LEASE_TIMEOUT = click.option(
    "--lease-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
    help="How long to wait for a campaign holding a sandbox. Default: lab.yml's timeouts.lease.")
