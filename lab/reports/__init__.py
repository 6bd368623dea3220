"""Reports: JUnit XML for CI, HTML for the change board, JSON for machines.

Each format is one row of ``REPORT_FORMATS`` (``lab.reports.formats``): its name (``lab report
--format``), the suffix of its file, the text around its results section and the section itself. A
new format is one module with those two functions plus one row there; ``FORMATS``, ``SUFFIX``,
``render`` and the CLI's ``--format`` choice follow from the table.

A run and ``lab report`` write a campaign's reports whole; ``refresh`` brings a build's reports up
to date after a decision and renders only what the decision changes (``lab.reports.parts``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path

from lab.config.labfile import LabConfig
from lab.decision.gather import latest_campaign
from lab.evidence.store import Store
from lab.model import Build, CellOutcomes
from lab.reports.data import ReportData, ReportSummary, complete, gather, summarise
from lab.reports.export import json_report
from lab.reports.formats import BY_NAME, FORMATS, REPORT_FORMATS, SUFFIX, WRITTEN, ReportFormat, render, report_format
from lab.reports.parts import results_key, write_report
from lab.reports.portfolio import write_portfolio

__all__ = ["BY_NAME", "FORMATS", "REPORT_FORMATS", "SUFFIX", "WRITTEN", "ReportFormat", "json_report", "refresh",
           "render", "write_build_pages"]


class CampaignMoved(Exception):
    """A campaign's cells changed between the read of its summary and that of its results."""


def write_pages(config: LabConfig, store: Store, summary: ReportSummary, formats: tuple[str, ...],
                whole: Callable[[], ReportData], reuse: bool) -> list[Path]:
    """Write ``summary``'s reports in ``formats`` in the lab's reports directory (``reuse`` and
    ``whole`` as for ``lab.reports.parts.write_report``) and, whenever the HTML page is among them,
    the portfolio page (``index.html``) after them, so it never lags behind a build's page. Returns
    the paths of the reports (the portfolio's is ``reports_dir/index.html``)."""
    key = results_key(summary)
    written = [write_report(config, summary, report_format(fmt), key, whole, reuse) for fmt in formats]
    if "html" in formats:
        write_portfolio(config, store, datetime.fromisoformat(summary.path.evaluated_at), summary)
    return written


def write_build_pages(config: LabConfig, store: Store, data: ReportData,
                      formats: tuple[str, ...] = WRITTEN) -> list[Path]:
    """Write ``data``'s reports, each rendered whole, in the lab's reports directory, then the
    portfolio page when the HTML page is among them (``write_pages``); their paths."""
    return write_pages(config, store, data, formats, lambda: data, reuse=False)


def refresh(config: LabConfig, store: Store, build: Build, at: datetime | None = None) -> list[Path]:
    """Bring the HTML, JUnit and JSON reports of ``build``'s latest campaign in the lab's reports
    directory up to date, decided at ``at`` (default: the clock), so they show the build's current
    promotion path, and the portfolio page with them. Only what changed is rendered: the results are
    decoded only for a report whose results section cannot be kept (``lab.reports.parts``); after a
    promotion, an approval or a rollout, none. Returns the paths of the build's reports, HTML first;
    none when the build has no campaign."""
    campaign = latest_campaign(store, build)
    if campaign is None:
        return []
    summary = summarise(config, store, campaign, at)

    @cache
    def whole() -> ReportData:
        cells = tuple(store.cells(campaign.id))
        if tuple(CellOutcomes.of(c) for c in cells) != summary.outcomes:
            raise CampaignMoved(campaign.id)
        return complete(summary, cells)

    try:
        return write_pages(config, store, summary, WRITTEN, whole, reuse=True)
    except CampaignMoved:  # cells finished meanwhile: written whole, from one read
        return write_build_pages(config, store, gather(config, store, campaign, at))
