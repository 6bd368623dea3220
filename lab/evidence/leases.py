"""Leases where the store is: a file lock beside an SQLite store, an advisory lock in a PostgreSQL one.

On SQLite (one controller) a lease stays the ``flock`` of ``lab.sandboxes.lease``. With a
PostgreSQL store, controllers on several machines share the sandboxes, so a lease is a
session-level ``pg_try_advisory_lock`` keyed by a hash of the sandbox's name, held on a connection
of its own: PostgreSQL drops it when that session ends, however it ends (the process killed, the
machine gone, ``pg_terminate_backend``), so a dead controller never blocks a sandbox. The holder's
name travels as that session's ``application_name``, so a refused controller is told who holds it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from lab.config.labfile import LabConfig
from lab.config.store_location import StoreLocation
from lab.errors import InfrastructureError
from lab.evidence.db import POSTGRESQL
from lab.evidence.postgres import PgConnection, connect, lock_key
from lab.sandboxes import lease as file_lease

HOLDER_PREFIX = "lab: "


def lease(config: LabConfig, name: str, holder: str, timeout: float) -> AbstractContextManager[None]:
    """Hold the lease on ``name`` (a sandbox, or production) for ``holder``, waiting up to ``timeout``
    seconds for another holder to let go; InfrastructureError naming the holder otherwise."""
    if config.store.backend == POSTGRESQL:
        return advisory_lease(config.store, name, holder, timeout)
    return file_lease.lease(config.state_dir, name, holder, timeout)


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
def advisory_lease(store: StoreLocation, name: str, holder: str, timeout: float) -> Iterator[None]:
    """The lease on ``name`` as a session-level advisory lock on a connection of its own."""
    db = connect(store, f"{HOLDER_PREFIX}{holder}")
    try:
        key = lock_key(name)
        deadline = time.monotonic() + timeout
        while not taken(db, key):
            if time.monotonic() >= deadline:
                raise InfrastructureError(file_lease.held_by(name, advisory_holder(db, name), timeout))
            time.sleep(0.2)
        yield
    finally:
        db.close()  # the session ends: PostgreSQL releases its advisory locks


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
    named = str(row[1] or "")
    if named.startswith(HOLDER_PREFIX):
        return named[len(HOLDER_PREFIX):]
    return f"another lab process (PostgreSQL backend pid {row[0]})"
