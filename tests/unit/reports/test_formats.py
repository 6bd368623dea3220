"""Report formats are one table: its rows give the CLI's choices, the file suffixes and the renderers."""

from __future__ import annotations

from typing import Any

import pytest

from lab.cli.app import cli
from lab.reports import FORMATS, REPORT_FORMATS, SUFFIX, WRITTEN, render
from lab.reports.export import json_around, json_results
from lab.reports.formats import nothing_around
from lab.reports.html import html_around, html_results
from lab.reports.junit import junit_gitlab_xml, junit_xml


def test_the_table_gives_names_suffixes_and_renderers() -> None:
    assert [(f.name, f.suffix) for f in REPORT_FORMATS] == [("html", ".html"), ("junit", ".junit.xml"),
                                                             ("json", ".json"), ("junit-gitlab", ".gitlab.junit.xml")]
    assert FORMATS == ("html", "junit", "json", "junit-gitlab")
    assert WRITTEN == ("html", "junit", "json")
    assert SUFFIX == {"html": ".html", "junit": ".junit.xml", "json": ".json", "junit-gitlab": ".gitlab.junit.xml"}
    assert [(f.around, f.results) for f in REPORT_FORMATS] == [
        (html_around, html_results), (nothing_around, junit_xml), (json_around, json_results),
        (nothing_around, junit_gitlab_xml)]


def test_lab_report_offers_exactly_the_formats_of_the_table() -> None:
    option: Any = next(p for p in cli.commands["report"].params if p.name == "fmt")
    assert tuple(option.type.choices) == FORMATS


def test_an_unknown_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^unknown report format 'pdf'; formats: html, junit, json, junit-gitlab$"):
        render(None, "pdf")  # type: ignore[arg-type]  # refused before the data is looked at
