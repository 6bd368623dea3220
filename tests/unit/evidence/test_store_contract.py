"""The store contract: the same tests on SQLite and on a real PostgreSQL (``store_backend``).

Migrations from empty, every record module's write/read round trip, the audit chain (append, verify,
refusal to change, tamper found), the single-writer rule under concurrent writers, and the guard.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lab.config.rollout_plan import WavePlan
from lab.decision.records import promotion, promotions, record_promotion
from lab.errors import ConfigError
from lab.evidence import audit
from lab.evidence.migrations import registered
from lab.evidence.store import Store
from lab.evidence.tallies import campaign_tallies, troubled_checks
from lab.model import Build, CampaignState, CellOutcomes, CellState, Result, Status, StepRecord
from lab.rollout.records import HostState, RolloutState, RolloutStore, WaveState
from lab.signoff.records import add_signed, signed
from tests.support.postgres import Backend, postgres_cluster, store_backend

__all__ = ["postgres_cluster", "store_backend"]


def seeded(store: Store) -> tuple[Build, str]:
    build = store.register_build("app", "1.0", "d" * 64, Path("/srv/app-1.0.tgz"))
    campaign = store.create_campaign(build, [("sbx-1", "smoke"), ("sbx-2", "smoke")], Path("/lab/lab.yml"))
    return build, campaign.id


def test_migrations_from_empty_reach_every_registered_step(store_backend: Backend) -> None:
    store = store_backend.open()
    assert store.backend == store_backend.name
    assert store.schema_steps() == {s.feature: len(s.steps) for s in registered()}
    store.close()
    again = store_backend.open()  # reopening migrates nothing twice and is recognised as lab's
    assert again.schema_steps() == {s.feature: len(s.steps) for s in registered()}


def test_builds_campaigns_cells_results_and_steps_round_trip(store_backend: Backend) -> None:
    store = store_backend.open()
    _, campaign_id = seeded(store)
    assert store.register_build("app", "1.0", "d" * 64, Path("/elsewhere")).artifact == Path("/srv/app-1.0.tgz")
    store.register_build("app", "1.1", "e" * 64, Path("/srv/app-1.1.tgz"))
    assert [b.version for b in store.builds("app")] == ["1.0", "1.1"]
    assert [b.version for b in store.builds()] == ["1.0", "1.1"]
    store.start_cell(campaign_id, "sbx-1", "smoke")
    results = [Result("b-check", Status.FAIL, "100% broken", {"out": "x"}, 12, 1),
               Result("a-check", Status.PASS, "", {}, 3, 2)]
    assert store.finish_cell(campaign_id, "sbx-1", "smoke", results) is True
    assert store.finish_cell(campaign_id, "sbx-1", "smoke", results) is False  # exactly once
    cells = {c.sandbox: c for c in store.cells(campaign_id)}
    assert cells["sbx-1"].state is CellState.DONE and cells["sbx-2"].state is CellState.PENDING
    assert [r.check_id for r in cells["sbx-1"].results] == ["b-check", "a-check"]  # insertion order kept
    assert cells["sbx-1"].results[0].evidence == {"out": "x"} and cells["sbx-1"].results[0].message == "100% broken"
    # the same cells without evidence: check ids, statuses and messages in recording order
    assert store.outcomes(campaign_id) == [CellOutcomes.of(c) for c in store.cells(campaign_id)]
    assert [(c.sandbox, c.state, c.check_ids, c.statuses, c.messages) for c in store.outcomes(campaign_id)] == [
        ("sbx-1", CellState.DONE, ("b-check", "a-check"), (Status.FAIL, Status.PASS), ("100% broken", "")),
        ("sbx-2", CellState.PENDING, (), (), ())]
    step = StepRecord(campaign_id, "sbx-1", "deploy", True, False, "ok", "d" * 64, "t1", "t2")
    store.record_step(step)
    store.record_step(StepRecord(campaign_id, "sbx-1", "deploy", False, True, "again", None, "t3", "t4"))
    assert [(s.ok, s.infrastructure_error, s.detail) for s in store.steps(campaign_id)] == [(False, True, "again")]
    assert store.reopen_unfinished(campaign_id) == 0
    finished = store.finish_campaign(campaign_id)
    assert finished.state is CampaignState.FINISHED and store.campaign("latest").id == campaign_id
    tally = campaign_tallies(store, [finished])[0]
    assert tally.counts == {"fail": 1, "pass": 1}
    troubled = troubled_checks(store, "app")
    assert [(t.check_id, t.campaigns, t.fails, t.flaky) for t in troubled] == [("b-check", 1, 1, 0)]


def test_promotions_and_signed_records_round_trip(store_backend: Backend) -> None:
    store = store_backend.open()
    build, campaign_id = seeded(store)
    campaign = store.campaign(campaign_id)
    assert record_promotion(store, campaign, "pilot", {"ok": True}, "2026-01-01T00:00:00+00:00") is True
    assert record_promotion(store, campaign, "pilot", {"ok": False}) is False  # the first record stays
    assert promotion(store, "app", "1.0", "pilot")["verdict"] == '{"ok": true}'
    assert [p["stage"] for p in promotions(store, "app", "1.0")] == ["pilot"]
    first = add_signed(store, "approval", build, "kari", '{"stage": "pilot"}', "SIG1", "2026-01-01T00:00:00+00:00")
    second = add_signed(store, "waiver", build, "lars", '{"check": "x"}', "SIG2", "2026-01-02T00:00:00+00:00",
                        target=("sbx-1", "smoke", "x"))
    assert second.id == first.id + 1
    assert [(r.kind, r.principal, r.signature) for r in signed(store, "app", "1.0")] == [
        ("approval", "kari", "SIG1"), ("waiver", "lars", "SIG2")]
    with pytest.raises(Exception, match="append-only"), store.transaction() as db:
        db.execute("UPDATE signatures SET principal = 'mallory'")
    assert [r.principal for r in signed(store, "app", "1.0")] == ["kari", "lars"]


def test_rollout_records_round_trip(store_backend: Backend) -> None:
    store = store_backend.open()
    build, _ = seeded(store)
    rollouts = RolloutStore(store)
    waves = [WavePlan(1, "canary", ("h1",), 0, None, 0), WavePlan(2, "rest", ("h2", "h3"), None, 0.5, 60)]
    record = rollouts.create(build, "production", waves, {"h1": {"version": "0.9"}},
                             lambda r: [audit.Note("rollout-start", r.id, {"waves": len(r.waves)})])
    rollouts.set_wave(record.id, 1, WaveState.DEPLOYING, hosts=(HostState.DEPLOYING, ["h1"]))
    rollouts.set_host(record.id, "h1", HostState.HEALTHY, "ok", "d" * 64, {"suite": "health"})
    rollouts.set_wave(record.id, 1, WaveState.DONE, next_resume_at="2026-01-01T01:00:00+00:00")
    rollouts.end(record.id, RolloutState.HALTED, "halted", 1, lambda r: [audit.Note("rollout-halted", r.id, {})])
    got = rollouts.get(record.id)
    assert got.state is RolloutState.HALTED and got.finished_at is not None
    assert [(w.state, w.max_failure_rate) for w in got.waves] == [(WaveState.DONE, None),
                                                                  (WaveState.CANCELLED, 0.5)]
    assert got.waves[0].hosts[0].previous == {"version": "0.9"} and got.waves[0].hosts[0].health == {"suite": "health"}
    assert got.waves[1].resume_at == "2026-01-01T01:00:00+00:00"
    assert [h.state for h in got.waves[1].hosts] == [HostState.CANCELLED, HostState.CANCELLED]
    assert rollouts.latest("app") == got and rollouts.unfinished() == []
    assert rollouts.last_good("app", "h1") == {"version": "1.0", "digest": "d" * 64}
    assert [e.kind for e in audit.entries(store)] == ["rollout-start", "rollout-halted"]


def test_the_audit_chain_appends_verifies_and_refuses_change(store_backend: Backend) -> None:
    store = store_backend.open()
    with store.transaction() as db:
        for n in range(3):
            audit.append(db, "decision", f"app@1.{n}", {"n": n})
    check = audit.verify(store)
    assert check.ok and check.entries == 3
    for statement in ("UPDATE audit SET subject = 'x' WHERE seq = 2", "DELETE FROM audit WHERE seq = 3"):
        with pytest.raises(Exception, match="append-only"), store.transaction() as db:
            db.execute(statement)
    assert [e.subject for e in audit.entries(store)] == ["app@1.0", "app@1.1", "app@1.2"]


def test_tampering_past_the_triggers_is_found_at_the_first_bad_entry(store_backend: Backend) -> None:
    store = store_backend.open()
    with store.transaction() as db:
        for n in range(4):
            audit.append(db, "decision", f"app@1.{n}", {"n": n})
    drop = {"sqlite": "DROP TRIGGER audit_no_update",
            "postgresql": "ALTER TABLE audit DISABLE TRIGGER audit_no_update"}[store_backend.name]
    with store.transaction() as db:
        db.execute(drop)
        db.execute("UPDATE audit SET payload = ? WHERE seq = 3", ('{"n": 99}',))
    check = audit.verify(store)
    assert (check.ok, check.first_bad) == (False, 3) and "edited" in check.problem


def test_concurrent_writers_keep_one_unbroken_chain(store_backend: Backend) -> None:
    """Two controllers (two connections) appending at once: every entry lands, in one chain."""
    store_backend.open().close()
    stores = [store_backend.open(), store_backend.open()]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write(store: Store, name: str) -> None:
        try:
            start.wait()
            for n in range(25):
                with store.transaction() as db:
                    audit.append(db, "decision", f"{name}-{n}", {"n": n})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, f"writer{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = audit.verify(stores[0])
    assert check.ok and check.entries == 50
    assert [e.seq for e in audit.entries(stores[1])] == list(range(1, 51))


def test_a_foreign_database_is_refused_and_left_as_it_was(store_backend: Backend) -> None:
    if store_backend.name == "sqlite":
        import sqlite3

        path = store_backend.location.path
        assert path is not None
        sqlite3.connect(path).execute("CREATE TABLE invoices (id INTEGER)").connection.commit()
    else:
        import psycopg

        with psycopg.connect(store_backend.location.dsn, autocommit=True) as db:
            db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(ConfigError, match="not a lab store") as refused:
        store_backend.open()
    assert refused.value.exit_code == 2
    if store_backend.name == "postgresql":
        import psycopg

        with psycopg.connect(store_backend.location.dsn) as db:
            names = {r[0] for r in db.execute("SELECT table_name FROM information_schema.tables "
                                               "WHERE table_schema = current_schema()")}
        assert names == {"invoices"}


def test_a_store_of_a_newer_lab_is_refused(store_backend: Backend) -> None:
    store = store_backend.open()
    with store.transaction() as db:
        db.execute("UPDATE schema_steps SET steps = steps + 5 WHERE feature = 'evidence'")
    store.close()
    with pytest.raises(ConfigError, match="newer lab"):
        store_backend.open()
