"""``lab promote`` and ``lab gate``: decide whether a build may enter a stage, and move it there."""

from __future__ import annotations

import click

from lab.campaign.builds import verified_build
from lab.cli.cmd_campaign import refresh_reports
from lab.cli.context import LabContext, pass_lab
from lab.cli.render import print_verdict
from lab.config import allowed_signers as signers
from lab.config.labfile import LabConfig
from lab.decision import promotion
from lab.errors import GateBlocked
from lab.util.clock import current

NOW = click.option("--now", "now_text", hidden=True, metavar="ISO-TIME",
                   help="Decide as if it were this time (tests, replays); default $LAB_NOW or the clock.")


def note_override(config: LabConfig) -> None:
    """Say so when approvals were verified against an overriding allowed_signers file."""
    line = signers.describe(config.agreement)
    if line:
        click.echo(line)


@click.command()
@click.argument("build_ref", metavar="PRODUCT@VERSION")
@click.option("--to", "stage", required=True, help="The stage the decision is about (e.g. production).")
@NOW
@pass_lab
def gate(lab: LabContext, build_ref: str, stage: str, now_text: str | None) -> int:
    """Decide whether a build may enter STAGE now, clause by clause, with the evidence used.

    Nothing moves; the decision is recorded in the audit log. Exits 0 when the gate allows the
    build, 1 when it blocks it.
    """
    config = lab.config
    build = verified_build(config.build_spec(build_ref), lab.store)
    verdict = promotion.decide(config, lab.store, build, stage, current(now_text))
    print_verdict(verdict, evidence=True)
    note_override(config)
    return 0 if verdict.allowed else 1


@click.command()
@click.argument("build_ref", metavar="PRODUCT@VERSION")
@click.option("--to", "stage", required=True, help="The stage to promote into (e.g. pilot).")
@NOW
@pass_lab
def promote(lab: LabContext, build_ref: str, stage: str, now_text: str | None) -> None:
    """Promote a build into STAGE: evaluates the gate on the stored evidence and records the promotion.

    The build must already be in the stage before (lab -> pilot -> production). Refuses (exit 1)
    with the decision's reasons when the gate blocks; repeating a promotion that is already
    recorded changes nothing and says so.
    """
    config = lab.config
    build = verified_build(config.build_spec(build_ref), lab.store)
    now = current(now_text)
    outcome = promotion.promote(config, lab.store, build, stage, now)
    if outcome.verdict is None:
        click.echo(f"{build.ref} was already promoted to {stage}; nothing changed")
        return
    print_verdict(outcome.verdict)
    note_override(config)
    if not outcome.verdict.allowed:
        raise GateBlocked(f"{build.ref} may not enter {stage}: " + "; ".join(outcome.verdict.reasons))
    if outcome.recorded:
        click.echo(f"{build.ref} promoted to {stage} (evidence: campaign {outcome.campaign_id})")
        refresh_reports(lab, build, now)
    else:
        click.echo(f"{build.ref} was already promoted to {stage}; nothing changed")
