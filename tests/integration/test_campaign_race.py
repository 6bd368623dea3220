"""Two controllers racing for the same sandboxes, for real: two `lab run` processes started at the
same moment on one lab, build A (which passes) and build B (which the gate blocks), both wanting
the lab's two local sandboxes; the store on PostgreSQL (leases are advisory locks there) and on
SQLite (file locks).

- each campaign ends with its own verdict: A promotable (exit 0, all 24 checks passed), B blocked
  (exit 1, exactly its known failures), as when each runs alone;
- no sandbox was used by both at once: every step and cell of the campaign that waited began after
  the last one of the winner's had ended (the times the store recorded), and each sandbox itself
  was last reset after the winner was done with it and holds the build of the one that waited;
- the one that waited said so once, naming the holder as it is: the winner's campaign id, its
  command, this host and the winner's pid.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from lab.config.store_location import StoreLocation
from lab.evidence import audit
from lab.evidence.store import Store
from tests.integration.test_demo import COMPAT_FAILURES
from tests.support.labfiles import copy_default_lab, lab_command, run_lab, stop_local_sandboxes
from tests.support.postgres import Cluster, postgres_cluster

__all__ = ["postgres_cluster"]
pytestmark = pytest.mark.integration

A, B = "care-planner@2.0.0", "care-planner@2.1.0"
EXIT = {A: 0, B: 1}
SANDBOXES = ("ts-sbx-01", "ts-sbx-02")
B_FAILURES = ({(s, "portfolio-compat", check) for s in SANDBOXES for check in COMPAT_FAILURES}
              | {(s, "care-planner-hygiene", "release-notes") for s in SANDBOXES})
LEASE_WAIT = 600  # lab.yml's timeouts: lease: long enough for the winner's whole campaign on a busy machine


@pytest.fixture(params=["postgresql", "sqlite"])
def race_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, StoreLocation]]:
    """The default lab with two sandboxes, builds A and B registered; its store on a new database of
    the test process's PostgreSQL cluster (``store:`` in lab.yml), or on SQLite in its state_dir."""
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=2)
    text = lab_yml.read_text()
    assert "  lease: 120\n" in text
    text = text.replace("  lease: 120\n", f"  lease: {LEASE_WAIT}\n")
    if request.param == "postgresql":
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        location = StoreLocation(dsn=cluster.create_database())
        text += f"store: {location.dsn}\n"
    else:
        location = StoreLocation(path=lab_yml.parent / ".lab" / "lab.sqlite3")
    lab_yml.write_text(text)
    try:
        for ref in (A, B):
            built = run_lab(lab_yml, "build", ref)
            assert built.returncode == 0, built.stderr
        yield lab_yml, location
    finally:
        stop_local_sandboxes(lab_yml)


def instant(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def span(store: Store, campaign_id: str, sandbox: str | None = None) -> tuple[datetime, datetime]:
    """From the first step begun to the last step or cell ended, as the store recorded them (on
    ``sandbox`` only, when given)."""
    steps = [s for s in store.steps(campaign_id) if sandbox in (None, s.sandbox)]
    cells = [c for c in store.cells(campaign_id) if sandbox in (None, c.sandbox)]
    assert steps and cells
    return (min(instant(s.started_at) for s in steps),
            max([instant(s.finished_at) for s in steps] + [instant(c.finished_at) for c in cells]))


def test_two_lab_runs_racing_for_the_same_sandboxes_take_turns_and_the_waiting_one_says_who_holds_them(
        race_lab: tuple[Path, StoreLocation]) -> None:
    lab_yml, location = race_lab
    env = {k: v for k, v in os.environ.items() if k not in ("LAB_STORE", "LAB_NOW")} | {"CI": "1"}
    runs = {ref: subprocess.Popen([*lab_command(), "--lab", str(lab_yml), "run", ref, "--no-reports"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for ref in (A, B)}  # at the same moment
    outputs = {ref: proc.communicate(timeout=900) for ref, proc in runs.items()}
    for ref, proc in runs.items():
        assert proc.returncode == EXIT[ref], outputs[ref]

    # each its own verdict
    verdicts = {ref: [line for line in outputs[ref][0].splitlines() if line.startswith(f"{ref} (sha256 ")]
                for ref in (A, B)}
    assert [line.split("): ", 1)[1] for line in verdicts[A]] == ["PROMOTABLE to pilot"]
    assert [line.split("): ", 1)[1] for line in verdicts[B]] == ["BLOCKED from pilot"]
    store = Store(location)
    try:
        campaigns = {c.build_ref: c for c in store.campaigns()}
        assert sorted(campaigns) == [A, B] and {c.state.value for c in campaigns.values()} == {"finished"}
        statuses = {ref: {(cell.sandbox, cell.suite, r.check_id): r.status.value
                          for cell in store.cells(campaigns[ref].id) for r in cell.results} for ref in (A, B)}
        assert len(statuses[A]) == len(statuses[B]) == 24
        assert set(statuses[A].values()) == {"pass"}
        assert {key for key, status in statuses[B].items() if status != "pass"} == B_FAILURES

        # one waited, and said so once, naming the winner as it is
        said = {ref: [line[9:] for line in outputs[ref][1].splitlines() if " is held by " in line] for ref in (A, B)}
        assert sorted(len(lines) for lines in said.values()) == [0, 1], said
        waiter = next(ref for ref, lines in said.items() if lines)
        winner = B if waiter == A else A
        assert said[waiter] == [
            f"[0/6] sandbox ts-sbx-01 is held by campaign {campaigns[winner].id} (lab run {winner} on host "
            f"{socket.gethostname()}, pid {runs[winner].pid}); waiting (up to {LEASE_WAIT}s)"]

        # never both on one sandbox: the waiter began after the winner had ended, on each sandbox and overall
        for sandbox in SANDBOXES:
            assert span(store, campaigns[winner].id, sandbox)[1] <= span(store, campaigns[waiter].id, sandbox)[0]
        winner_done = span(store, campaigns[winner].id)[1]
        assert winner_done <= span(store, campaigns[waiter].id)[0]
        assert audit.verify(store).ok
    finally:
        store.close()
    for sandbox in SANDBOXES:  # what each sandbox itself says: last reset after the winner, the waiter's build
        home = lab_yml.parent / ".lab" / "sandboxes" / sandbox
        assert json.loads((home / "facts.json").read_text())["reset_at"] > winner_done.timestamp()
        installed = json.loads((home / "root" / "var" / "lib" / "lab" / "installed" / "care-planner.json").read_text())
        assert (installed["version"], installed["digest"]) == (campaigns[waiter].version, campaigns[waiter].digest)
