"""The click options and arguments several commands share, and the session they receive."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from lab import api
from lab.util.clock import parse_instant

pass_lab = click.make_pass_decorator(api.Lab)


class Seconds(click.FloatRange):
    """A finite number of seconds within bounds (click's FloatRange lets nan and inf through)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number: float = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds; write e.g. 120", param, ctx)
        return number


def injected_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """``--now TEXT`` as an instant (ConfigError, exit 2, when it is not one); None when not given."""
    return parse_instant(value, "--now") if value else None


NOW = click.option("--now", "now", hidden=True, metavar="ISO-TIME", callback=injected_time,
                   help="Decide as if it were this time (tests, replays); default $LAB_NOW or the clock.")
BUILD_REF = click.argument("build_ref", metavar="PRODUCT@VERSION")
CAMPAIGN_ID = click.argument("campaign_id", metavar="CAMPAIGN")
NO_REPORTS = click.option("--no-reports", is_flag=True, help="Do not write reports under the lab's reports directory.")
JSON = click.option("--json", "as_json", is_flag=True,
                    help="Print one JSON document on standard output (and nothing else there); fields in the README.")


def report_outputs(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--junit PATH --html PATH --json PATH``: write those reports there too (CI artifact collection)."""
    for fmt, what in (("json", "the JSON report"), ("html", "the HTML report"), ("junit", "the JUnit XML")):
        command = click.option(f"--{fmt}", f"{fmt}_output", metavar="PATH",
                               type=click.Path(dir_okay=False, path_type=Path),
                               help=f"Also write {what} to PATH (atomically), e.g. for CI to collect.")(command)
    return command


def outputs(html: Path | None, junit: Path | None, json: Path | None) -> dict[str, Path]:
    """The report paths given on the command line, by format."""
    return {fmt: path for fmt, path in (("html", html), ("junit", junit), ("json", json)) if path is not None}


NO_WAIT = click.option("--no-wait", is_flag=True,
                       help="Stop at a pause between waves (exit 0) instead of waiting it out.")
KEY = click.option("--key", "key", required=True, type=click.Path(dir_okay=False, path_type=Path),
                   help="Your SSH private key (its path only is given to ssh-keygen), e.g. ~/.ssh/id_ed25519.")
AS = click.option("--as", "principal", metavar="PRINCIPAL",
                  help="Who you are in allowed_signers; default: the one principal listed for the key.")
NAMES = click.argument("names", nargs=-1, metavar="[SANDBOX]...")
LEASE_TIMEOUT = click.option(
    "--lease-timeout", type=Seconds(min=0, max=86400), default=None, metavar="SECONDS",
    help="How long to wait for a campaign holding a sandbox. Default: lab.yml's timeouts.lease.")
