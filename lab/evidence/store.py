"""The evidence store: SQLite in WAL mode, per-feature migrations, one transaction per state change.

Every state change is committed before the campaign takes its next step, so a crash at any
point (kill -9 included) leaves a state that ``resume`` completes: finished cells keep their
results exactly once, and an unfinished cell has no results at all.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from lab.errors import ConfigError, NotFoundError
from lab.evidence.guard import APPLICATION_ID, STORE_FORMAT, inspect_store
from lab.evidence.migrations import Schema, Step, applied, apply, register, registered
from lab.model import (
    Build,
    Campaign,
    CampaignState,
    CellRecord,
    CellState,
    Result,
    Status,
    StepRecord,
)
from lab.util.clock import now

EVIDENCE = register(Schema("evidence", (
    Step("""
    CREATE TABLE builds (
        product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
        artifact TEXT NOT NULL, registered_at TEXT NOT NULL,
        PRIMARY KEY (product, version));
    CREATE TABLE campaigns (
        id TEXT PRIMARY KEY, product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
        state TEXT NOT NULL, created_at TEXT NOT NULL, finished_at TEXT,
        sandboxes TEXT NOT NULL, suites TEXT NOT NULL, lab_path TEXT NOT NULL);
    CREATE TABLE cells (
        campaign_id TEXT NOT NULL REFERENCES campaigns(id), sandbox TEXT NOT NULL, suite TEXT NOT NULL,
        state TEXT NOT NULL, started_at TEXT, finished_at TEXT,
        PRIMARY KEY (campaign_id, sandbox, suite));
    CREATE TABLE results (
        campaign_id TEXT NOT NULL, sandbox TEXT NOT NULL, suite TEXT NOT NULL, check_id TEXT NOT NULL,
        status TEXT NOT NULL, message TEXT NOT NULL, evidence TEXT NOT NULL,
        duration_ms INTEGER NOT NULL, attempts INTEGER NOT NULL,
        PRIMARY KEY (campaign_id, sandbox, suite, check_id),
        FOREIGN KEY (campaign_id, sandbox, suite) REFERENCES cells(campaign_id, sandbox, suite));
    CREATE TABLE steps (
        campaign_id TEXT NOT NULL REFERENCES campaigns(id), sandbox TEXT NOT NULL, step TEXT NOT NULL,
        ok INTEGER NOT NULL, infrastructure_error INTEGER NOT NULL, detail TEXT NOT NULL,
        deployed_digest TEXT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL,
        PRIMARY KEY (campaign_id, sandbox, step));
    """, legacy=1),
    # the hash-chained, append-only audit log (lab/evidence/audit.py)
    Step("""
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
        payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """, legacy=2),
)))
"""The evidence core's tables; other features' tables live beside their records (``lab.evidence.migrations``)."""


CampaignAudit = Callable[[sqlite3.Connection, Campaign], object]
"""Appends a campaign event's audit entry inside the transaction that records the event, given the
campaign as it stands after the change (``lab.evidence.audit.append_campaign_event``)."""


def new_campaign_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class Store:
    """The lab's SQLite store. Safe to share between the campaign's worker threads."""

    def __init__(self, path: Path, *, lazy: bool = False) -> None:
        """Open the store at ``path`` (ConfigError, touching nothing, when it is not a lab store:
        ``lab.evidence.guard``). With ``lazy``, an absent store is not created until the first write:
        until then reads see an empty store, so a command that only reads, or fails, leaves no file."""
        self.path = path
        self._lock = threading.RLock()
        self._ensured: set[str] = set()
        exists = inspect_store(path)
        self._pending = lazy and not exists
        if not self._pending:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect(":memory:" if self._pending else path)
        try:
            if not self._pending:
                self._mark()
            self._ensure_all(registered())
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(f"the store cannot be used ({exc}); restore it from a backup, or move it aside and lab "
                              "starts a new one", source=str(path)) from None

    @staticmethod
    def _connect(target: Path | str) -> sqlite3.Connection:
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def _mark(self) -> None:
        """Settings of every connection to the file, and the marker that makes it a lab store."""
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        if self._db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version = {STORE_FORMAT}")

    def _materialise(self) -> None:
        """The first write of a lazy store: make the file now, with every schema ensured so far."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        inspect_store(self.path)
        memory, self._db = self._db, self._connect(self.path)
        memory.close()
        self._pending = False
        self._mark()
        self._ensured = set()
        self._ensure_all(registered())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, committed unit of work (BEGIN IMMEDIATE ... COMMIT); a lazy store is made on the first."""
        with self._lock:
            if self._pending:
                self._materialise()
            with self._begin() as db:
                yield db

    @contextmanager
    def _begin(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def ensure(self, schema: Schema) -> None:
        """Make sure ``schema``'s tables are up to date (every registered schema is, once the store
        is open; a feature's accessors call this with their own). Inside an open transaction the
        steps join it; otherwise they are one transaction of their own."""
        with self._lock:
            if schema.feature in self._ensured:
                return
            if self._db.in_transaction:  # the caller's transaction may still roll back: check again next time
                apply(self._db, schema)
                return
            self._ensure_all((schema,))

    def _ensure_all(self, schemas: tuple[Schema, ...]) -> None:
        """Apply the steps ``schemas`` lack in one write transaction, and none when nothing is
        missing (opening a store to read it takes no write lock)."""
        with self._lock:
            held = applied(self._db)
            if any(held.get(s.feature, 0) < len(s.steps) for s in schemas):
                with self._begin() as db:
                    for schema in schemas:
                        apply(db, schema)
            self._ensured.update(s.feature for s in schemas)

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads only, under the store's lock (inside a transaction, if one is open)."""
        with self._lock:
            yield self._db

    def schema_steps(self) -> dict[str, int]:
        """How many migration steps of each feature's schema the store holds."""
        with self._lock:
            return applied(self._db)

    # --- builds -------------------------------------------------------------------------------

    def register_build(self, product: str, version: str, digest: str, artifact: Path) -> Build:
        """Record a build; its identity is the digest, so the same version with another digest is refused."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM builds WHERE product=? AND version=?", (product, version)).fetchone()
            if row is None:
                db.execute("INSERT INTO builds VALUES (?,?,?,?,?)", (product, version, digest, str(artifact), now()))
        found = self.build(product, version)
        assert found is not None
        return found

    def build(self, product: str, version: str) -> Build | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM builds WHERE product=? AND version=?", (product, version)).fetchone()
        return None if row is None else build_from_row(row)

    def builds(self, product: str | None = None) -> list[Build]:
        """Every registered build of ``product`` (default: of every product, by product), in the
        order they were registered (the last one last)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM builds WHERE ? IS NULL OR product = ? "
                                    "ORDER BY product, registered_at, rowid", (product, product)).fetchall()
        return [build_from_row(r) for r in rows]

    # --- campaigns ----------------------------------------------------------------------------

    def create_campaign(self, build: Build, cells: list[tuple[str, str]], lab_path: Path,
                        audit: CampaignAudit | None = None) -> Campaign:
        """Record a new campaign and all its cells as pending, and its ``audit`` entry, in one
        transaction: if ``audit`` raises, nothing is recorded."""
        campaign_id = new_campaign_id()
        sandboxes = sorted({s for s, _ in cells})
        suites = sorted({s for _, s in cells})
        with self.transaction() as db:
            db.execute(
                "INSERT INTO campaigns VALUES (?,?,?,?,?,?,?,?,?,?)",
                (campaign_id, build.product, build.version, build.digest, CampaignState.RUNNING, now(), None,
                 json.dumps(sandboxes), json.dumps(suites), str(lab_path)),
            )
            db.executemany(
                "INSERT INTO cells VALUES (?,?,?,?,NULL,NULL)",
                [(campaign_id, sandbox, suite, CellState.PENDING) for sandbox, suite in cells],
            )
            return self._audited(db, campaign_id, audit)

    def _audited(self, db: sqlite3.Connection, campaign_id: str, audit: CampaignAudit | None) -> Campaign:
        """The campaign as ``db``'s open transaction sees it, after ``audit`` (if any) appended its entry there."""
        campaign = self.campaign(campaign_id)
        if audit is not None:
            audit(db, campaign)
        return campaign

    def campaign(self, campaign_id: str) -> Campaign:


        with self._lock:
            if campaign_id in ("latest", "last"):
                # rowid breaks ties: two campaigns created in the same millisecond keep their order
                row = self._db.execute(
                    "SELECT * FROM campaigns ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
            else:
                row = self._db.execute("SELECT * FROM campaigns WHERE id=?", (campaign_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"unknown campaign {campaign_id!r}; `lab list` shows the campaigns")
        return campaign_from_row(row)

    def campaigns(self) -> list[Campaign]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM campaigns ORDER BY created_at, rowid").fetchall()
        return [campaign_from_row(r) for r in rows]

    def finish_campaign(self, campaign_id: str, audit: CampaignAudit | None = None) -> Campaign:
        """Mark the campaign finished, with its ``audit`` entry, in one transaction; the finished campaign."""
        with self.transaction() as db:
            db.execute("UPDATE campaigns SET state=?, finished_at=? WHERE id=?",
                       (CampaignState.FINISHED, now(), campaign_id))
            return self._audited(db, campaign_id, audit)

    # --- cells --------------------------------------------------------------------------------

    def cells(self, campaign_id: str) -> list[CellRecord]:
        """Every cell of the campaign with its results (done cells only have results)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM cells WHERE campaign_id=? ORDER BY sandbox, suite",
                                    (campaign_id,)).fetchall()
            result_rows = self._db.execute(
                "SELECT * FROM results WHERE campaign_id=? ORDER BY sandbox, suite, rowid", (campaign_id,)
            ).fetchall()
        by_cell: dict[tuple[str, str], list[Result]] = {}
        for r in result_rows:
            by_cell.setdefault((r["sandbox"], r["suite"]), []).append(Result(
                r["check_id"], Status(r["status"]), r["message"], json.loads(r["evidence"]),
                r["duration_ms"], r["attempts"]))
        return [
            CellRecord(campaign_id, r["sandbox"], r["suite"], CellState(r["state"]), r["started_at"],
                       r["finished_at"], tuple(by_cell.get((r["sandbox"], r["suite"]), ())))
            for r in rows
        ]

    def start_cell(self, campaign_id: str, sandbox: str, suite: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE cells SET state=?, started_at=? WHERE campaign_id=? AND sandbox=? AND suite=? "
                       "AND state!=?", (CellState.RUNNING, now(), campaign_id, sandbox, suite, CellState.DONE))

    def finish_cell(self, campaign_id: str, sandbox: str, suite: str, results: list[Result]) -> bool:
        """Store the cell's results and mark it done, atomically. False if it was already done."""
        with self.transaction() as db:
            state = db.execute("SELECT state FROM cells WHERE campaign_id=? AND sandbox=? AND suite=?",
                               (campaign_id, sandbox, suite)).fetchone()
            if state is None or state[0] == CellState.DONE:
                return False
            db.executemany(
                "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?)",
                [(campaign_id, sandbox, suite, r.check_id, r.status.value, r.message,
                  json.dumps(r.evidence, sort_keys=True), r.duration_ms, r.attempts) for r in results],
            )
            db.execute("UPDATE cells SET state=?, finished_at=? WHERE campaign_id=? AND sandbox=? AND suite=?",
                       (CellState.DONE, now(), campaign_id, sandbox, suite))
        return True

    def reopen_unfinished(self, campaign_id: str, audit: CampaignAudit | None = None) -> int:
        """Put cells that were running when the lab stopped back to pending and the campaign back to
        running, with its ``audit`` entry, in one transaction. Returns how many cells."""
        with self.transaction() as db:
            cursor = db.execute("UPDATE cells SET state=?, started_at=NULL WHERE campaign_id=? AND state=?",
                                (CellState.PENDING, campaign_id, CellState.RUNNING))
            db.execute("UPDATE campaigns SET state=?, finished_at=NULL WHERE id=?",
                       (CampaignState.RUNNING, campaign_id))
            self._audited(db, campaign_id, audit)
            return cursor.rowcount

    # --- steps --------------------------------------------------------------------------------

    def record_step(self, step: StepRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?,?)",
                (step.campaign_id, step.sandbox, step.step, int(step.ok), int(step.infrastructure_error),
                 step.detail, step.deployed_digest, step.started_at, step.finished_at),
            )

    def steps(self, campaign_id: str) -> list[StepRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM steps WHERE campaign_id=? ORDER BY sandbox, started_at",
                                    (campaign_id,)).fetchall()
        return [StepRecord(r["campaign_id"], r["sandbox"], r["step"], bool(r["ok"]), bool(r["infrastructure_error"]),
                           r["detail"], r["deployed_digest"], r["started_at"], r["finished_at"]) for r in rows]


def build_from_row(row: sqlite3.Row) -> Build:
    return Build(row["product"], row["version"], Path(row["artifact"]), row["digest"], row["registered_at"])


def campaign_from_row(row: sqlite3.Row) -> Campaign:
    return Campaign(row["id"], row["product"], row["version"], row["digest"], CampaignState(row["state"]),
                    row["created_at"], row["finished_at"], tuple(json.loads(row["sandboxes"])),
                    tuple(json.loads(row["suites"])), row["lab_path"])
