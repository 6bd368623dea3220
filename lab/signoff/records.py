"""Signed records in the store: approvals, rejections and waivers, append-only, each with its audit entry.

The ``signatures`` table is this feature's (``SIGNOFF``); triggers refuse UPDATE and DELETE (SQLite's,
or PostgreSQL's plpgsql ones, which refuse TRUNCATE too).
What a record means and whether it counts is read from its signed payload (``lab.signoff.approvals``).
"""

from __future__ import annotations

import json

from lab.evidence.audit import append
from lab.evidence.migrations import Schema, Step, pg_append_only, register
from lab.evidence.store import Store
from lab.model import Build, SignedRecord

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
