"""The store: migrations, WAL, and cells that are finished exactly once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lab.decision.records import PROMOTIONS, promotions, record_promotion
from lab.errors import NotFoundError
from lab.evidence.migrations import Schema, Step, register, registered, statements
from lab.evidence.store import EVIDENCE, Store
from lab.model import Build, CampaignState, CellState, Result, Status
from lab.rollout.records import ROLLOUT
from lab.signoff.records import SIGNOFF, signed
from tests.unit.evidence.legacy_schema import SCHEMA_VERSIONS

FEATURES = (EVIDENCE, SIGNOFF, PROMOTIONS, ROLLOUT)  # imported above, so registered before any store opens


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "lab.sqlite3")


def build(store: Store) -> Build:
    return store.register_build("app", "1.0", "d" * 64, Path("/tmp/app.tgz"))


def schema_of(path: Path) -> dict[str, str]:
    """Every table, index and trigger of the database at ``path`` with its SQL, but the migration bookkeeping."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    db.close()
    return {name: " ".join(sql.split()) for name, sql in rows if name not in ("schema_version", "schema_steps")}


def legacy_store(path: Path, version: int) -> None:
    """A store as lab made it before issue 9, at store-wide ``schema_version`` ``version``."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (?)", (version,))
    for script in SCHEMA_VERSIONS[:version]:
        for statement in statements(script):
            db.execute(statement)
    db.execute("INSERT INTO builds VALUES ('app', '1.0', ?, '/tmp/app.tgz', '2026-01-01T00:00:00+00:00')", ("d" * 64,))
    db.close()


def test_fresh_store_is_migrated_and_in_wal_mode(store: Store, tmp_path: Path) -> None:
    steps = {schema.feature: len(schema.steps) for schema in registered()}
    assert store.schema_steps() == steps
    assert {f.feature for f in FEATURES} <= set(steps) and steps["evidence"] >= 2
    db = sqlite3.connect(tmp_path / "lab.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"builds", "campaigns", "cells", "results", "steps", "promotions", "schema_steps", "signatures",
            "audit", "audit_head", "rollouts", "rollout_waves", "rollout_hosts"} <= tables
    triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert {"audit_no_update", "audit_no_delete", "signatures_no_update", "signatures_no_delete"} <= triggers
    store.close()
    assert Store(tmp_path / "lab.sqlite3").schema_steps() == steps  # reopening migrates nothing twice


def test_a_store_of_schema_1_is_migrated_keeping_its_data(tmp_path: Path) -> None:
    legacy_store(tmp_path / "old.sqlite3", 1)
    store = Store(tmp_path / "old.sqlite3")
    assert store.schema_steps() == {schema.feature: len(schema.steps) for schema in registered()}
    assert store.build("app", "1.0") is not None and signed(store, "app", "1.0") == []


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_store_made_before_per_feature_steps_opens_as_it_is(tmp_path: Path, version: int) -> None:
    legacy_store(tmp_path / "old.sqlite3", version)
    Store(tmp_path / "old.sqlite3").close()
    Store(tmp_path / "fresh.sqlite3").close()
    assert schema_of(tmp_path / "old.sqlite3") == schema_of(tmp_path / "fresh.sqlite3")
    db = sqlite3.connect(tmp_path / "old.sqlite3")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(version,)]  # left as it was
    assert db.execute("SELECT product, version FROM builds").fetchall() == [("app", "1.0")]


def test_migration_statements_keep_trigger_bodies_whole() -> None:
    found = statements("CREATE TABLE t (a);\nCREATE TRIGGER x BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no'); END;")
    assert found == ["CREATE TABLE t (a);", "CREATE TRIGGER x BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no'); END;"]
    # the store-wide version 1 of old stores is now the evidence core's step 1 and the promotions' step 1
    assert len(statements(SCHEMA_VERSIONS[0])) == 6
    assert sum(len(statements(step.script)) for f in FEATURES for step in f.steps if step.legacy == 1) == 6


def test_a_feature_gains_its_tables_in_a_store_opened_before_it_registered(store: Store, tmp_path: Path) -> None:
    late = Schema("late-feature", (Step("CREATE TABLE late (a);"), Step("ALTER TABLE late ADD COLUMN b;")))
    store.ensure(late)
    store.ensure(late)  # once per store: nothing runs twice
    assert store.schema_steps()["late-feature"] == 2
    with store.reading() as db:
        assert [r[1] for r in db.execute("PRAGMA table_info(late)")] == ["a", "b"]
    assert "late-feature" not in {s.feature for s in registered()}
    with pytest.raises(ValueError, match="a different schema is already registered for feature 'evidence'"):
        register(Schema("evidence", ()))
    assert register(EVIDENCE) is EVIDENCE


def test_a_build_keeps_its_first_digest(store: Store) -> None:
    first = build(store)
    again = store.register_build("app", "1.0", "e" * 64, Path("/tmp/other.tgz"))
    assert again.digest == first.digest == "d" * 64


def test_cells_finish_exactly_once(store: Store) -> None:
    campaign = store.create_campaign(build(store), [("s1", "smoke"), ("s2", "smoke")], Path("lab.yml"))
    assert [c.state for c in store.cells(campaign.id)] == [CellState.PENDING, CellState.PENDING]
    store.start_cell(campaign.id, "s1", "smoke")
    results = [Result("a", Status.PASS, "ok", {"x": 1}, 5, 1), Result("b", Status.FAIL, "no", {}, 7, 2)]
    assert store.finish_cell(campaign.id, "s1", "smoke", results) is True
    assert store.finish_cell(campaign.id, "s1", "smoke", results) is False
    cells = {c.sandbox: c for c in store.cells(campaign.id)}
    assert cells["s1"].state is CellState.DONE
    assert [(r.check_id, r.status, r.evidence) for r in cells["s1"].results] == [
        ("a", Status.PASS, {"x": 1}), ("b", Status.FAIL, {})]
    assert cells["s2"].results == ()


def test_reopen_puts_running_cells_back_and_keeps_done_ones(store: Store) -> None:
    campaign = store.create_campaign(build(store), [("s1", "smoke"), ("s2", "smoke")], Path("lab.yml"))
    store.start_cell(campaign.id, "s1", "smoke")
    store.finish_cell(campaign.id, "s1", "smoke", [Result("a", Status.PASS, "ok", {}, 1, 1)])
    store.start_cell(campaign.id, "s2", "smoke")  # the process dies here
    store.finish_campaign(campaign.id)
    assert store.reopen_unfinished(campaign.id) == 1
    states = {c.sandbox: c.state for c in store.cells(campaign.id)}
    assert states == {"s1": CellState.DONE, "s2": CellState.PENDING}
    assert store.campaign(campaign.id).state is CampaignState.RUNNING


def test_latest_and_unknown_campaigns(store: Store) -> None:
    first = store.create_campaign(build(store), [("s1", "smoke")], Path("lab.yml"))
    second = store.create_campaign(build(store), [("s1", "smoke")], Path("lab.yml"))
    assert store.campaign("latest").id == second.id != first.id
    with pytest.raises(NotFoundError, match="unknown campaign 'nope'"):
        store.campaign("nope")


def test_a_promotion_is_recorded_once(store: Store) -> None:
    campaign = store.create_campaign(build(store), [("s1", "smoke")], Path("lab.yml"))
    assert record_promotion(store, campaign, "pilot", {"allowed": True}) is True
    assert record_promotion(store, campaign, "pilot", {"allowed": True}) is False
    assert [p["stage"] for p in promotions(store, "app", "1.0")] == ["pilot"]


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    campaign = store.create_campaign(build(store), [("s1", "smoke")], Path("lab.yml"))
    duplicate = [Result("a", Status.PASS, "", {}, 1, 1), Result("a", Status.PASS, "", {}, 1, 1)]
    with pytest.raises(sqlite3.IntegrityError):
        store.finish_cell(campaign.id, "s1", "smoke", duplicate)
    cell = store.cells(campaign.id)[0]
    assert (cell.state, cell.results) == (CellState.PENDING, ())


def test_opening_a_migrated_store_takes_no_write_lock(tmp_path: Path) -> None:
    Store(tmp_path / "lab.sqlite3").close()
    writer = sqlite3.connect(tmp_path / "lab.sqlite3", isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # another process is mid-write (a campaign, a rollout)
    try:
        reader = Store(tmp_path / "lab.sqlite3")  # waiting for the writer would take 30 s, then fail
        assert reader.campaigns() == [] and signed(reader, "app", "1.0") == []
    finally:
        writer.execute("ROLLBACK")
