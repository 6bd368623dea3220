"""The report as JSON for machines: sorted keys, indented by two, one trailing newline.

Written member by member, each member's value dumped on its own, so that the value of ``cells``
(every result: the bulk of the document) is rendered apart from the rest (``json_around``). The
text is exactly that of one ``json.dumps`` of the whole document with ``indent=2, sort_keys=True``.
"""

from __future__ import annotations

import json
from typing import Any

from lab.reports.data import ReportData, ReportSummary

RESULTS = "cells"  # the member that holds every result


def member(value: Any) -> str:
    """``value`` as JSON text at the document's first level: each nested line indented two more
    (a JSON string never holds a raw newline, so every newline is one of the layout's)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str).replace("\n", "\n  ")


def json_around(summary: ReportSummary) -> tuple[str, str]:
    """The document but the value of its ``cells``: the text before that value and after it."""
    members = {name: member(value) for name, value in summary.json_members().items()}
    names = sorted([*members, RESULTS])
    at = names.index(RESULTS)
    lines = [f"  {json.dumps(name)}: {members.get(name, '')}" for name in names]
    return "{\n" + "".join(f"{line},\n" for line in lines[:at]) + lines[at], \
        "".join(f",\n{line}" for line in lines[at + 1:]) + "\n}\n"


def json_results(data: ReportData) -> str:
    """The value of the document's ``cells``: every cell with each of its results."""
    return member(data.cells_json())


def json_report(data: ReportData) -> str:
    """The report as JSON for machines."""
    before, after = json_around(data)
    return before + json_results(data) + after
