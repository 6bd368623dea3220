"""``lab promote``: move a build into the next stage when the gate allows it."""

from __future__ import annotations

import click

from lab.builds import verified_build
from lab.cli.context import LabContext, pass_lab
from lab.cli.render import print_verdict
from lab.errors import GateBlocked
from lab.verdict import latest_campaign, verdict_for


@click.command()
@click.argument("build_ref", metavar="PRODUCT@VERSION")
@click.option("--to", "stage", required=True, help="The stage to promote into (e.g. pilot).")
@pass_lab
def promote(lab: LabContext, build_ref: str, stage: str) -> None:
    """Promote a build into STAGE: evaluates the gate on the stored evidence and records the promotion.

    Refuses (exit 1) with the verdict's reasons when the gate blocks; repeating a promotion that
    is already recorded changes nothing and says so.
    """
    config = lab.config
    build = verified_build(config.build_spec(build_ref), lab.store)
    verdict = verdict_for(config, lab.store, build, stage)
    print_verdict(verdict)
    if not verdict.allowed:
        raise GateBlocked(f"{build.ref} may not enter {stage}: " + "; ".join(verdict.reasons))
    campaign = latest_campaign(lab.store, build)
    assert campaign is not None  # an allowed verdict always rests on a campaign
    record = {"allowed": True, "clauses": [[c.name, c.outcome.value, c.detail] for c in verdict.clauses]}
    if lab.store.record_promotion(campaign, stage, record):
        click.echo(f"{build.ref} promoted to {stage} (evidence: campaign {campaign.id})")
    else:
        click.echo(f"{build.ref} was already promoted to {stage}; nothing changed")
