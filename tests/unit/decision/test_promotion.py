"""Promotions: one stage at a time, atomic, exactly one record when two processes race, idempotent."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.config.labfile import load_lab
from lab.decision.promotion import promote
from lab.decision.records import promotion, promotions
from lab.evidence import audit
from lab.evidence.store import Store
from lab.util.clock import parse_instant
from tests.support.lab_fixtures import BUILD, T0, T_OPEN, SeededLab
from tests.support.labfiles import CliResult

Cli = Callable[..., CliResult]


def race_worker(lab_yml: str, stage: str, barrier: Any, results: Any) -> None:
    """One process of the race: load the lab, wait for the other, promote."""
    config = load_lab(Path(lab_yml))
    store = Store(config.state_dir / "lab.sqlite3")
    build = store.build("care-planner", "2.0.0")
    assert build is not None
    barrier.wait(timeout=60)
    outcome = promote(config, store, build, stage, parse_instant(T0))
    results.put(("recorded" if outcome.recorded else "already" if outcome.already else "blocked",
                 outcome.promoted_at))
    store.close()


def test_two_processes_racing_give_exactly_one_promotion(seeded: SeededLab) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=race_worker, args=(str(seeded.lab_yml), "pilot", barrier, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == [("already", "2026-12-01T10:00:00+00:00"), ("recorded", "2026-12-01T10:00:00+00:00")]
    db = sqlite3.connect(seeded.config.state_dir / "lab.sqlite3")
    assert db.execute("SELECT version, stage, campaign_id, promoted_at FROM promotions").fetchall() == [
        ("2.0.0", "pilot", seeded.campaign.id, "2026-12-01T10:00:00+00:00")]
    assert [e.subject for e in audit.entries(seeded.store, "promotion")] == [f"{BUILD} -> pilot"]
    assert len(audit.entries(seeded.store, "decision")) == 1  # the loser found the promotion done: no decision
    assert audit.verify(seeded.store).ok


def test_promotion_goes_one_stage_at_a_time(seeded: SeededLab, lab_cli: Cli) -> None:
    early = seeded.cli(lab_cli, "promote", BUILD, "--to", "production", "--now", T_OPEN)
    assert early.code == 1
    assert early.err.startswith(f"lab: {BUILD} may not enter production: {BUILD} is not in pilot; promote it to "
                                "pilot first; 2d in pilot required; the build is not there yet; ")
    assert "  [NO ] previous stage: care-planner@2.0.0 is not in pilot; promote it to pilot first\n" in early.out
    assert promotions(seeded.store, "care-planner", "2.0.0") == []
    unknown = seeded.cli(lab_cli, "promote", BUILD, "--to", "staging")
    assert (unknown.code, unknown.err) == (2, "lab: unknown stage 'staging'; stages in agreement.yml: lab, pilot, "
                                              "production\n")
    gateless = seeded.cli(lab_cli, "promote", BUILD, "--to", "lab")
    assert gateless.code == 2 and "stage 'lab' has no gate in agreement.yml" in gateless.err


def test_repeating_a_done_promotion_changes_nothing_for_every_stage(seeded: SeededLab, keys: dict[str, Path],
                                                                   lab_cli: Cli) -> None:
    assert seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0).code == 0
    for name in ("kari", "lars"):
        assert seeded.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys[name]),
                          "--now", T0).code == 0
    done = seeded.cli(lab_cli, "promote", BUILD, "--to", "production", "--now", T_OPEN)
    assert done.code == 0, done.err
    assert done.out.endswith(f"{BUILD} promoted to production (evidence: campaign {seeded.campaign.id})\n"
                             "audit chain not sealed: no audit.checkpoint_key in lab.yml; name the lab's signing "
                             "key there (audit: {checkpoint_key: PATH}) or seal with `lab audit checkpoint --key "
                             "KEY`\n"
                             f"report refreshed: {seeded.config.reports_dir / seeded.campaign.id}.html "
                             "(and .junit.xml, .json)\n")
    before = audit.entries(seeded.store)
    rows = promotions(seeded.store, "care-planner", "2.0.0")
    for stage, at in (("pilot", T_OPEN), ("production", "2026-12-25T12:00:00Z")):  # even in the freeze
        again = seeded.cli(lab_cli, "promote", BUILD, "--to", stage, "--now", at)
        assert (again.code, again.out) == (0, f"{BUILD} was already promoted to {stage}; nothing changed\n")
    assert audit.entries(seeded.store) == before
    assert promotions(seeded.store, "care-planner", "2.0.0") == rows
    assert [(r["stage"], r["promoted_at"]) for r in rows] == [("pilot", "2026-12-01T10:00:00+00:00"),
                                                              ("production", "2026-12-04T17:00:00+00:00")]


def test_a_closed_window_refuses_and_names_the_next_one(seeded: SeededLab, keys: dict[str, Path], lab_cli: Cli) -> None:
    assert seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0).code == 0
    for name in ("kari", "lars"):
        seeded.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys[name]), "--now", T0)
    refused = seeded.cli(lab_cli, "promote", BUILD, "--to", "production", "--now", "2026-12-04T10:00:00Z")
    assert refused.code == 1
    assert refused.err == (f"lab: {BUILD} may not enter production: closed at 2026-12-04 11:00 Europe/Oslo (Fri) "
                           "(outside weekdays 18:00-06:00 Europe/Oslo; weekends 00:00-24:00 Europe/Oslo); "
                           "next open window: 2026-12-04 18:00 Europe/Oslo (Fri) (2026-12-04T17:00:00+00:00)\n")
    assert refused.out.endswith("next open window: 2026-12-04T17:00:00+00:00\n")
    frozen = seeded.cli(lab_cli, "gate", BUILD, "--to", "production", "--now", "2026-12-21T18:00:00Z")
    assert frozen.code == 1
    assert ("[NO ] window: closed at 2026-12-21 19:00 Europe/Oslo (Mon) (in freeze 2026-12-20..2027-01-06 "
            "Europe/Oslo (year-end freeze)); next open window: 2027-01-07 00:00 Europe/Oslo (Thu) "
            "(2027-01-06T23:00:00+00:00)") in frozen.out


def test_lab_now_in_the_environment_is_the_clock(seeded: SeededLab, lab_cli: Cli, monkeypatch: Any) -> None:
    monkeypatch.setenv("LAB_NOW", "2026-12-02T08:00:00+02:00")
    assert seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot").code == 0
    assert promotion(seeded.store, "care-planner", "2.0.0", "pilot")["promoted_at"] == "2026-12-02T06:00:00+00:00"  # type: ignore[index]
    monkeypatch.setenv("LAB_NOW", "tomorrow")
    bad = seeded.cli(lab_cli, "gate", BUILD, "--to", "production")
    assert (bad.code, bad.err) == (2, "lab: $LAB_NOW 'tomorrow' is not an ISO 8601 time; write e.g. "
                                      "2026-12-01T12:00:00Z\n")
