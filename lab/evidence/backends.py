"""What differs between the store's two backends, behind one small interface the ``Store`` drives.

SQLite (the embedded default): a file in WAL mode, recognised by its header (``lab.evidence.guard``);
a write transaction is ``BEGIN IMMEDIATE``, which makes it the only writer. PostgreSQL: a schema
recognised by its marker table; a write transaction takes ``pg_advisory_xact_lock`` first, so
writers (the audit chain's appends among them) follow one another exactly as on SQLite, across
controllers, and the lock goes with the transaction however it ends.
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from lab.config.store_location import StoreLocation
from lab.evidence.db import POSTGRESQL, SQLITE, Connection
from lab.evidence.guard import APPLICATION_ID, PG_MARKER, STORE_FORMAT, inspect_postgres, inspect_store
from lab.evidence.postgres import WRITER_LOCK, StoreError, connect


class StoreConnection(Connection, Protocol):
    """The connection a ``Store`` holds: a record module's ``Connection`` it can also close."""

    @property
    def in_transaction(self) -> bool: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """One backend of the store."""

    dialect: str
    location: StoreLocation
    begin: tuple[str, ...]  # the statements that open a write transaction (the only writer until COMMIT)
    snapshot: str  # the statement that opens a read-only transaction seeing one snapshot
    errors: tuple[type[Exception], ...]  # what the driver raises when the store cannot be used

    def inspect(self) -> bool:
        """Whether a lab store is there (False: nothing yet); ConfigError, touching nothing, if it must not be used."""

    def prepare(self) -> None:
        """Make room for a new store (its directory)."""

    def connect(self) -> StoreConnection:
        """A new connection to the store."""

    def mark(self, db: StoreConnection) -> None:
        """Settings of every connection, and the marker that makes the store a lab store."""


class SqliteBackend:
    """A store in one SQLite file (WAL, synchronous=FULL, foreign keys on)."""

    dialect = SQLITE
    begin: tuple[str, ...] = ("BEGIN IMMEDIATE",)
    snapshot = "BEGIN"
    errors: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)

    def __init__(self, location: StoreLocation) -> None:
        assert location.path is not None
        self.location = location
        self.path = location.path

    def inspect(self) -> bool:
        return inspect_store(self.path)

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def connect(self) -> StoreConnection:
        return sqlite_connection(self.path)

    def mark(self, db: StoreConnection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {STORE_FORMAT}")


def sqlite_connection(target: object) -> sqlite3.Connection:
    """An SQLite connection as the store uses it: autocommit (transactions begun explicitly), rows by name."""
    db = sqlite3.connect(str(target), check_same_thread=False, isolation_level=None, timeout=30)
    db.row_factory = sqlite3.Row
    return db


class PostgresBackend:
    """A store in a PostgreSQL schema (the DSN's database, the connection's current schema)."""

    dialect = POSTGRESQL
    snapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self.begin: tuple[str, ...] = ("BEGIN", "SELECT pg_advisory_xact_lock({}, {})".format(*WRITER_LOCK))
        self.errors: tuple[type[Exception], ...] = (StoreError,)

    def inspect(self) -> bool:
        db = self.connect()
        try:
            return inspect_postgres(db, self.location.shown)
        finally:
            db.close()

    def prepare(self) -> None:
        return None

    def connect(self) -> StoreConnection:
        return connect(self.location)

    def mark(self, db: StoreConnection) -> None:
        """The marker table and its one row, made under the writer lock (two controllers opening an
        empty database at once make one marker)."""
        for statement in self.begin:
            db.execute(statement)
        try:
            db.execute(f"CREATE TABLE IF NOT EXISTS {PG_MARKER} "
                       "(application_id BIGINT NOT NULL, format INTEGER NOT NULL)")
            db.execute(f"INSERT INTO {PG_MARKER} SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM {PG_MARKER})",  # noqa: S608
                       (APPLICATION_ID, STORE_FORMAT))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def backend_for(location: StoreLocation) -> Backend:
    """The backend of the store at ``location``."""
    if location.backend == POSTGRESQL:
        return PostgresBackend(location)
    return SqliteBackend(location)
