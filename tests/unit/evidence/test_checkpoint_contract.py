"""The audit seal's store contract: the same tests on SQLite and on a real PostgreSQL (``store_backend``).

Checkpoints written in the writer's transaction (and gone with it when it rolls back), their
rows append-only, and ``lab audit verify``'s store-level checks (``lab.api.records.verdict_of``):
a chain rewritten with every later hash and the head recomputed, a tail cut off with the head
moved back, and promotions, signed records and rollouts changed behind lab's back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.api.records import AuditVerdict, verdict_of
from lab.config.rollout_plan import RolloutSettings, WavePlan
from lab.decision.records import insert_promotion
from lab.errors import ConfigError
from lab.evidence import audit
from lab.evidence.audit import entry_hash
from lab.evidence.checkpoints import checkpoints
from lab.evidence.db import Connection
from lab.evidence.store import Store
from lab.model import Build, Campaign
from lab.rollout.audit import ended, started
from lab.rollout.records import RolloutState, RolloutStore
from lab.signoff.checkpoints import NAMESPACE, Sealer, Sealing
from lab.signoff.records import add_signed
from lab.util.canonical import canonical_json
from tests.support.lab_fixtures import key_pub, make_key
from tests.support.postgres import Backend, postgres_cluster, store_backend

__all__ = ["postgres_cluster", "store_backend"]

PRINCIPAL = "lab-audit@example.no"
AT = "2026-01-01T00:00:00+00:00"
GUARDED = ("audit", "audit_checkpoints", "signatures")


@pytest.fixture(scope="module")
def lab_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The lab's checkpoint key and an allowed_signers listing it for the checkpoint namespace only."""
    directory = tmp_path_factory.mktemp("keys")
    key = make_key(directory, "lab-audit")
    key_type, blob = key_pub(key)
    signers = directory / "allowed_signers"
    signers.write_text(f'{PRINCIPAL} namespaces="{NAMESPACE}" {key_type} {blob}\n')
    return key, signers


def sealer(lab_key: tuple[Path, Path], required: bool = False, key: Path | None = None) -> Sealer:
    return Sealer("contract", key or lab_key[0], PRINCIPAL, lab_key[1], required)


def seeded(store: Store) -> tuple[Build, Campaign]:
    build = store.register_build("app", "1.0", "d" * 64, Path("/srv/app-1.0.tgz"))
    campaign = store.create_campaign(build, [("sbx-1", "smoke")], Path("/lab/lab.yml"))
    return build, campaign


def promote(store: Store, campaign: Campaign, stage: str, seal: Sealer) -> Sealing:
    """A promotion, its entry and the checkpoint sealing it, in one write transaction (as lab promote does)."""
    with store.transaction() as db:
        assert insert_promotion(db, campaign, stage, {"allowed": True}, AT, None) is True
        return seal.seal(db, f"promotion of app@1.0 -> {stage}")


def unguarded(db: Connection, backend: str) -> None:
    """Drop the append-only guards, as someone with the database's owner rights could."""
    for table in GUARDED:
        for change in ("update", "delete"):
            db.execute({"sqlite": f"DROP TRIGGER {table}_no_{change}",
                        "postgresql": f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_{change}"}[backend])


def verdict(store: Store, lab_key: tuple[Path, Path]) -> AuditVerdict:
    return verdict_of(store, lab_key[1], required=False)


def problems(found: AuditVerdict) -> list[tuple[str, int | None, str]]:
    return [(f.where, f.seq, f.problem) for f in found.findings]


def test_a_checkpoint_seals_the_head_in_the_writers_transaction(store_backend: Backend,
                                                                 lab_key: tuple[Path, Path]) -> None:
    store = store_backend.open()
    _, campaign = seeded(store)
    first = promote(store, campaign, "pilot", sealer(lab_key))
    second = promote(store, campaign, "production", sealer(lab_key))
    log = audit.entries(store)
    assert [e.kind for e in log] == ["promotion", "promotion"]
    assert first.checkpoint is not None and second.checkpoint is not None
    assert [(c.id, c.seq, c.hash, c.principal, c.reason) for c in checkpoints(store)] == [
        (1, 1, log[0].hash, PRINCIPAL, "promotion of app@1.0 -> pilot"),
        (2, 2, log[1].hash, PRINCIPAL, "promotion of app@1.0 -> production")]
    signed = json.loads(checkpoints(store)[1].payload)
    assert (signed["seq"], signed["hash"], signed["namespace"], signed["lab"]) == (2, log[1].hash, NAMESPACE,
                                                                                   "contract")
    found = verdict(store, lab_key)
    assert (found.ok, found.chain.entries, found.checkpoints, found.unsealed, found.findings) == (True, 2, 2, 0, ())
    assert found.sealed == checkpoints(store)[1]
    assert found.seal_line.startswith(f"audit chain sealed at seq 2 by {PRINCIPAL}, ")


def test_what_cannot_be_sealed_rolls_back_with_its_promotion_when_seals_are_required(
        store_backend: Backend, lab_key: tuple[Path, Path], tmp_path: Path) -> None:
    store = store_backend.open()
    _, campaign = seeded(store)
    unlisted = make_key(tmp_path, "unlisted")
    unsealed = promote(store, campaign, "pilot", sealer(lab_key, key=unlisted))
    assert unsealed.checkpoint is None and "would not verify" in unsealed.note  # said, not a failure
    with pytest.raises(ConfigError, match="requires a signed checkpoint"):
        promote(store, campaign, "production", sealer(lab_key, required=True, key=unlisted))
    assert [e.subject for e in audit.entries(store)] == ["app@1.0 -> pilot"]  # the refused promotion left nothing
    assert checkpoints(store) == []
    found = verdict_of(store, lab_key[1], required=True)
    assert found.ok is False and found.seal_line == "audit chain not sealed: no signed checkpoint"
    assert problems(found) == [("audit_checkpoints", None, "lab.yml requires signed checkpoints "
                                "(audit.require_checkpoints), but no valid checkpoint seals the log")]


def test_checkpoint_rows_are_append_only(store_backend: Backend, lab_key: tuple[Path, Path]) -> None:
    store = store_backend.open()
    _, campaign = seeded(store)
    promote(store, campaign, "pilot", sealer(lab_key))
    for statement in ("UPDATE audit_checkpoints SET seq = 7", "DELETE FROM audit_checkpoints"):
        with pytest.raises(Exception, match="audit checkpoints are append-only"), store.transaction() as db:
            db.execute(statement)
    assert [(c.id, c.seq) for c in checkpoints(store)] == [(1, 1)]


def test_a_recomputed_chain_is_named_by_the_first_checkpoint_after_the_edit(store_backend: Backend,
                                                                             lab_key: tuple[Path, Path]) -> None:
    store = store_backend.open()
    _, campaign = seeded(store)
    promote(store, campaign, "pilot", sealer(lab_key))  # entry 1, checkpoint 1
    with store.transaction() as db:
        audit.append(db, "decision", "app@1.0 -> production", {"allowed": False})  # entry 2
    promote(store, campaign, "production", sealer(lab_key))  # entry 3, checkpoint 2
    log = audit.entries(store)
    prev = log[0].hash
    with store.transaction() as db:
        unguarded(db, store_backend.name)
        for entry in log[1:]:
            payload = canonical_json({"allowed": True}) if entry.seq == 2 else entry.payload
            digest = entry_hash(prev, entry.seq, entry.time, entry.kind, entry.subject, payload)
            db.execute("UPDATE audit SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                       (payload, prev, digest, entry.seq))
            prev = digest
        db.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))
    assert audit.verify(store).ok  # the chain's own check is fooled
    found = verdict(store, lab_key)
    second = checkpoints(store)[1]
    assert found.ok is False and found.chain.ok is True
    assert problems(found) == [(second.label(), 3, f"entry 3 is not the one {second.label()} sealed (its hash was "
                                f"{second.hash[:16]}…, now {prev[:16]}…): the log was rewritten at or before entry 3 "
                                "(after entry 1, which an earlier checkpoint still matches)")]


def test_a_tail_cut_off_with_the_head_moved_back_is_caught(store_backend: Backend,
                                                           lab_key: tuple[Path, Path]) -> None:
    store = store_backend.open()
    _, campaign = seeded(store)
    promote(store, campaign, "pilot", sealer(lab_key))
    promote(store, campaign, "production", sealer(lab_key))
    log = audit.entries(store)
    with store.transaction() as db:
        unguarded(db, store_backend.name)
        db.execute("DELETE FROM audit WHERE seq = 2")
        db.execute("DELETE FROM promotions WHERE stage = 'production'")
        db.execute("UPDATE audit_head SET seq = 1, hash = ? WHERE id = 1", (log[0].hash,))
    found = verdict(store, lab_key)
    second = checkpoints(store)[1]
    assert found.chain.ok is True and found.ok is False
    assert problems(found) == [(second.label(), 2, f"{second.label()} sealed entry 2, but the log ends at entry 1: "
                                "entries 2..2 were removed and the head moved back")]
    assert found.sealed == second and found.unsealed == 0  # its signature is genuine: the log is what lies


def test_state_tables_changed_behind_labs_back_are_named(store_backend: Backend, lab_key: tuple[Path, Path]) -> None:
    store = store_backend.open()
    build, campaign = seeded(store)
    promote(store, campaign, "pilot", sealer(lab_key))  # entry 1
    record = add_signed(store, "approval", build, "kari", canonical_json({"stage": "production"}), "SIG1",
                        AT, "production")  # entry 2
    rollouts = RolloutStore(store)
    settings = RolloutSettings(Path("/lab/rollout.yml"), "production", "production", ("h1",), "health",
                               Path("/lab/rollback.yml"), 1, 0, (WavePlan(1, "all", ("h1",), 0, None, 0),))
    rollout = rollouts.create(build, "production", settings.waves, {"h1": None},
                              lambda r: [started(r, settings)])  # entry 3
    rollouts.end(rollout.id, RolloutState.HALTED, "halted", 0, lambda r: [ended(r)])  # entry 4
    assert verdict(store, lab_key).findings == ()
    with store.transaction() as db:
        unguarded(db, store_backend.name)
        db.execute("INSERT INTO promotions VALUES ('app', '1.0', ?, 'production', ?, '{}', ?)",
                   ("d" * 64, campaign.id, AT))
        db.execute("UPDATE signatures SET principal = 'mallory' WHERE id = ?", (record.id,))
        db.execute("UPDATE rollouts SET state = 'complete' WHERE id = ?", (rollout.id,))
    found = verdict(store, lab_key)
    key = f"signatures {record.id} (approval of app@1.0)"
    assert found.chain.ok is True and found.ok is False
    assert problems(found) == [
        ("promotions app@1.0 -> production", None, "promotions app@1.0 -> production: no promotion entry in the "
         "audit log recorded this row (it was written behind lab's back)"),
        (key, 2, f"{key}: the row's principal is 'mallory', but entry 2 recorded 'kari'"),
        (f"rollouts {rollout.id}", 4, f"rollouts {rollout.id}: the row's state is 'complete', but entry 4 "
         "recorded 'halted'")]
