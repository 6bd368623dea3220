"""Leases where the store is: a file lock beside an SQLite store, an advisory lock in a PostgreSQL one.

On SQLite (one controller) a lease stays the ``flock`` of ``lab.sandboxes.lease``. With a
PostgreSQL store, controllers on several machines share the sandboxes, so a lease is a
session-level ``pg_try_advisory_lock`` keyed by a hash of the sandbox's name, held on a connection
of its own: PostgreSQL drops it when that session ends, however it ends (the process killed, the
machine gone, ``pg_terminate_backend``), so a dead controller never blocks a sandbox.

Whoever waits, or is refused, is told who holds the lease. The holder's description (say ``campaign
20261204-191502-a1f3 (lab run care-planner@2.0.0 on host lab-ci-2, pid 4711)``) travels as its
session's ``application_name``, which PostgreSQL cuts at 63 bytes, and whole in the table
``lease_holders`` (PostgreSQL only; beside SQLite the lease file holds it). A session writes its row
before it asks for the lock, so whoever finds the lock held finds its holder's row too, and deletes
it when it lets go. The lock stays the only truth of who holds what: a row is read only for the
session that holds the lock (backend pid and start time), so the rows of waiting sessions, and a
row a dead session left behind (removed by the next session that describes itself), are never
shown. A store this lab has not opened yet has no such table; the session's (cut) name is shown then.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from lab.config.labfile import LabConfig
from lab.config.store_location import StoreLocation
from lab.errors import InfrastructureError
from lab.evidence.db import POSTGRESQL
from lab.evidence.migrations import Schema, Step, register
from lab.evidence.postgres import PgConnection, connect, lock_key
from lab.sandboxes import lease as file_lease
from lab.sandboxes.lease import Waiting

HOLDER_PREFIX = "lab: "
HOLDERS = register(Schema("leases", (
    # PostgreSQL only: beside an SQLite store the lease file holds the holder's description
    Step("", postgresql="""
    CREATE TABLE lease_holders (
        name TEXT NOT NULL, backend_pid INTEGER NOT NULL, backend_start TIMESTAMPTZ NOT NULL,
        holder TEXT NOT NULL, since TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (name, backend_pid, backend_start));
    """),
)))
"""Who holds each lease on a PostgreSQL store, in full (the module's docstring)."""


def lease(config: LabConfig, name: str, holder: str, timeout: float,
          waiting: Waiting | None = None) -> AbstractContextManager[None]:
    """Hold the lease on ``name`` (a sandbox, or production) for ``holder``, waiting up to ``timeout``
    seconds for another holder to let go (``waiting`` is told who that is, once, when the wait
    begins); InfrastructureError naming the holder when it did not let go in time."""
    if config.store.backend == POSTGRESQL:
        return advisory_lease(config.store, name, holder, timeout, waiting)
    return file_lease.lease(config.state_dir, name, holder, timeout, waiting)


def holder_of(config: LabConfig, name: str) -> str | None:
    """Who holds the lease on ``name`` now, or None if it is free."""
    if config.store.backend == POSTGRESQL:
        db = connect(config.store, "lab lease query")
        try:
            return advisory_holder(db, name)
        finally:
            db.close()
    return file_lease.current_holder(config.state_dir / "leases" / f"{name}.lock")


@contextmanager
def advisory_lease(store: StoreLocation, name: str, holder: str, timeout: float,
                   waiting: Waiting | None = None) -> Iterator[None]:
    """The lease on ``name`` as a session-level advisory lock on a connection of its own."""
    db = connect(store, f"{HOLDER_PREFIX}{holder}")
    described = False
    try:
        described = describe(db, name, holder)  # first: whoever finds the lock held finds who holds it
        key = lock_key(name)
        file_lease.wait_to_take(name, lambda: taken(db, key), lambda: advisory_holder(db, name), timeout, waiting)
        yield
    finally:
        try:
            if described:
                db.execute("DELETE FROM lease_holders WHERE name = ? AND backend_pid = pg_backend_pid()", (name,))
        except InfrastructureError:
            pass  # the session is gone already: so is its lock, and the next holder removes the row
        finally:
            db.close()  # the session ends: PostgreSQL releases its advisory locks


def has_holders_table(db: PgConnection) -> bool:
    row = db.execute("SELECT to_regclass('lease_holders') IS NOT NULL").fetchone()
    return bool(row is not None and row[0])


# A row's session is alive while pg_stat_activity shows its pid with its start time (NULL there: a
# session of another role, whose start time this role may not read, is taken as alive).
ALIVE = ("EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = h.backend_pid "
         "AND (a.backend_start IS NULL OR a.backend_start = h.backend_start))")


def describe(db: PgConnection, name: str, holder: str) -> bool:
    """Write this session's row for ``name``: ``holder`` in full (and remove rows of sessions that
    are gone); False when the store has no lease_holders table (not opened by this lab yet)."""
    if not has_holders_table(db):
        return False
    db.execute(f"DELETE FROM lease_holders h WHERE h.name = ? AND NOT {ALIVE}", (name,))  # noqa: S608 - constant
    db.execute("INSERT INTO lease_holders (name, backend_pid, backend_start, holder, since) "
               "SELECT ?, pid, backend_start, ?, now() FROM pg_stat_activity WHERE pid = pg_backend_pid()",
               (name, holder))
    return True


def taken(db: PgConnection, key: int) -> bool:
    """Whether this session now holds the advisory lock ``key`` (it did not wait for it)."""
    row = db.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()
    return bool(row is not None and row[0])


def advisory_holder(db: PgConnection, name: str) -> str | None:
    """The holder of the advisory lock on ``name`` as its session names itself, or None if it is free."""
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF  # pg_locks shows a bigint key as two unsigned 32-bit halves
    row = db.execute(
        "SELECT l.pid, a.application_name FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::bigint = ? AND l.objid::bigint = ?", (key >> 32, key & 0xFFFFFFFF)).fetchone()
    if row is None:
        return None
    if has_holders_table(db):
        described = db.execute(f"SELECT h.holder FROM lease_holders h WHERE h.name = ? AND h.backend_pid = ? "  # noqa: S608
                               f"AND {ALIVE}", (name, row[0])).fetchone()
        if described is not None:
            return str(described[0])
    named = str(row[1] or "")
    if named.startswith(HOLDER_PREFIX):
        return named[len(HOLDER_PREFIX):]
    return f"another lab process (PostgreSQL backend pid {row[0]})"
