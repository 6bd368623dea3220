"""``lab run``, ``resume``, ``list``, ``show`` and ``report``: campaigns and their evidence."""

from __future__ import annotations

from pathlib import Path

import click

from lab import api
from lab.cli.options import BUILD_REF, CAMPAIGN_ID, JSON, NO_REPORTS, outputs, pass_lab, report_outputs
from lab.cli.progress import ProgressPrinter
from lab.cli.render import print_campaign, print_json, print_path, print_reports


@click.command()
@BUILD_REF
@NO_REPORTS
@report_outputs
@pass_lab
def run(lab: api.Lab, build_ref: str, no_reports: bool, html_output: Path | None, junit_output: Path | None,
        json_output: Path | None) -> int:
    """Run a campaign of a registered build over every sandbox x suite, then report.

    PRODUCT@latest runs the build of PRODUCT registered last (e.g. tonight's, by `lab build
    PRODUCT --version V --source DIR`). Exits 0 when the build may enter the first gated stage, 1
    when the gate blocks it, 3 when the lab itself failed (sandbox unreachable, Ansible could not run).
    """
    printer = ProgressPrinter()
    try:
        outcome = api.run(lab, build_ref, reports=not no_reports, events=printer,
                          outputs=outputs(html_output, junit_output, json_output))
    finally:
        printer.finish()
    print_campaign(outcome.data, details=True)
    print_reports(outcome.reports)
    return outcome.code


@click.command()
@CAMPAIGN_ID
@NO_REPORTS
@report_outputs
@pass_lab
def resume(lab: api.Lab, campaign_id: str, no_reports: bool, html_output: Path | None, junit_output: Path | None,
           json_output: Path | None) -> int:
    """Finish an interrupted campaign: finished cells are kept, unfinished ones run again.

    CAMPAIGN is an id from `lab list`, or `latest`. Exit codes as for `lab run`.
    """
    printer = ProgressPrinter()
    try:
        outcome = api.resume(lab, campaign_id, reports=not no_reports, events=printer,
                             outputs=outputs(html_output, junit_output, json_output))
    finally:
        printer.finish()
    print_campaign(outcome.data, details=True)
    print_reports(outcome.reports)
    return outcome.code


@click.command(name="list")
@JSON
@pass_lab
def list_campaigns(lab: api.Lab, as_json: bool) -> None:
    """List the campaigns in the store, oldest first, with their state and cells done."""
    rows = api.list_campaigns(lab)
    if as_json:
        print_json(rows.to_json())
        return
    if not rows:
        click.echo("no campaigns yet; start one with `lab run PRODUCT@VERSION`")
        return
    width = max(24, *(len(row.campaign.build_ref) for row in rows))
    click.echo(f"{'campaign':<22} {'build':<{width}} {'state':<9} {'cells':>7}  sha256")
    for row in rows:
        campaign = row.campaign
        click.echo(f"{campaign.id:<22} {campaign.build_ref:<{width}} {campaign.state.value:<9} "
                   f"{row.done:>3}/{row.cells:<3}  {campaign.digest[:12]}")


@click.command()
@CAMPAIGN_ID
@JSON
@pass_lab
def show(lab: api.Lab, campaign_id: str, as_json: bool) -> None:
    """Show a campaign: every cell, every failing check, the verdict and where its build stands on
    the promotion path (stages, signed records, latest rollout). CAMPAIGN may be `latest`."""
    data = api.show(lab, campaign_id)
    if as_json:
        print_json(data.to_json())
        return
    print_campaign(data, details=True)
    print_path(data.path)


@click.command()
@CAMPAIGN_ID
@click.option("--format", "fmt", type=click.Choice(api.REPORT_FORMATS), default="html", show_default=True,
              help="html for the change board, junit for CI, json for machines.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of the lab's reports directory; '-' for standard output.")
@pass_lab
def report(lab: api.Lab, campaign_id: str, fmt: str, output: Path | None) -> None:
    """Write a campaign's report (written atomically). CAMPAIGN may be `latest`."""
    to_stdout = output is not None and str(output) == "-"
    written = api.report(lab, campaign_id, fmt, None if to_stdout else output, as_text=to_stdout)
    if written.text is not None:
        click.echo(written.text, nl=False)
    print_reports(written.paths)
