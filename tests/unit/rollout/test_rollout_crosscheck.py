"""Rollouts in the store against the audit entries that recorded them (``lab audit verify``'s
cross-check): a host's outcome, a rollout's end or its whole row changed behind lab's back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lab.evidence import audit
from lab.evidence.audit import Finding
from lab.evidence.store import Store
from lab.rollout.crosscheck import rollout_findings
from lab.rollout.records import RolloutRecord
from tests.unit.rollout.test_rollout_engine import Production, setup


def findings_in(store: Store) -> list[Finding]:
    """The rollout cross-check as ``lab audit verify`` runs it: the tables and the log in one snapshot."""
    with store.snapshot() as db:
        return rollout_findings(db, audit.read_log(db)[0])


def rolled_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unhealthy: set[str], waves: str) -> RolloutRecord:
    runner, build, _ = setup(tmp_path, waves, Production(unhealthy=unhealthy), monkeypatch)
    record = runner.start(build)
    assert findings_in(runner.store) == []
    return record


def findings_after(tmp_path: Path, *statements: str) -> list[tuple[str, int | None, str]]:
    database = tmp_path / "lab" / ".lab" / "lab.sqlite3"
    db = sqlite3.connect(database)
    with db:
        for statement in statements:
            db.execute(statement)
    db.close()
    store = Store(database)
    try:
        return [(f.where, f.seq, f.problem) for f in findings_in(store)]
    finally:
        store.close()


def test_a_host_outcome_changed_behind_labs_back_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = rolled_out(tmp_path, monkeypatch, {"prod-ts-03"},
                        "    - {hosts: 1}\n    - {hosts: 50%, max_failures: 1}\n    - {hosts: 100%}\n")
    rid = record.id
    found = findings_after(tmp_path, "UPDATE rollout_hosts SET state = 'healthy' WHERE host = 'prod-ts-03'")
    assert found == [
        (f"rollouts {rid}", 10, f"rollouts {rid}: the row's hosts rolled back on their own is [], but entry 10 "
                               "recorded ['prod-ts-03']"),
        (f"rollout_hosts {rid} wave 2", 7, f"rollout_hosts {rid} wave 2: the hosts per state are {{'healthy': 11}}, "
                                           "but entry 7 recorded {'healthy': 10, 'rolled_back': 1}"),
        (f"rollout_hosts {rid} prod-ts-03", 6, f"rollout_hosts {rid} prod-ts-03: the row says healthy, but entry 6 "
                                               "recorded it rolled_back"),
    ]


def test_a_halted_rollout_made_complete_and_a_rollout_without_entries(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    record = rolled_out(tmp_path, monkeypatch, {"prod-ts-01"}, "    - {hosts: 1}\n    - {hosts: 100%}\n")
    rid = record.id
    assert record.state.value == "halted"
    assert findings_after(tmp_path, f"UPDATE rollouts SET state = 'complete' WHERE id = '{rid}'") == [
        (f"rollouts {rid}", 6, f"rollouts {rid}: the row's state is 'complete', but entry 6 recorded 'halted'")]
    found = findings_after(tmp_path, f"INSERT INTO rollouts VALUES ('r-forged', 'care-planner', '2.0.0', "
                                     f"'{record.digest}', 'production', 'complete', 't', 't', 't', '')",
                           f"DELETE FROM rollout_hosts WHERE rollout_id = '{rid}'",
                           f"DELETE FROM rollout_waves WHERE rollout_id = '{rid}'",
                           f"DELETE FROM rollouts WHERE id = '{rid}'")
    assert found == [
        ("rollouts r-forged", None, "rollouts r-forged: no rollout-start entry in the audit log recorded this "
                                    "rollout (it was written behind lab's back)"),
        (f"rollouts {rid}", 2, f"rollouts {rid}: entry 2 (rollout-start) and 4 more speak of this rollout, but its "
                               "row is missing"),
    ]
