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

from lab.config.store_location import StoreLocation
from lab.errors import ConfigError, NotFoundError
from lab.evidence.backends import StoreConnection, backend_for, sqlite_connection
from lab.evidence.db import SQLITE, Connection, Row
from lab.evidence.migrations import PG_ROWID, Schema, Step, applied, apply, pg_append_only, register, registered
from lab.model import (
    Build,
    Campaign,
    CampaignState,
    CellOutcomes,
    CellRecord,
    CellState,
    Result,
    Status,
    StepRecord,
)
from lab.util.clock import now
from lab.util.crashpoint import committed

CORE_TABLES = """
    CREATE TABLE builds (
        product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
        artifact TEXT NOT NULL, registered_at TEXT NOT NULL{rowid},
        PRIMARY KEY (product, version));
    CREATE TABLE campaigns (
        id TEXT PRIMARY KEY, product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
        state TEXT NOT NULL, created_at TEXT NOT NULL, finished_at TEXT,
        sandboxes TEXT NOT NULL, suites TEXT NOT NULL, lab_path TEXT NOT NULL{rowid});
    CREATE TABLE cells (
        campaign_id TEXT NOT NULL REFERENCES campaigns(id), sandbox TEXT NOT NULL, suite TEXT NOT NULL,
        state TEXT NOT NULL, started_at TEXT, finished_at TEXT,
        PRIMARY KEY (campaign_id, sandbox, suite));
    CREATE TABLE results (
        campaign_id TEXT NOT NULL, sandbox TEXT NOT NULL, suite TEXT NOT NULL, check_id TEXT NOT NULL,
        status TEXT NOT NULL, message TEXT NOT NULL, evidence TEXT NOT NULL,
        duration_ms INTEGER NOT NULL, attempts INTEGER NOT NULL{rowid},
        PRIMARY KEY (campaign_id, sandbox, suite, check_id),
        FOREIGN KEY (campaign_id, sandbox, suite) REFERENCES cells(campaign_id, sandbox, suite));
    CREATE TABLE steps (
        campaign_id TEXT NOT NULL REFERENCES campaigns(id), sandbox TEXT NOT NULL, step TEXT NOT NULL,
        ok INTEGER NOT NULL, infrastructure_error INTEGER NOT NULL, detail TEXT NOT NULL,
        deployed_digest TEXT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL,
        PRIMARY KEY (campaign_id, sandbox, step));
    """
AUDIT_TABLES = """
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
        payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
    """
EVIDENCE = register(Schema("evidence", (
    Step(CORE_TABLES.format(rowid=""), legacy=1, postgresql=CORE_TABLES.format(rowid=", " + PG_ROWID)),
    # the hash-chained, append-only audit log (lab/evidence/audit.py)
    Step(AUDIT_TABLES + """
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """, legacy=2, postgresql=AUDIT_TABLES + pg_append_only("audit", "the audit log is append-only")),
)))
"""The evidence core's tables; other features' tables live beside their records (``lab.evidence.migrations``)."""


CampaignAudit = Callable[[Connection, Campaign], object]
"""Appends a campaign event's audit entry inside the transaction that records the event, given the
campaign as it stands after the change (``lab.evidence.audit.append_campaign_event``)."""


STATUSES = {s.value: s for s in Status}  # a stored status by its text (a dict is several times faster than Status())


def new_campaign_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class Store:
    """The lab's store: SQLite (the default) or PostgreSQL. Safe to share between the campaign's worker threads."""

    def __init__(self, where: Path | StoreLocation, *, lazy: bool = False) -> None:
        """Open the store at ``where`` (an SQLite file's path, or a ``StoreLocation``): ConfigError,
        touching nothing, when it is not a lab store (``lab.evidence.guard``). With ``lazy``, an absent
        store is not created until the first write: until then reads see an empty store, so a command
        that only reads, or fails, leaves no file (and no table) behind."""
        self.location = where if isinstance(where, StoreLocation) else StoreLocation(path=where)
        self.path = self.location.path
        self._backend = backend_for(self.location)
        self._lock = threading.RLock()
        self._ensured: set[str] = set()
        exists = self._backend.inspect()
        self._pending = lazy and not exists
        self.dialect = SQLITE if self._pending else self._backend.dialect
        if not self._pending:
            self._backend.prepare()
        self._db: StoreConnection = sqlite_connection(":memory:") if self._pending else self._backend.connect()
        self._opened()

    def _opened(self) -> None:
        """Mark the store (unless still pending) and bring every registered schema up to date."""
        unusable: tuple[type[Exception], ...] = (sqlite3.DatabaseError, *self._backend.errors)
        try:
            if not self._pending:
                self._backend.mark(self._db)
            self._ensure_all(registered())
        except unusable as exc:
            self._db.close()
            raise ConfigError(f"the store cannot be used ({self.location.scrub(str(exc))}); restore it from a backup, "
                              "or move it aside and lab starts a new one", source=self.location.shown) from None

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``: where the store lives (a lazy store not yet made says so too)."""
        return self._backend.dialect

    def _materialise(self) -> None:
        """The first write of a lazy store: make it now, with every schema ensured so far."""
        self._backend.prepare()
        self._backend.inspect()
        memory, self._db = self._db, self._backend.connect()
        memory.close()
        self._pending = False
        self.dialect = self._backend.dialect
        self._ensured = set()
        self._opened()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic, committed unit of work, its writer the only one until it ends (SQLite's BEGIN
        IMMEDIATE; PostgreSQL's advisory transaction lock); a lazy store is made on the first."""
        with self._lock:
            if self._pending:
                self._materialise()
            with self._begin() as db:
                yield db
        committed()  # a crash test's kill point ($LAB_CRASH_AFTER_COMMIT); nothing otherwise

    @contextmanager
    def _begin(self, statements: tuple[str, ...] | None = None) -> Iterator[Connection]:
        with self._lock:
            for statement in statements or (self._backend.begin if not self._pending else ("BEGIN IMMEDIATE",)):
                self._db.execute(statement)
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """The connection, for reads only, in a transaction that sees one snapshot of the store
        (what other writers commit meanwhile is not seen half)."""
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            with self._begin((self._backend.snapshot if not self._pending else "BEGIN",)) as db:
                yield db

    def ensure(self, schema: Schema) -> None:
        """Make sure ``schema``'s tables are up to date (every registered schema is, once the store
        is open; a feature's accessors call this with their own). Inside an open transaction the
        steps join it; otherwise they are one transaction of their own."""
        with self._lock:
            if schema.feature in self._ensured:
                return
            if self._db.in_transaction:  # the caller's transaction may still roll back: check again next time
                apply(self._db, schema, self.dialect)
                return
            self._ensure_all((schema,))

    def _ensure_all(self, schemas: tuple[Schema, ...]) -> None:
        """Apply the steps ``schemas`` lack in one write transaction, and none when nothing is
        missing (opening a store to read it takes no write lock)."""
        with self._lock:
            held = applied(self._db, self.dialect)
            if any(held.get(s.feature, 0) < len(s.steps) for s in schemas):
                with self._begin() as db:
                    for schema in schemas:
                        apply(db, schema, self.dialect)
            self._ensured.update(s.feature for s in schemas)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """The connection, for reads only, under the store's lock (inside a transaction, if one is open)."""
        with self._lock:
            yield self._db

    def schema_steps(self) -> dict[str, int]:
        """How many migration steps of each feature's schema the store holds."""
        with self._lock:
            return applied(self._db, self.dialect)

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
            if product is None:
                rows = self._db.execute("SELECT * FROM builds ORDER BY product, registered_at, rowid").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM builds WHERE product = ? ORDER BY registered_at, rowid",
                                        (product,)).fetchall()
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

    def _audited(self, db: Connection, campaign_id: str, audit: CampaignAudit | None) -> Campaign:
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
            found = cells_with_results(self._db, campaign_id,
                                       "check_id, status, message, evidence, duration_ms, attempts")
        return [CellRecord(*header_fields(campaign_id, r), tuple(
            Result(x["check_id"], Status(x["status"]), x["message"], json.loads(x["evidence"]), x["duration_ms"],
                   x["attempts"]) for x in results)) for r, results in found]

    def outcomes(self, campaign_id: str) -> list[CellOutcomes]:
        """Every cell of the campaign with each result's check id, status and message, in the order
        of ``cells``, from one snapshot; no evidence is read or decoded (what a gate and a headline
        need, at a fraction of the cost)."""
        with self.snapshot() as db:
            found = cells_with_results(db, campaign_id, "check_id, status, message")
        return [CellOutcomes(*header_fields(campaign_id, r), tuple(x["check_id"] for x in results),
                             tuple(STATUSES[x["status"]] for x in results), tuple(x["message"] for x in results))
                for r, results in found]

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
                "INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (campaign_id, sandbox, step) DO UPDATE SET "
                "ok=excluded.ok, infrastructure_error=excluded.infrastructure_error, detail=excluded.detail, "
                "deployed_digest=excluded.deployed_digest, started_at=excluded.started_at, "
                "finished_at=excluded.finished_at",
                (step.campaign_id, step.sandbox, step.step, int(step.ok), int(step.infrastructure_error),
                 step.detail, step.deployed_digest, step.started_at, step.finished_at),
            )

    def steps(self, campaign_id: str) -> list[StepRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM steps WHERE campaign_id=? ORDER BY sandbox, started_at",
                                    (campaign_id,)).fetchall()
        return [StepRecord(r["campaign_id"], r["sandbox"], r["step"], bool(r["ok"]), bool(r["infrastructure_error"]),
                           r["detail"], r["deployed_digest"], r["started_at"], r["finished_at"]) for r in rows]


def cells_with_results(db: Connection, campaign_id: str, columns: str) -> list[tuple[Row, list[Row]]]:
    """The campaign's cell rows (by sandbox, then suite), each with the ``columns`` of its result
    rows in the order they were written: two queries, grouped here."""
    rows = db.execute("SELECT * FROM cells WHERE campaign_id=? ORDER BY sandbox, suite", (campaign_id,)).fetchall()
    result_rows = db.execute(f"SELECT sandbox, suite, {columns} FROM results WHERE campaign_id=? "  # noqa: S608 - constant
                             "ORDER BY sandbox, suite, rowid", (campaign_id,)).fetchall()
    by_cell: dict[tuple[str, str], list[Row]] = {}
    for r in result_rows:
        by_cell.setdefault((r["sandbox"], r["suite"]), []).append(r)
    return [(r, by_cell.get((r["sandbox"], r["suite"]), [])) for r in rows]


def header_fields(campaign_id: str, row: Row) -> tuple[str, str, str, CellState, str | None, str | None]:
    """A cell row's fields as CellHeader orders them (campaign, sandbox, suite, state, started, finished)."""
    return (campaign_id, row["sandbox"], row["suite"], CellState(row["state"]), row["started_at"],
            row["finished_at"])


def build_from_row(row: Row) -> Build:
    return Build(row["product"], row["version"], Path(row["artifact"]), row["digest"], row["registered_at"])


def campaign_from_row(row: Row) -> Campaign:
    return Campaign(row["id"], row["product"], row["version"], row["digest"], CampaignState(row["state"]),
                    row["created_at"], row["finished_at"], tuple(json.loads(row["sandboxes"])),
                    tuple(json.loads(row["suites"])), row["lab_path"])
