"""Dispatch rows: every task a controller publishes is committed to the store first, with its
deterministic id and its whole message, so a controller that died mid-wave can reattach.

``plan`` commits the rows (state ``published``: the message may or may not have left before a
crash) before anything is sent; ``finish`` marks a row ``done`` once its outcome is recorded. On
resume, ``unfinished`` gives back the tasks of a scope (a rollout's wave, a campaign run) that
have no recorded outcome: finished on a worker -> its outcome is taken; running -> waited for;
queued or lost -> published again under the same id (workers skip a task id they already did).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from lab.evidence.migrations import PG_ROWID, Schema, Step, register
from lab.evidence.store import Store
from lab.executors.base import Task
from lab.util.clock import now

DISPATCH_TABLE = """
    CREATE TABLE dispatches (
        task_id TEXT PRIMARY KEY, subject TEXT NOT NULL, scope TEXT NOT NULL, attempt INTEGER NOT NULL,
        kind TEXT NOT NULL, zone TEXT NOT NULL, task TEXT NOT NULL, state TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL{rowid});
    CREATE INDEX dispatches_by_scope ON dispatches (subject, scope, state);
    """
DISPATCH = register(Schema("dispatch", (
    Step(DISPATCH_TABLE.format(rowid=""), postgresql=DISPATCH_TABLE.format(rowid=", " + PG_ROWID)),
)))

PUBLISHED = "published"
DONE = "done"


class Dispatches:
    """The dispatch rows of one store."""

    def __init__(self, store: Store) -> None:
        store.ensure(DISPATCH)
        self.store = store

    def plan(self, scope: str, attempt: int, tasks: list[Task]) -> None:
        """Commit a row for every task of ``scope`` (one transaction) before any of them is sent."""
        at = now()
        with self.store.transaction() as db:
            db.executemany("INSERT INTO dispatches VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (task_id) DO NOTHING",
                           [(t.id, t.subject, scope, attempt, t.kind, t.zone, json.dumps(t.to_json(), sort_keys=True),
                             PUBLISHED, at, at) for t in tasks])

    def take_up(self, subject: str, scope: str, covers: Callable[[Task], Iterable[str]],
                fresh: Callable[[set[str], int], list[Task]]) -> list[Task]:
        """The tasks of ``scope`` still to be done: those planned before without a recorded outcome
        (a resumed controller reattaches to them under their own ids), then ``fresh(covered,
        attempt)``: new tasks for what none of them ``covers``, committed here before this returns."""
        reattached = self.unfinished(subject, scope)
        covered = {item for task in reattached for item in covers(task)}
        attempt = self.attempts(subject, scope) + 1
        new = fresh(covered, attempt)
        if new:
            self.plan(scope, attempt, new)
        return reattached + new

    def finish(self, task_id: str) -> None:
        """The outcome of ``task_id`` is recorded: its row is done."""
        with self.store.transaction() as db:
            db.execute("UPDATE dispatches SET state=?, updated_at=? WHERE task_id=?", (DONE, now(), task_id))

    def unfinished(self, subject: str, scope: str) -> list[Task]:
        """The tasks of ``scope`` published without a recorded outcome, in the order they were planned."""
        with self.store.reading() as db:
            rows = db.execute("SELECT task FROM dispatches WHERE subject=? AND scope=? AND state=? "
                              "ORDER BY attempt, rowid", (subject, scope, PUBLISHED)).fetchall()
        return [Task.from_json(json.loads(str(row[0]))) for row in rows]

    def attempts(self, subject: str, scope: str) -> int:
        """How many times tasks of ``scope`` were planned (the next attempt is one more)."""
        with self.store.reading() as db:
            row = db.execute("SELECT MAX(attempt) FROM dispatches WHERE subject=? AND scope=?",
                             (subject, scope)).fetchone()
        return int(row[0] or 0)

    def of(self, subject: str) -> list[tuple[str, str, str, str]]:
        """Every row of ``subject``: (task id, scope, state, kind)."""
        with self.store.reading() as db:
            rows = db.execute("SELECT task_id, scope, state, kind FROM dispatches WHERE subject=? ORDER BY rowid",
                              (subject,)).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]
