"""Checkpoints of the audit chain in the store, and what they say about the log as it is now.

A checkpoint is a signed statement "the audit log's entry ``seq`` had hash ``hash``": someone
holding a key listed in allowed_signers vouches for the whole chain up to that entry. Its row
keeps the signed payload (canonical JSON: format, seq, hash, signed_at, principal, namespace,
reason, lab) and the armored SSH signature; the columns beside them are for reading only, what
a checkpoint vouches for is always read from the signed payload. Signing and checking the
signature is ``lab.signoff.checkpoints``; this module keeps the rows and compares them with the
log: an attacker who rewrites an entry and recomputes every later hash and the head passes the
chain's own check, but not a checkpoint sealed after that entry, and a log cut back (its head
moved back) before a checkpoint's seq is caught too.

The table is its own feature (``audit-checkpoint``): one plain-SQL step that SQLite and
PostgreSQL both accept (ids are given by lab, one more than the largest, under the store's
single-writer rule), then the append-only guard, SQLite triggers or PostgreSQL's plpgsql ones as
on the audit log itself. Everything here works on a ``lab.evidence.db.Connection`` of either
backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lab.evidence.audit import AuditEntry, Finding
from lab.evidence.db import Connection, Row
from lab.evidence.migrations import Schema, Step, pg_append_only, register
from lab.evidence.store import Store

CHECKPOINTS = register(Schema("audit-checkpoint", (
    Step("""
    CREATE TABLE audit_checkpoints (
        id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, principal TEXT NOT NULL,
        signed_at TEXT NOT NULL, reason TEXT NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL);
    """),
    Step("""
    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
    CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
    """, postgresql=pg_append_only("audit_checkpoints", "audit checkpoints are append-only")),
)))


@dataclass(frozen=True)
class Checkpoint:
    """One stored checkpoint: the signed ``payload`` (canonical JSON) and its ``signature``; the other
    fields are the row's copies of what the payload says."""

    id: int
    seq: int
    hash: str
    principal: str
    signed_at: str
    reason: str
    payload: str
    signature: str

    def data(self) -> Any:
        """The signed payload as data (None when it is not JSON)."""
        try:
            return json.loads(self.payload)
        except ValueError:
            return None

    def label(self) -> str:
        """``checkpoint 3 (seq 41, signed by lab-audit@example.no at 2026-12-04T17:00:03+00:00)``."""
        return f"checkpoint {self.id} (seq {self.seq}, signed by {self.principal} at {self.signed_at})"

    def to_json(self) -> dict[str, Any]:
        """The checkpoint as the bundle, the reports and ``lab audit verify --json`` carry it."""
        return {"id": self.id, "seq": self.seq, "hash": self.hash, "principal": self.principal,
                "signed_at": self.signed_at, "reason": self.reason, "payload": self.payload,
                "signature": self.signature}


def checkpoint_of(data: Any) -> Checkpoint | None:
    """A checkpoint from its ``to_json`` form (as a bundle carries it); None when it is not one."""
    if not isinstance(data, dict):
        return None
    try:
        return Checkpoint(int(data["id"]), int(data["seq"]), str(data["hash"]), str(data["principal"]),
                          str(data["signed_at"]), str(data["reason"]), str(data["payload"]), str(data["signature"]))
    except (KeyError, TypeError, ValueError):
        return None


def insert(db: Connection, payload: str, signature: str) -> Checkpoint:
    """Keep a signed checkpoint inside ``db``'s open transaction (on a store that ensured ``CHECKPOINTS``)."""
    data = json.loads(payload)
    row = db.execute("SELECT MAX(id) FROM audit_checkpoints").fetchone()
    checkpoint = Checkpoint(int(row[0] or 0) + 1, int(data["seq"]), str(data["hash"]), str(data["principal"]),
                            str(data["signed_at"]), str(data["reason"]), payload, signature)
    db.execute("INSERT INTO audit_checkpoints (id, seq, hash, principal, signed_at, reason, payload, signature) "
               "VALUES (?,?,?,?,?,?,?,?)", (checkpoint.id, checkpoint.seq, checkpoint.hash, checkpoint.principal,
                                            checkpoint.signed_at, checkpoint.reason, payload, signature))
    return checkpoint


def checkpoints(store: Store) -> list[Checkpoint]:
    """Every stored checkpoint, oldest first."""
    store.ensure(CHECKPOINTS)
    with store.reading() as db:
        return stored(db)


def stored(db: Connection) -> list[Checkpoint]:
    """Every checkpoint ``db`` sees (inside ``Store.snapshot()``: in the same snapshot as the log), oldest first."""
    return [checkpoint_row(r) for r in db.execute("SELECT * FROM audit_checkpoints ORDER BY id").fetchall()]


def checkpoint_row(r: Row) -> Checkpoint:
    return Checkpoint(int(r["id"]), int(r["seq"]), str(r["hash"]), str(r["principal"]), str(r["signed_at"]),
                      str(r["reason"]), str(r["payload"]), str(r["signature"]))


def sealed_fields_problem(checkpoint: Checkpoint, data: Any) -> str:
    """Why the row's copies disagree with the signed payload, or the payload is no checkpoint ("" if fine)."""
    if not isinstance(data, dict):
        return "its signed payload is not a JSON object"
    if not isinstance(data.get("seq"), int) or not isinstance(data.get("hash"), str):
        return "its signed payload has no seq and hash"
    for name in ("seq", "hash", "principal", "signed_at", "reason"):
        if data.get(name) != getattr(checkpoint, name):
            return f"its row says {name} {getattr(checkpoint, name)!r}, but the signed payload says {data.get(name)!r}"
    return ""


def against_log(log: list[AuditEntry], sealed: list[Checkpoint]) -> list[Finding]:
    """What the checkpoints in ``sealed`` (oldest first, each with a valid signature) say against
    the log as it is: an entry whose hash is no longer the one sealed (the chain was rewritten at
    or before it, after the last entry a checkpoint still matches), or a seal beyond the log's
    end (entries removed from the end, the head moved back)."""
    by_seq = {entry.seq: entry for entry in log}
    last = log[-1].seq if log else 0
    findings: list[Finding] = []
    intact = 0  # the highest seq a checkpoint still matches
    for checkpoint in sealed:
        entry = by_seq.get(checkpoint.seq)
        where = checkpoint.label()
        if checkpoint.seq > last:
            findings.append(Finding(where, checkpoint.seq, f"{where} sealed entry {checkpoint.seq}, but the log "
                                    f"ends at entry {last}: entries {last + 1}..{checkpoint.seq} were removed and "
                                    "the head moved back"))
        elif entry is None:
            findings.append(Finding(where, checkpoint.seq, f"entry {checkpoint.seq}, which {where} sealed, is "
                                    "missing from the log"))
        elif entry.hash != checkpoint.hash:
            since = f"after entry {intact}, which an earlier checkpoint still matches" if intact else \
                "no earlier checkpoint narrows it down"
            findings.append(Finding(where, checkpoint.seq, f"entry {checkpoint.seq} is not the one {where} sealed "
                                    f"(its hash was {checkpoint.hash[:16]}…, now {entry.hash[:16]}…): the log was "
                                    f"rewritten at or before entry {checkpoint.seq} ({since})"))
        else:
            intact = max(intact, checkpoint.seq)
    return findings
