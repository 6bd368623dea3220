"""``lab promote`` and ``lab gate``: decide whether a build may enter a stage, and move it there."""

from __future__ import annotations

from datetime import datetime

import click

from lab import api
from lab.cli.options import BUILD_REF, JSON, NOW, pass_lab
from lab.cli.render import print_json, print_note, print_refresh, print_verdict


@click.command()
@BUILD_REF
@click.option("--to", "stage", required=True, help="The stage the decision is about (e.g. production).")
@NOW
@JSON
@pass_lab
def gate(lab: api.Lab, build_ref: str, stage: str, now: datetime | None, as_json: bool) -> int:
    """Decide whether a build may enter STAGE now, clause by clause, with the evidence used.

    Nothing moves; the decision is recorded in the audit log. Exits 0 when the gate allows the
    build, 1 when it blocks it.
    """
    decision = api.gate(lab, build_ref, stage, now)
    if as_json:
        print_json(decision.to_json())
    else:
        print_verdict(decision.verdict, evidence=True)
        print_note(decision.signers_note)
    return 0 if decision.verdict.allowed else 1


def print_promotion(promotion: api.Promotion) -> None:
    """The decision and what became of it: promoted, already promoted, or (printed before the refusal
    itself is raised) blocked."""
    outcome = promotion.outcome
    if outcome.verdict is None:
        click.echo(f"{outcome.build.ref} was already promoted to {outcome.stage}; nothing changed")
        return
    print_verdict(outcome.verdict)
    print_note(promotion.signers_note)
    if not outcome.verdict.allowed:
        return
    if outcome.recorded:
        click.echo(f"{outcome.build.ref} promoted to {outcome.stage} (evidence: campaign {outcome.campaign_id})")
        if outcome.sealing is not None:
            click.echo(outcome.sealing.line())
        print_refresh(promotion.refreshed)
    else:
        click.echo(f"{outcome.build.ref} was already promoted to {outcome.stage}; nothing changed")


@click.command()
@BUILD_REF
@click.option("--to", "stage", required=True, help="The stage to promote into (e.g. pilot).")
@NOW
@pass_lab
def promote(lab: api.Lab, build_ref: str, stage: str, now: datetime | None) -> None:
    """Promote a build into STAGE: evaluates the gate on the stored evidence and records the promotion.

    The build must already be in the stage before (lab -> pilot -> production). Refuses (exit 1)
    with the decision's reasons when the gate blocks; repeating a promotion that is already
    recorded changes nothing and says so.
    """
    try:
        promotion = api.promote(lab, build_ref, stage, now)
    except api.PromotionRefused as refused:
        print_promotion(refused.promotion)
        raise
    print_promotion(promotion)
