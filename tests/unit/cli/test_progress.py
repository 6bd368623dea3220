"""The lab engineer's view of a campaign and a rollout: a live rich table in a terminal, plain
timestamped lines elsewhere (or with CI set)."""

from __future__ import annotations

import io
import re

import pytest

from lab.api import CampaignStarting, RolloutEvent
from lab.campaign.cells import Progress
from lab.cli.progress import ProgressPrinter, RolloutPrinter, wants_live

STAMP = r"\d\d:\d\d:\d\d "


def campaign_events() -> list[CampaignStarting | Progress]:
    return [
        CampaignStarting("care-planner@2.1.0", "c8" * 32, 2, 2),
        Progress("c1", "ts-sbx-01", "start", "reset", True, "", 0, 4),
        Progress("c1", "ts-sbx-01", "step", "reset", True, "reset to golden image", 0, 4),
        Progress("c1", "ts-sbx-02", "start", "deploy", True, "", 0, 4),
        Progress("c1", "ts-sbx-01", "start", "verify portfolio-compat", True, "", 0, 4),
        Progress("c1", "ts-sbx-01", "cell", "portfolio-compat", False, "5/9 ok, 4 failed or errored", 1, 4),
    ]


def test_plain_lines_carry_their_time_and_say_what_starts() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=False)
    for event in campaign_events():
        printer(event)
    printer.finish()
    lines = out.getvalue().splitlines()
    assert all(re.match(STAMP, line) for line in lines), lines
    assert [line[9:] for line in lines] == [
        "campaign of care-planner@2.1.0 (sha256 c8c8c8c8c8c8…) on 2 sandbox(es), 2 at a time",
        "[0/4] ts-sbx-01: reset started",
        "[0/4] ts-sbx-01: step reset: ok (reset to golden image)",
        "[0/4] ts-sbx-02: deploy started",
        "[0/4] ts-sbx-01: verify portfolio-compat started",
        "[1/4] ts-sbx-01: cell portfolio-compat: FAIL (5/9 ok, 4 failed or errored)",
    ]


def test_the_live_table_has_a_row_per_sandbox_with_the_step_now_and_keeps_failures_above() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=True)
    for event in campaign_events():
        printer(event)
    table = printer.__rich__()
    assert [c.header for c in table.columns] == ["sandbox", "now", "for", "cells done", "failed"]
    assert list(table.columns[0].cells) == ["ts-sbx-01", "ts-sbx-02"]
    assert list(table.columns[1].cells) == ["portfolio-compat FAILED", "deploy"]
    assert (list(table.columns[3].cells), list(table.columns[4].cells)) == (["1", "0"], ["1", "0"])
    printer.finish()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert re.search(STAMP + r"\[1/4\] ts-sbx-01: cell portfolio-compat: FAIL", text)  # printed above, kept
    assert "started" not in text  # starts only move the table's rows
    assert "campaign of care-planner@2.1.0 (sha256 c8c8c8c8c8c8…) [1/4 cells]" in text  # the table as it ended


WAIT = Progress("c2", "ts-sbx-01", "wait", "lease", True, "sandbox ts-sbx-01 is held by campaign c1 (lab run "
                "care-planner@2.0.0 on host lab-ci-2, pid 4711); waiting (up to 120s)", 0, 4)


def test_a_wait_for_another_campaign_is_said_once_naming_the_holder() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=False)
    printer(WAIT)
    printer(Progress("c2", "ts-sbx-01", "start", "reset", True, "", 0, 4))
    assert [line[9:] for line in out.getvalue().splitlines()] == [
        "[0/4] sandbox ts-sbx-01 is held by campaign c1 (lab run care-planner@2.0.0 on host lab-ci-2, pid 4711); "
        "waiting (up to 120s)",
        "[0/4] ts-sbx-01: reset started"]
    live = io.StringIO()
    printer = ProgressPrinter(live, live=True)
    printer(WAIT)
    assert printer.rows["ts-sbx-01"].now == "waiting for its lease"
    printer.finish()
    text = " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", live.getvalue()).split())  # unwrapped
    assert re.search(STAMP + r"\[0/4\] sandbox ts-sbx-01 is held by campaign c1 \(lab run care-planner@2.0.0 on "
                     r"host lab-ci-2, pid 4711\); waiting \(up to 120s\)", text)  # kept above the table


def test_rollout_lines_and_wave_rows() -> None:
    out = io.StringIO()
    printer = RolloutPrinter(out, live=False)
    printer(RolloutEvent("r1", 0, 2, "plan", True, "care-planner@2.2.0 to 3 production host(s)"))
    printer(RolloutEvent("r1", 1, 2, "deploy", True, "deploying to 1 host(s)", 1))
    printer(RolloutEvent("r1", 1, 2, "host", True, "prod-ts-01 healthy"))
    printer(RolloutEvent("r1", 1, 2, "host", False, "prod-ts-01 unhealthy: plans-a-route fail"))
    printer.finish()
    assert [line[9:] for line in out.getvalue().splitlines()] == [
        "[rollout] care-planner@2.2.0 to 3 production host(s)", "[wave 1/2] deploying to 1 host(s)",
        "[wave 1/2] ! prod-ts-01 unhealthy: plans-a-route fail"]
    row = printer.rows[" 1/2"]
    assert (row.now, row.done, row.failed, row.total, row.ok) == ("deploy", 1, 1, 1, False)


@pytest.mark.parametrize(("tty", "ci", "live"), [(True, "", True), (True, "true", False), (False, "", False)])
def test_live_only_in_a_terminal_without_ci(monkeypatch: pytest.MonkeyPatch, tty: bool, ci: str, live: bool) -> None:
    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    monkeypatch.setenv("CI", ci)
    assert wants_live(Stream()) is live
