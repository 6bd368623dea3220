"""Reports: JUnit XML for CI, HTML for the change board, JSON for machines.

Each format is one row of ``REPORT_FORMATS``: its name (``lab report --format``), the suffix of
the file it is written to and the function that renders it. A new format is one module with a
``ReportData -> str`` function plus one row here; ``FORMATS``, ``SUFFIX``, ``render`` and the
CLI's ``--format`` choice follow from the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lab.config.labfile import LabConfig
from lab.decision.gather import latest_campaign
from lab.evidence.store import Store
from lab.model import Build
from lab.reports.data import ReportData, gather
from lab.reports.html import html_report
from lab.reports.junit import junit_gitlab_xml, junit_xml
from lab.reports.portfolio import write_portfolio
from lab.util.atomic import write_text


@dataclass(frozen=True)
class ReportFormat:
    """One report format: its name, the suffix of its file and how it is rendered."""

    name: str
    suffix: str
    render: Callable[[ReportData], str]


def json_report(data: ReportData) -> str:
    """The report as JSON for machines: sorted keys, indented, one trailing newline."""
    return json.dumps(data.to_json(), indent=2, sort_keys=True, default=str) + "\n"


REPORT_FORMATS = (
    ReportFormat("html", ".html", html_report),
    ReportFormat("junit", ".junit.xml", junit_xml),
    ReportFormat("json", ".json", json_report),
    ReportFormat("junit-gitlab", ".gitlab.junit.xml", junit_gitlab_xml),  # on request only (see WRITTEN)
)
FORMATS = tuple(f.name for f in REPORT_FORMATS)
SUFFIX = {f.name: f.suffix for f in REPORT_FORMATS}
BY_NAME = {f.name: f for f in REPORT_FORMATS}
WRITTEN = ("html", "junit", "json")  # what every run and every refresh writes


def render(data: ReportData, fmt: str) -> str:
    """The report of ``data`` in format ``fmt`` (one of ``FORMATS``); ValueError for any other name."""
    found = BY_NAME.get(fmt)
    if found is None:
        raise ValueError(f"unknown report format {fmt!r}; formats: {', '.join(FORMATS)}")
    return found.render(data)


def write_reports(data: ReportData, directory: Path, formats: tuple[str, ...] = WRITTEN) -> list[Path]:
    """Write each report atomically to ``directory/<campaign><suffix>``; return the paths."""
    written = []
    for fmt in formats:
        path = directory / f"{data.campaign.id}{SUFFIX[fmt]}"
        write_text(path, render(data, fmt))
        written.append(path)
    return written


def write_build_pages(config: LabConfig, store: Store, data: ReportData,
                      formats: tuple[str, ...] = WRITTEN) -> list[Path]:
    """Write ``data``'s reports in the lab's reports directory and, whenever the HTML page is among
    them, the portfolio page (``index.html``) after them, so it never lags behind a build's page.
    Returns the paths of ``data``'s reports (the portfolio's is ``reports_dir/index.html``)."""
    written = write_reports(data, config.reports_dir, formats)
    if "html" in formats:
        write_portfolio(config, store, datetime.fromisoformat(data.path.evaluated_at), data)
    return written


def refresh(config: LabConfig, store: Store, build: Build, at: datetime | None = None) -> list[Path]:
    """Re-write the HTML, JUnit and JSON reports of ``build``'s latest campaign in the lab's reports
    directory (atomically, as ``lab report`` does), decided at ``at`` (default: the clock), so they
    show the build's current promotion path, and the portfolio page with them. Returns the paths
    of the build's reports, HTML first; none when the build has no campaign."""
    campaign = latest_campaign(store, build)
    if campaign is None:
        return []
    return write_build_pages(config, store, gather(config, store, campaign, at))
