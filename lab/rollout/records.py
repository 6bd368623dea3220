"""The rollout's records in the store: rollouts, their waves and every host's outcome.

The tables (rollouts, rollout_waves, rollout_hosts) are this feature's: ``ROLLOUT`` below
(``lab.evidence.migrations``). Each method is one committed transaction, so a rollout's state on disk is
always the state of its last finished step: a wave is recorded before it starts and after each
step, and ``lab rollout resume`` continues from exactly there. A state change that the audit
log records takes its entries (``audit``: made from the rollout as it stands after the change)
into that same transaction, so neither is ever committed without the other.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from lab.config.rollout_plan import WavePlan
from lab.errors import NotFoundError
from lab.evidence.audit import Note
from lab.evidence.checkpoints import CHECKPOINTS
from lab.evidence.db import Connection, Row
from lab.evidence.migrations import Schema, Step, register
from lab.evidence.store import Store
from lab.model import Build
from lab.signoff.checkpoints import Sealing
from lab.util.clock import now

ROLLOUT = register(Schema("rollout", (
    Step("""
    CREATE TABLE rollouts (
        id TEXT PRIMARY KEY, product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
        stage TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        finished_at TEXT, detail TEXT NOT NULL);
    CREATE INDEX rollouts_by_product ON rollouts (product, created_at);
    CREATE TABLE rollout_waves (
        rollout_id TEXT NOT NULL REFERENCES rollouts(id), wave INTEGER NOT NULL, name TEXT NOT NULL,
        state TEXT NOT NULL, max_failures INTEGER, max_failure_rate REAL, pause_seconds INTEGER NOT NULL,
        started_at TEXT, finished_at TEXT, resume_at TEXT, detail TEXT NOT NULL,
        PRIMARY KEY (rollout_id, wave));
    CREATE TABLE rollout_hosts (
        rollout_id TEXT NOT NULL, wave INTEGER NOT NULL, host TEXT NOT NULL, position INTEGER NOT NULL,
        state TEXT NOT NULL, previous TEXT, deployed_digest TEXT, health TEXT, detail TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (rollout_id, host),
        FOREIGN KEY (rollout_id, wave) REFERENCES rollout_waves(rollout_id, wave));
    """, legacy=3),
)))


class RolloutState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # between waves, until the next wave's resume_at
    WAITING_WINDOW = "waiting_window"  # the next wave may not start outside the stage's maintenance window
    COMPLETE = "complete"
    HALTED = "halted"  # a wave breached its threshold and was rolled back
    ABORTING = "aborting"  # lab rollout abort is rolling back the current wave
    ABORTED = "aborted"
    FAILED = "failed"  # a rollback did not bring every host back healthy: a human must look


class WaveState(enum.StrEnum):
    PLANNED = "planned"
    DEPLOYING = "deploying"
    VERIFYING = "verifying"
    DONE = "done"
    HALTED = "halted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    ROLLING_BACK_HOSTS = "rolling_back_hosts"  # within its threshold: its failed hosts are being rolled back
    CANCELLED = "cancelled"  # never started: an earlier wave halted or the rollout was aborted


class HostState(enum.StrEnum):
    PLANNED = "planned"
    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    DEPLOY_FAILED = "deploy_failed"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    CANCELLED = "cancelled"


FINAL = (RolloutState.COMPLETE, RolloutState.HALTED, RolloutState.ABORTED, RolloutState.FAILED)


@dataclass(frozen=True)
class HostRecord:
    """One production host in a rollout: its state, what it ran before, its health evidence."""

    host: str
    wave: int
    state: HostState
    previous: dict[str, Any] | None  # {"version", "digest", "artifact"} of the build it ran before, if known
    deployed_digest: str | None
    health: dict[str, Any] | None  # {"suite", "counts", "failed": [[check, status, message], ...]}
    detail: str


@dataclass(frozen=True)
class WaveRecord:
    """One wave of a rollout as stored, with its hosts in planned order."""

    index: int
    name: str
    state: WaveState
    max_failures: int | None
    max_failure_rate: float | None
    pause_seconds: int
    started_at: str | None
    finished_at: str | None
    resume_at: str | None
    detail: str
    hosts: tuple[HostRecord, ...]

    def host_counts(self) -> dict[str, int]:
        """How many of the wave's hosts are in each state, states in the order the hosts first show them."""
        counts: dict[str, int] = {}
        for host in self.hosts:
            counts[host.state.value] = counts.get(host.state.value, 0) + 1
        return counts

    def plan(self) -> WavePlan:
        return WavePlan(self.index, self.name, tuple(h.host for h in self.hosts), self.max_failures,
                        self.max_failure_rate, self.pause_seconds)


@dataclass(frozen=True)
class RolloutRecord:
    """A rollout of one build to production, with its waves."""

    id: str
    product: str
    version: str
    digest: str
    stage: str
    state: RolloutState
    created_at: str
    updated_at: str
    finished_at: str | None
    detail: str
    waves: tuple[WaveRecord, ...]

    @property
    def build_ref(self) -> str:
        return f"{self.product}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        """``lab rollout status --json`` (format 1): id, build, product, version, digest, stage, state,
        detail, created_at, updated_at, finished_at, and waves: wave, name, state, max_failures,
        max_failure_rate, pause_seconds, started_at, finished_at, resume_at, detail, and hosts: host,
        state, previous, deployed_digest, health, detail."""
        waves = []
        for wave in self.waves:
            fields = {key: value for key, value in asdict(wave).items() if key != "index"}
            fields["hosts"] = [{key: value for key, value in asdict(host).items() if key != "wave"}
                               for host in wave.hosts]
            waves.append({"wave": wave.index, **fields})
        return {"format": 1, "id": self.id, "build": self.build_ref, "product": self.product,
                "version": self.version, "digest": self.digest, "stage": self.stage, "state": self.state.value,
                "detail": self.detail, "created_at": self.created_at, "updated_at": self.updated_at,
                "finished_at": self.finished_at, "waves": waves}

    def current_wave(self) -> WaveRecord | None:
        """The first wave that is not done (None when every wave is done)."""
        return next((w for w in self.waves if w.state is not WaveState.DONE), None)

    def wave(self, index: int) -> WaveRecord:
        """The wave numbered ``index`` (1-based)."""
        return next(w for w in self.waves if w.index == index)

    def rolled_back_hosts(self) -> list[str]:
        """The hosts of waves that were done although these hosts failed: each was rolled back on its own."""
        return [h.host for w in self.waves if w.state is WaveState.DONE for h in w.hosts
                if h.state is HostState.ROLLED_BACK]


Describe = Callable[[RolloutRecord], Iterable[Note]]
"""The audit entries of a state change, made from the rollout as it stands after the change."""

Seal = Callable[[Connection], Sealing]
"""Seals the log's head inside the transaction that ends a rollout (``lab.signoff.checkpoints.Sealer.seal``)."""


class RolloutStore:
    """Rollout records, on top of the lab's ``Store`` (its lock and its transactions)."""

    def __init__(self, store: Store) -> None:
        store.ensure(ROLLOUT)
        self.store = store

    def create(self, build: Build, stage: str, waves: Iterable[WavePlan],
               previous: dict[str, dict[str, Any] | None], audit: Describe) -> RolloutRecord:
        """Record a new rollout with every wave and host planned, and its audit entries, in one transaction."""
        rollout_id = datetime.now(UTC).strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        at = now()
        with self.store.transaction() as db:
            db.execute("INSERT INTO rollouts VALUES (?,?,?,?,?,?,?,?,NULL,'')",
                       (rollout_id, build.product, build.version, build.digest, stage, RolloutState.RUNNING, at, at))
            for wave in waves:
                db.execute("INSERT INTO rollout_waves VALUES (?,?,?,?,?,?,?,NULL,NULL,NULL,'')",
                           (rollout_id, wave.index, wave.name, WaveState.PLANNED, wave.max_failures,
                            wave.max_failure_rate, wave.pause_seconds))
                db.executemany("INSERT INTO rollout_hosts VALUES (?,?,?,?,?,?,NULL,NULL,'',?)",
                               [(rollout_id, wave.index, host, position, HostState.PLANNED,
                                 dump(previous.get(host)), at) for position, host in enumerate(wave.hosts)])
            append_all(db, rollout_id, audit)
        return self.get(rollout_id)

    def get(self, rollout_id: str) -> RolloutRecord:
        """The rollout ``rollout_id`` as stored now; NotFoundError if there is none."""
        with self.store.reading() as db:
            return read(db, rollout_id)

    def latest(self, product: str, version: str | None = None) -> RolloutRecord | None:
        """The newest rollout of ``product`` (of that ``version``, if given)."""
        with self.store.reading() as db:
            if version is None:
                row = db.execute("SELECT id FROM rollouts WHERE product=? ORDER BY created_at DESC, id DESC LIMIT 1",
                                 (product,)).fetchone()
            else:
                row = db.execute("SELECT id FROM rollouts WHERE product=? AND version=? ORDER BY created_at DESC, "
                                 "id DESC LIMIT 1", (product, version)).fetchone()
        return None if row is None else self.get(str(row[0]))

    def unfinished(self) -> list[RolloutRecord]:
        """Every rollout that is neither complete, halted, aborted nor failed."""
        with self.store.reading() as db:
            rows = db.execute("SELECT id FROM rollouts WHERE state NOT IN (?,?,?,?) ORDER BY created_at",
                              tuple(s.value for s in FINAL)).fetchall()
        return [self.get(str(r[0])) for r in rows]

    def last_good(self, product: str, host: str) -> dict[str, Any] | None:
        """The build ``host`` last ran healthy from a rollout of ``product`` (None when it never did)."""
        with self.store.reading() as db:
            row = db.execute(
                "SELECT r.version, r.digest FROM rollout_hosts h JOIN rollouts r ON r.id = h.rollout_id "
                "WHERE r.product=? AND h.host=? AND h.state=? "
                "ORDER BY h.updated_at DESC, r.created_at DESC LIMIT 1",
                (product, host, HostState.HEALTHY)).fetchone()
        return None if row is None else {"version": str(row[0]), "digest": str(row[1])}

    # --- state changes: one transaction each -----------------------------------------------------

    def set_rollout(self, rollout_id: str, state: RolloutState, detail: str | None = None,
                    audit: Describe | None = None) -> None:
        """Move the rollout to ``state`` (with its audit entries, if any), atomically."""
        with self.store.transaction() as db:
            set_rollout(db, rollout_id, state, detail)
            append_all(db, rollout_id, audit)

    def end(self, rollout_id: str, state: RolloutState, detail: str, after_wave: int, audit: Describe,
            seal: Seal | None = None) -> Sealing | None:
        """End the rollout in ``state`` (one of FINAL): the waves after ``after_wave`` that never started
        are cancelled, the audit entries appended and (with ``seal``) the log's new head sealed by a
        signed checkpoint, in one transaction; what ``seal`` did."""
        self.store.ensure(CHECKPOINTS)
        with self.store.transaction() as db:
            cancel_rest(db, rollout_id, after_wave)
            set_rollout(db, rollout_id, state, detail)
            append_all(db, rollout_id, audit)
            return None if seal is None else seal(db)

    def set_wave(self, rollout_id: str, wave: int, state: WaveState, detail: str | None = None,
                 hosts: tuple[HostState, Iterable[str]] | None = None, resume_at: str | None = None,
                 rollout: RolloutState | None = None, audit: Describe | None = None,
                 next_resume_at: str | None = None, cancel_later: bool = False) -> None:
        """Move a wave (and optionally some of its hosts, and the rollout) to a new state, with its
        audit entries if any, atomically. ``next_resume_at`` holds the next wave until then (its
        pause), in the same transaction: a wave is never recorded done without its pause;
        ``cancel_later`` cancels the waves after it (a halt) in that transaction too."""
        at = now()
        with self.store.transaction() as db:
            if cancel_later:
                cancel_rest(db, rollout_id, wave)
            if next_resume_at is not None:
                db.execute("UPDATE rollout_waves SET resume_at=? WHERE rollout_id=? AND wave=?",
                           (next_resume_at, rollout_id, wave + 1))
            started = at if state is WaveState.DEPLOYING else None
            finished = at if state in (WaveState.DONE, WaveState.ROLLED_BACK, WaveState.ROLLBACK_FAILED) else None
            db.execute("UPDATE rollout_waves SET state=?, detail=COALESCE(?, detail), "
                       "started_at=COALESCE(started_at, ?), finished_at=COALESCE(?, finished_at), "
                       "resume_at=COALESCE(?, resume_at) WHERE rollout_id=? AND wave=?",
                       (state, detail, started, finished, resume_at, rollout_id, wave))
            if hosts is not None:
                host_state, names = hosts
                db.executemany("UPDATE rollout_hosts SET state=?, updated_at=? WHERE rollout_id=? AND host=?",
                               [(host_state, at, rollout_id, name) for name in names])
            if rollout is not None:
                set_rollout(db, rollout_id, rollout, None)
            else:
                db.execute("UPDATE rollouts SET updated_at=? WHERE id=?", (at, rollout_id))
            append_all(db, rollout_id, audit)

    def set_host(self, rollout_id: str, host: str, state: HostState, detail: str,
                 deployed_digest: str | None = None, health: dict[str, Any] | None = None) -> None:
        """Record one host's outcome of a step (keeps earlier digest/health unless new ones are given)."""
        with self.store.transaction() as db:
            db.execute("UPDATE rollout_hosts SET state=?, detail=?, deployed_digest=COALESCE(?, deployed_digest), "
                       "health=COALESCE(?, health), updated_at=? WHERE rollout_id=? AND host=?",
                       (state, detail, deployed_digest, dump(health), now(), rollout_id, host))


def read(db: Connection, rollout_id: str) -> RolloutRecord:
    """The rollout ``rollout_id`` as ``db`` sees it (inside a transaction: with its changes so far)."""
    row = db.execute("SELECT * FROM rollouts WHERE id=?", (rollout_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"unknown rollout {rollout_id!r}")
    waves = db.execute("SELECT * FROM rollout_waves WHERE rollout_id=? ORDER BY wave", (rollout_id,)).fetchall()
    hosts = db.execute("SELECT * FROM rollout_hosts WHERE rollout_id=? ORDER BY wave, position",
                       (rollout_id,)).fetchall()
    return rollout_from_rows(row, waves, hosts)


def append_all(db: Connection, rollout_id: str, audit: Describe | None) -> None:
    """Append the entries ``audit`` makes of the rollout as changed so far, in ``db``'s transaction."""
    if audit is not None:
        for note in audit(read(db, rollout_id)):
            note.append_to(db)


def cancel_rest(db: Connection, rollout_id: str, after_wave: int) -> None:
    db.execute("UPDATE rollout_waves SET state=? WHERE rollout_id=? AND wave>? AND state=?",
               (WaveState.CANCELLED, rollout_id, after_wave, WaveState.PLANNED))
    db.execute("UPDATE rollout_hosts SET state=?, updated_at=? WHERE rollout_id=? AND wave>? AND state=?",
               (HostState.CANCELLED, now(), rollout_id, after_wave, HostState.PLANNED))


def set_rollout(db: Connection, rollout_id: str, state: RolloutState, detail: str | None) -> None:
    at = now()
    db.execute("UPDATE rollouts SET state=?, detail=COALESCE(?, detail), updated_at=?, "
               "finished_at=CASE WHEN ? THEN ? ELSE NULL END WHERE id=?",
               (state, detail, at, state in FINAL, at, rollout_id))


def dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def load(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def rollout_from_rows(row: Row, waves: list[Row], hosts: list[Row]) -> RolloutRecord:
    by_wave: dict[int, list[HostRecord]] = {}
    for h in hosts:
        by_wave.setdefault(int(h["wave"]), []).append(HostRecord(
            h["host"], int(h["wave"]), HostState(h["state"]), load(h["previous"]), h["deployed_digest"],
            load(h["health"]), h["detail"]))
    return RolloutRecord(
        row["id"], row["product"], row["version"], row["digest"], row["stage"], RolloutState(row["state"]),
        row["created_at"], row["updated_at"], row["finished_at"], row["detail"],
        tuple(WaveRecord(int(w["wave"]), w["name"], WaveState(w["state"]), w["max_failures"], w["max_failure_rate"],
                         int(w["pause_seconds"]), w["started_at"], w["finished_at"], w["resume_at"], w["detail"],
                         tuple(by_wave.get(int(w["wave"]), ()))) for w in waves))
