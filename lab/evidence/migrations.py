"""The store's tables, owned by the features that use them, and the migrations that create them.

Each feature declares its tables beside its records as a ``Schema``: numbered steps of SQL, each
applied once, in order, in one transaction. The evidence core (builds, campaigns, cells, results,
steps, the audit chain) is ``lab.evidence.store.EVIDENCE``; sign-off, promotions and rollouts
declare theirs in ``lab/signoff/records.py``, ``lab/decision/records.py`` and
``lab/rollout/records.py``. A feature registers its schema when its module is imported; every
``Store`` opened afterwards applies all registered schemas, and a feature's accessors call
``Store.ensure`` with theirs, so a store opened before a feature was imported still gains its
tables. Adding a table or a column = one more step in that feature's schema.

How far each feature's tables are is kept per feature in ``schema_steps`` (feature, steps), so
features never compete for one version number. Stores made before this (lab 0.1 up to issue 9)
kept one store-wide ``schema_version``: 1 (builds, campaigns, cells, results, steps, promotions),
2 (signatures, the audit chain), 3 (rollouts). Each step names the one of those versions that
already held it (``Step.legacy``), so such a store is taken over as it is: a step it already has
is recorded, never run twice, and its data stays untouched.

On PostgreSQL a step runs its ``postgresql`` script when it has one (DDL that differs: identity
columns for SQLite's implicit ``rowid`` and ``AUTOINCREMENT``, plpgsql triggers), else the same
script as on SQLite; legacy stores exist only on SQLite.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from lab.evidence.db import POSTGRESQL, SQLITE, Connection


@dataclass(frozen=True)
class Step:
    """One migration step: SQL statements run in order; ``legacy`` is the store-wide
    ``schema_version`` of old SQLite stores that already hold this step (None for steps added
    since); ``postgresql``, the step's script on PostgreSQL where its DDL differs from ``script``."""

    script: str
    legacy: int | None = None
    postgresql: str | None = None

    def statements(self, dialect: str) -> list[str]:
        """The step's statements on ``dialect``: SQLite's one by one; PostgreSQL's as one script
        (a plpgsql body's ``;`` stays inside it)."""
        if dialect == POSTGRESQL:
            return [self.postgresql or self.script]
        return statements(self.script)


@dataclass(frozen=True)
class Schema:
    """A feature's tables in the store: its steps, step 1 first."""

    feature: str
    steps: tuple[Step, ...]


_REGISTERED: dict[str, Schema] = {}


def register(schema: Schema) -> Schema:
    """Make ``schema`` part of every store opened from now on; returns it. A feature registers its
    own schema when its module is imported. Registering the same schema again changes nothing;
    another schema under a feature name already taken is a programming error (ValueError)."""
    known = _REGISTERED.setdefault(schema.feature, schema)
    if known != schema:
        raise ValueError(f"a different schema is already registered for feature {schema.feature!r}")
    return schema


def registered() -> tuple[Schema, ...]:
    """Every registered schema, in the order they were registered."""
    return tuple(_REGISTERED.values())


def statements(script: str) -> list[str]:
    """The SQL statements of a migration script, in order (a trigger body's ``;`` does not split it)."""
    found, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        found.append(pending.strip())
    return found


def apply(db: Connection, schema: Schema, dialect: str = SQLITE) -> int:
    """Bring ``schema``'s tables up to its last step inside ``db``'s open transaction; the number
    of steps whose SQL ran (steps an old store already held are only recorded)."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_steps (feature TEXT PRIMARY KEY, steps INTEGER NOT NULL)")
    row = db.execute("SELECT steps FROM schema_steps WHERE feature = ?", (schema.feature,)).fetchone()
    done = int(row[0]) if row else 0
    if done >= len(schema.steps):
        return 0
    held = legacy_version(db, dialect)
    ran = 0
    for step in schema.steps[done:]:
        if step.legacy is None or step.legacy > held:
            for statement in step.statements(dialect):
                db.execute(statement)
            ran += 1
    db.execute("INSERT INTO schema_steps VALUES (?, ?) ON CONFLICT(feature) DO UPDATE SET steps = excluded.steps",
               (schema.feature, len(schema.steps)))
    return ran


def legacy_version(db: Connection, dialect: str = SQLITE) -> int:
    """The store-wide ``schema_version`` of a store made before features kept their own steps (0 if none)."""
    if "schema_version" not in tables(db, dialect):
        return 0
    row = db.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])


def applied(db: Connection, dialect: str = SQLITE) -> dict[str, int]:
    """How many steps of each feature's schema the store holds."""
    if "schema_steps" not in tables(db, dialect):
        return {}
    return {str(r[0]): int(r[1]) for r in db.execute("SELECT feature, steps FROM schema_steps ORDER BY feature")}


def tables(db: Connection, dialect: str = SQLITE) -> set[str]:
    """The names of the tables in the store (on PostgreSQL: in the connection's current schema)."""
    if dialect == POSTGRESQL:
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {str(r[0]) for r in db.execute(query)}


PG_ROWID = "rowid BIGINT GENERATED ALWAYS AS IDENTITY"
"""SQLite's implicit ``rowid`` on PostgreSQL, for tables read back in insertion order (``ORDER BY
rowid``): the last column, so an INSERT of the other columns' VALUES leaves it to its default."""


def pg_append_only(table: str, message: str) -> str:
    """PostgreSQL DDL that refuses UPDATE, DELETE and TRUNCATE on ``table`` with ``message``, as the
    SQLite triggers ``<table>_no_update`` / ``<table>_no_delete`` do."""
    return f"""
    CREATE OR REPLACE FUNCTION lab_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'integrity_constraint_violation'; END $$;
    CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
        FOR EACH ROW EXECUTE FUNCTION lab_append_only('{message}');
    CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION lab_append_only('{message}');
    CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION lab_append_only('{message}');
    """
