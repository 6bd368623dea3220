"""``lab run``, ``resume``, ``list``, ``show`` and ``report``: campaigns and their evidence."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from lab.campaign.builds import verified_build
from lab.campaign.runner import CampaignRunner
from lab.cli.context import LabContext, pass_lab
from lab.cli.progress import ProgressPrinter
from lab.cli.render import print_campaign, print_path
from lab.model import Build, Campaign
from lab.reports import FORMATS, refresh, render, write_reports
from lab.reports.data import ReportData, gather


def outcome_code(data: ReportData) -> int:
    """0 promotable; 3 blocked with an infrastructure error on the way; 1 blocked otherwise."""
    if data.verdict.allowed:
        return 0
    if any(step.infrastructure_error for step in data.steps):
        return 3
    return 1


def finish(lab: LabContext, campaign: Campaign, write: bool) -> int:
    data = gather(lab.config, lab.store, campaign)
    print_campaign(data, details=True)
    if write:
        for path in write_reports(data, lab.config.reports_dir):
            click.echo(f"report: {path}")
    return outcome_code(data)


def refresh_reports(lab: LabContext, build: Build, at: datetime | None = None) -> None:
    """After something changed where ``build`` stands (a promotion, a signed record, a rollout):
    re-write the reports of its latest campaign (``lab.reports.refresh``, decided at ``at``) and
    say which in one line. A report that cannot be written is said on stderr and does not undo or
    fail what was recorded; a build without a campaign has no report, and nothing is said."""
    try:
        paths = refresh(lab.config, lab.store, build, at)
    except OSError as exc:
        click.echo(f"lab: the reports of {build.ref} were not refreshed ({exc}); `lab report CAMPAIGN` writes them",
                   err=True)
        return
    if paths:
        also = ", ".join(path.name.removeprefix(paths[0].stem) for path in paths[1:])
        click.echo(f"report refreshed: {paths[0]} (and {also})")


@click.command()
@click.argument("build_ref", metavar="PRODUCT@VERSION")
@click.option("--no-reports", is_flag=True, help="Do not write reports under the lab's reports directory.")
@pass_lab
def run(lab: LabContext, build_ref: str, no_reports: bool) -> int:
    """Run a campaign of a registered build over every sandbox x suite, then report.

    Exits 0 when the build may enter the first gated stage, 1 when the gate blocks it, 3 when
    the lab itself failed (sandbox unreachable, Ansible could not run).
    """
    config = lab.config
    build = verified_build(config.build_spec(build_ref), lab.store)
    printer = ProgressPrinter()
    click.echo(f"campaign of {build.ref} (sha256 {build.digest[:12]}…) on {len(config.sandboxes)} sandbox(es), "
               f"{config.parallel} at a time", err=True)
    try:
        campaign = CampaignRunner(config, lab.store, printer).start(build)
    finally:
        printer.finish()
    return finish(lab, campaign, not no_reports)


@click.command()
@click.argument("campaign_id", metavar="CAMPAIGN")
@click.option("--no-reports", is_flag=True, help="Do not write reports under the lab's reports directory.")
@pass_lab
def resume(lab: LabContext, campaign_id: str, no_reports: bool) -> int:
    """Finish an interrupted campaign: finished cells are kept, unfinished ones run again.

    CAMPAIGN is an id from `lab list`, or `latest`. Exit codes as for `lab run`.
    """
    config = lab.config
    campaign = lab.store.campaign(campaign_id)
    build = verified_build(config.build_spec(campaign.build_ref), lab.store)
    printer = ProgressPrinter()
    try:
        campaign = CampaignRunner(config, lab.store, printer).resume(campaign.id, build)
    finally:
        printer.finish()
    return finish(lab, campaign, not no_reports)


@click.command(name="list")
@pass_lab
def list_campaigns(lab: LabContext) -> None:
    """List the campaigns in the store, oldest first, with their state and cells done."""
    campaigns = lab.store.campaigns()
    if not campaigns:
        click.echo("no campaigns yet; start one with `lab run PRODUCT@VERSION`")
        return
    click.echo(f"{'campaign':<22} {'build':<24} {'state':<9} {'cells':>7}  sha256")
    for campaign in campaigns:
        cells = lab.store.cells(campaign.id)
        done = sum(1 for c in cells if c.state.value == "done")
        click.echo(f"{campaign.id:<22} {campaign.build_ref:<24} {campaign.state.value:<9} "
                   f"{done:>3}/{len(cells):<3}  {campaign.digest[:12]}")


@click.command()
@click.argument("campaign_id", metavar="CAMPAIGN")
@pass_lab
def show(lab: LabContext, campaign_id: str) -> None:
    """Show a campaign: every cell, every failing check, the verdict and where its build stands on
    the promotion path (stages, signed records, latest rollout). CAMPAIGN may be `latest`."""
    data = gather(lab.config, lab.store, lab.store.campaign(campaign_id))
    print_campaign(data, details=True)
    print_path(data.path)


@click.command()
@click.argument("campaign_id", metavar="CAMPAIGN")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html for the change board, junit for CI, json for machines.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of the lab's reports directory; '-' for standard output.")
@pass_lab
def report(lab: LabContext, campaign_id: str, fmt: str, output: Path | None) -> None:
    """Write a campaign's report (written atomically). CAMPAIGN may be `latest`."""
    data = gather(lab.config, lab.store, lab.store.campaign(campaign_id))
    if output is not None and str(output) == "-":
        click.echo(render(data, fmt), nl=False)
        return
    if output is not None:
        from lab.util.atomic import write_text

        write_text(output, render(data, fmt))
        click.echo(f"report: {output}")
        return
    for path in write_reports(data, lab.config.reports_dir, (fmt,)):
        click.echo(f"report: {path}")
