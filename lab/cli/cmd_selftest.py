"""``lab selftest``: run the built-in Windows self-test on a real host and say which check types work."""

from __future__ import annotations

import click

from lab import api
from lab.cli.options import Seconds, pass_lab
from lab.reports.data import printable


@click.command()
@click.argument("host")
@click.option("--timeout", type=Seconds(min=1, max=86400), default=300, show_default=True,
              help="Seconds the whole self-test may take on the host.")
@pass_lab
def selftest(lab: api.Lab, host: str, timeout: float) -> int:
    """Run every check type of runner.ps1 against HOST, a Windows host of the inventory, and print which pass.

    Use it once on a Windows Server 2022 VM of the lab before the first campaign: it proves the
    WinRM settings, the PowerShell runner and each check type on the real thing. Exits 0 when
    every check passes, 1 when some do not, 3 when the host cannot be reached.
    """
    outcome = api.selftest(lab, host, timeout)
    facts = outcome.facts.lines() if outcome.facts else ["not reported (the host does not run the PowerShell runner)"]
    for line in facts:
        click.echo(f"host  {printable(line)}")
    by_id = {c.id: c for c in outcome.suite.checks}
    for result in outcome.results:
        kind = by_id[result.check_id].type if result.check_id in by_id else "part"
        click.echo(f"{result.status.value.upper():<5} {kind:<9} {printable(result.check_id)}: "
                   f"{printable(result.message)[:200]}")
    click.echo(f"{outcome.passed}/{len(outcome.results)} self-test checks passed on {host}")
    return outcome.code
