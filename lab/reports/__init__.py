"""Reports: JUnit XML for CI, HTML for the change board, JSON for machines."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from lab.config.labfile import LabConfig
from lab.decision.gather import latest_campaign
from lab.evidence.store import Store
from lab.model import Build
from lab.reports.data import ReportData, gather
from lab.util.atomic import write_text

FORMATS = ("html", "junit", "json")
SUFFIX = {"html": ".html", "junit": ".junit.xml", "json": ".json"}


def render(data: ReportData, fmt: str) -> str:
    """The report of ``data`` in format ``fmt`` (html, junit or json)."""
    if fmt == "html":
        from lab.reports.html import html_report

        return html_report(data)
    if fmt == "junit":
        from lab.reports.junit import junit_xml

        return junit_xml(data)
    if fmt == "json":
        return json.dumps(data.to_json(), indent=2, sort_keys=True, default=str) + "\n"
    raise ValueError(f"unknown report format {fmt!r}")


def write_reports(data: ReportData, directory: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write each report atomically to ``directory/<campaign><suffix>``; return the paths."""
    written = []
    for fmt in formats:
        path = directory / f"{data.campaign.id}{SUFFIX[fmt]}"
        write_text(path, render(data, fmt))
        written.append(path)
    return written


def refresh(config: LabConfig, store: Store, build: Build, at: datetime | None = None) -> list[Path]:
    """Re-write the HTML, JUnit and JSON reports of ``build``'s latest campaign in the lab's reports
    directory (atomically, as ``lab report`` does), decided at ``at`` (default: the clock), so they
    show the build's current promotion path. Returns the paths written, HTML first; none when the
    build has no campaign."""
    campaign = latest_campaign(store, build)
    if campaign is None:
        return []
    return write_reports(gather(config, store, campaign, at), config.reports_dir)
