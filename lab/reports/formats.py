"""The report formats, one row each: its name (``lab report --format``), the suffix of its file, the
text around its results section, rendered from a campaign's summary alone, and the results section,
rendered from its decoded results. A format's report is the three put together (``render``).

The results section of every format is a function of the campaign's results and of the failures a
waiver covers, never of the promotion path, so a decision (promote, approve, rollout) re-renders
only the text around it (``lab.reports.parts``). JUnit is all results: nothing around them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lab.reports.data import ReportData, ReportSummary
from lab.reports.export import json_around, json_results
from lab.reports.html import html_around, html_results
from lab.reports.junit import junit_gitlab_xml, junit_xml


def nothing_around(summary: ReportSummary) -> tuple[str, str]:
    """A format that is all results (JUnit): no text before or after them."""
    return "", ""


@dataclass(frozen=True)
class ReportFormat:
    """One report format: its name, the suffix of its file, the text ``around`` its results section
    (before, after) and its ``results`` section."""

    name: str
    suffix: str
    around: Callable[[ReportSummary], tuple[str, str]]
    results: Callable[[ReportData], str]

    def render(self, data: ReportData) -> str:
        """The whole report of ``data``."""
        before, after = self.around(data)
        return before + self.results(data) + after


REPORT_FORMATS = (
    ReportFormat("html", ".html", html_around, html_results),
    ReportFormat("junit", ".junit.xml", nothing_around, junit_xml),
    ReportFormat("json", ".json", json_around, json_results),
    ReportFormat("junit-gitlab", ".gitlab.junit.xml", nothing_around, junit_gitlab_xml),  # on request only
)
FORMATS = tuple(f.name for f in REPORT_FORMATS)
SUFFIX = {f.name: f.suffix for f in REPORT_FORMATS}
BY_NAME = {f.name: f for f in REPORT_FORMATS}
WRITTEN = ("html", "junit", "json")  # what every run and every refresh writes


def report_format(name: str) -> ReportFormat:
    """The format named ``name`` (one of ``FORMATS``); ValueError for any other name."""
    found = BY_NAME.get(name)
    if found is None:
        raise ValueError(f"unknown report format {name!r}; formats: {', '.join(FORMATS)}")
    return found


def render(data: ReportData, fmt: str) -> str:
    """The report of ``data`` in format ``fmt`` (one of ``FORMATS``); ValueError for any other name."""
    return report_format(fmt).render(data)
