"""Signed records in the store: approvals, rejections and waivers, append-only, each with its audit entry.

The ``signatures`` table is this feature's (``SIGNOFF``); triggers refuse UPDATE and DELETE (SQLite's,
or PostgreSQL's plpgsql ones, which refuse TRUNCATE too).
What a record means and whether it counts is read from its signed payload (``lab.signoff.approvals``).
"""

from __future__ import annotations

import json
from typing import Any

from lab.evidence.audit import AuditEntry, Finding, append, payloads
from lab.evidence.db import Connection
from lab.evidence.migrations import Schema, Step, pg_append_only, register
from lab.evidence.store import Store
from lab.model import Build, SignedRecord
from lab.util.canonical import canonical_json

KINDS = ("approval", "rejection", "waiver")

SIGNATURES = """
    CREATE TABLE signatures (
        id {id}, kind TEXT NOT NULL,
        product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL, stage TEXT,
        sandbox TEXT, suite TEXT, check_id TEXT,
        principal TEXT NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL, recorded_at TEXT NOT NULL);
    CREATE INDEX signatures_by_build ON signatures (product, version);
    """
SIGNOFF = register(Schema("signoff", (
    Step(SIGNATURES.format(id="INTEGER PRIMARY KEY AUTOINCREMENT") + """
    CREATE TRIGGER signatures_no_update BEFORE UPDATE ON signatures
        BEGIN SELECT RAISE(ABORT, 'signed records are append-only'); END;
    CREATE TRIGGER signatures_no_delete BEFORE DELETE ON signatures
        BEGIN SELECT RAISE(ABORT, 'signed records are append-only'); END;
    """, legacy=2, postgresql=SIGNATURES.format(id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
         + pg_append_only("signatures", "signed records are append-only")),
)))


def add_signed(store: Store, kind: str, build: Build, principal: str, payload: str, signature: str, at: str,
               stage: str | None = None, target: tuple[str, str, str] | None = None) -> SignedRecord:
    """Keep a signed approval, rejection or waiver and its audit entry, in one transaction."""
    store.ensure(SIGNOFF)
    sandbox, suite, check = target or (None, None, None)
    with store.transaction() as db:
        row = db.execute(
            "INSERT INTO signatures (kind, product, version, digest, stage, sandbox, suite, check_id, principal, "
            "payload, signature, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (kind, build.product, build.version, build.digest, stage, sandbox, suite, check, principal, payload,
             signature, at)).fetchone()
        record_id = int(row[0])
        append(db, kind, build.ref, {"record": record_id, "principal": principal, "recorded_at": at,
                                     "signed": json.loads(payload), "signature": signature})
    return SignedRecord(record_id, kind, principal, payload, signature, at)


def signed(store: Store, product: str, version: str) -> list[SignedRecord]:
    """Every signed record of the build, in the order they were recorded."""
    store.ensure(SIGNOFF)
    with store.reading() as db:
        rows = db.execute("SELECT * FROM signatures WHERE product=? AND version=? ORDER BY id",
                          (product, version)).fetchall()
    return [SignedRecord(r["id"], r["kind"], r["principal"], r["payload"], r["signature"], r["recorded_at"])
            for r in rows]


def signature_findings(db: Connection, log: list[AuditEntry]) -> list[Finding]:
    """Approvals, rejections and waivers as ``db`` sees them (in the snapshot ``log`` was read in)
    against the entries that recorded them: a row no entry recorded, an entry whose row is gone,
    and a row whose kind, build, principal, signed payload, signature, time, stage or waived check
    differs from its entry, named by table, id and seq."""
    rows = {int(r["id"]): dict(r) for r in db.execute("SELECT * FROM signatures")}
    entries: dict[int, tuple[AuditEntry, dict[str, Any]]] = {}
    for entry, data in payloads(log, *KINDS):
        if isinstance(data.get("record"), int):
            entries.setdefault(int(data["record"]), (entry, data))
    findings = []
    for record_id, row in sorted(rows.items()):
        key = f"signatures {record_id} ({row['kind']} of {row['product']}@{row['version']})"
        found = entries.pop(record_id, None)
        if found is None:
            findings.append(Finding(key, None, f"{key}: no {row['kind']} entry in the audit log recorded this row "
                                    "(it was written behind lab's back)"))
            continue
        entry, data = found
        for what, stored, logged in differences(row, entry, data):
            findings.append(Finding(key, entry.seq, f"{key}: the row's {what} is {stored!r}, but entry "
                                    f"{entry.seq} recorded {logged!r}"))
    for record_id, (entry, _) in sorted(entries.items()):
        key = f"signatures {record_id} ({entry.kind} of {entry.subject})"
        findings.append(Finding(key, entry.seq, f"{key}: entry {entry.seq} recorded this {entry.kind}, but its row "
                                "is missing"))
    return findings


def differences(row: dict[str, Any], entry: AuditEntry, data: dict[str, Any]) -> list[tuple[str, object, object]]:
    """(what, row's value, entry's value) for every field of a signed record's row its entry disagrees with."""
    signed: dict[str, Any] = data["signed"] if isinstance(data.get("signed"), dict) else {}
    pairs: list[tuple[str, object, object]] = [
        ("kind", row["kind"], entry.kind), ("build", f"{row['product']}@{row['version']}", entry.subject),
        ("principal", row["principal"], data.get("principal")), ("recorded_at", row["recorded_at"],
                                                                   data.get("recorded_at")),
        ("signature", row["signature"], data.get("signature")),
        ("signed payload", row["payload"], canonical_json(data.get("signed"))),
    ]
    if row["kind"] == "waiver":
        pairs += [(name, row[column], signed.get(name)) for name, column in
                  (("sandbox", "sandbox"), ("suite", "suite"), ("check", "check_id"))]
    else:
        pairs.append(("stage", row["stage"], signed.get("stage")))
    return [(what, stored, logged) for what, stored, logged in pairs if stored != logged]
