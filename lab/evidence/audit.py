"""The audit log: append-only and hash-chained, in the store.

Every entry has ``seq`` (1, 2, 3, ...), ``time``, ``kind``, ``subject``, a JSON ``payload``,
``prev_hash`` (the previous entry's hash; 64 zeros for the first) and
``hash = sha256(prev_hash + canonical JSON of {seq, time, kind, subject, payload})``. The newest
seq and hash are also kept as the log's head, so removing entries from the end shows too.
Triggers refuse UPDATE and DELETE (on SQLite and on PostgreSQL); ``verify`` catches whoever drops them and edits,
removes or reorders entries anyway, and names the first bad seq.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lab.evidence.db import Connection, Row
from lab.evidence.store import Store
from lab.util.canonical import canonical_json, sha256_hex
from lab.util.clock import now

GENESIS = "0" * 64
ROLLOUT_KINDS = ("rollout-start", "rollout-resume", "rollout-abort", "rollout-wave-start", "rollout-wave-done",
                 "rollout-wave-halted", "rollout-rollback", "rollout-complete", "rollout-halted", "rollout-aborted",
                 "rollout-failed", "rollout-window-closed")  # lab/rollout/audit.py says what each one holds
KINDS = ("campaign-start", "campaign-resume", "campaign-finish", "decision", "approval", "rejection", "waiver",
         "promotion", *ROLLOUT_KINDS)


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the audit log, exactly as stored."""

    seq: int
    time: str
    kind: str
    subject: str
    payload: str  # canonical JSON text
    prev_hash: str
    hash: str

    def data(self) -> Any:
        """The payload as data."""
        return json.loads(self.payload)


@dataclass(frozen=True)
class Note:
    """An entry still to be appended: a state change carries it into its own transaction."""

    kind: str
    subject: str
    payload: dict[str, Any]

    def append_to(self, db: Connection) -> AuditEntry:
        """Append this entry inside ``db``'s open transaction (see ``append``)."""
        return append(db, self.kind, self.subject, self.payload)


@dataclass(frozen=True)
class AuditCheck:
    """What ``verify`` found: ``first_bad`` is None when the whole chain holds."""

    entries: int
    head: str
    first_bad: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def entry_hash(prev_hash: str, seq: int, time: str, kind: str, subject: str, payload: str) -> str:
    """The hash of an entry: sha256 over ``prev_hash`` followed by the canonical entry."""
    entry = canonical_json({"seq": seq, "time": time, "kind": kind, "subject": subject, "payload": payload})
    return sha256_hex(prev_hash + entry)


def append(db: Connection, kind: str, subject: str, payload: dict[str, Any],
           time: str | None = None) -> AuditEntry:
    """Append an entry inside the caller's open transaction (``Store.transaction``), after the head.

    ``time`` defaults to the wall clock, which the audit log keeps even when a decision was made
    with an injected clock (the payload says which clock the decision used).
    """
    if time is None:
        time = now()
    if kind not in KINDS:
        raise ValueError(f"unknown audit entry kind {kind!r}")
    head = head_of(db)
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    text = canonical_json(payload)
    digest = entry_hash(prev, seq, time, kind, subject, text)
    db.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?)", (seq, time, kind, subject, text, prev, digest))
    db.execute("INSERT INTO audit_head VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET seq=excluded.seq, "
               "hash=excluded.hash", (seq, digest))
    return AuditEntry(seq, time, kind, subject, text, prev, digest)


def head_of(db: Connection) -> tuple[int, str] | None:
    """The log's head as ``db`` sees it: the newest entry's seq and hash (None for an empty log)."""
    head = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return None if head is None else (int(head[0]), str(head[1]))


def entries(store: Store, kind: str | None = None, subject_prefix: str | None = None) -> list[AuditEntry]:
    """The log in seq order, optionally only one kind and/or subjects starting with ``subject_prefix``."""
    query, args = "SELECT * FROM audit WHERE 1=1", list[object]()
    if kind is not None:
        query, args = query + " AND kind = ?", [kind]
    if subject_prefix is not None:  # substr, not LIKE: a subject may hold % or _
        query, args = query + " AND substr(subject, 1, ?) = ?", [*args, len(subject_prefix), subject_prefix]
    with store.reading() as db:
        return [entry_of(row) for row in db.execute(query + " ORDER BY seq", args).fetchall()]


def entry_of(row: Row) -> AuditEntry:
    return AuditEntry(row["seq"], row["time"], row["kind"], row["subject"], row["payload"], row["prev_hash"],
                      row["hash"])


def verify(store: Store) -> AuditCheck:
    """Check the whole chain and the head; the first entry that was edited, removed or moved is named.

    The log and its head are read in one snapshot (``read_log``)."""
    with store.snapshot() as db:
        return verify_log(*read_log(db))


def read_log(db: Connection) -> tuple[list[AuditEntry], tuple[int, str] | None]:
    """The whole log and its head as ``db`` sees them: inside ``Store.snapshot()`` they are one
    snapshot, so an entry another process appends meanwhile is never mistaken for tampering."""
    log = [entry_of(row) for row in db.execute("SELECT * FROM audit ORDER BY seq").fetchall()]
    return log, head_of(db)


def verify_log(log: list[AuditEntry], head: tuple[int, str] | None) -> AuditCheck:
    """Check the chain of ``log`` (in seq order) and its ``head``, naming the first bad entry."""
    prev, expected = GENESIS, 1
    for entry in log:
        if entry.seq != expected:
            return AuditCheck(len(log), prev, expected,
                              f"entry {expected} is missing (the next entry is {entry.seq}): removed or reordered")
        if entry.prev_hash != prev:
            return AuditCheck(len(log), prev, entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1} "
                              "(prev_hash differs): an entry was removed, reordered or replaced")
        if entry_hash(prev, entry.seq, entry.time, entry.kind, entry.subject, entry.payload) != entry.hash:
            return AuditCheck(len(log), prev, entry.seq, f"entry {entry.seq} does not match its hash: it was edited")
        prev, expected = entry.hash, expected + 1
    if head is None and log:
        return AuditCheck(len(log), prev, 1, "the log's head record is missing")
    if head is not None and (head[0] != expected - 1 or head[1] != prev):
        first = min(head[0], expected)
        return AuditCheck(len(log), prev, first, f"the log ends at entry {expected - 1}, but its head says "
                          f"{head[0]}: entries were removed from the end or the head was changed")
    return AuditCheck(len(log), prev)


@dataclass(frozen=True)
class Finding:
    """Something the log's seal or the state tables say against the log: ``where`` names the
    checkpoint or the table and key, ``seq`` the entry concerned (None when there is none)."""

    where: str
    seq: int | None
    problem: str

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "seq": self.seq, "problem": self.problem}


def payloads(log: list[AuditEntry], *kinds: str) -> list[tuple[AuditEntry, dict[str, Any]]]:
    """The entries of ``log`` of these kinds whose payload is a JSON object, each with it (oldest first)."""
    found = []
    for entry in log:
        if entry.kind in kinds:
            try:
                data = entry.data()
            except ValueError:
                continue
            if isinstance(data, dict):
                found.append((entry, data))
    return found
