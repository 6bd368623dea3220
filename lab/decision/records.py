"""Promotions in the store: which build entered which stage, when, on which campaign's decision.

The ``promotions`` table is this feature's (``PROMOTIONS``). A build enters a stage at most once:
the first record stays, a second attempt changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from lab.evidence.audit import AuditEntry, Finding, append, payloads
from lab.evidence.db import Connection
from lab.evidence.migrations import Schema, Step, register
from lab.evidence.store import Store
from lab.model import Campaign
from lab.util.clock import now

PROMOTIONS = register(Schema("promotion", (
    Step("""
    CREATE TABLE promotions (
        product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL, stage TEXT NOT NULL,
        campaign_id TEXT NOT NULL, verdict TEXT NOT NULL, promoted_at TEXT NOT NULL,
        PRIMARY KEY (product, version, stage));
    """, legacy=1),
)))


def record_promotion(store: Store, campaign: Campaign, stage: str, verdict: dict[str, Any],
                     at: str | None = None) -> bool:
    """Record that the campaign's build entered ``stage`` (at ``at``, default now), with its audit
    entry, without a gate (the gate's path is ``lab.decision.promotion.promote``). False if it
    already had (nothing changes)."""
    store.ensure(PROMOTIONS)
    with store.transaction() as db:
        return insert_promotion(db, campaign, stage, verdict, at or now(), verdict.get("evidence_digest"))


def insert_promotion(db: Connection, campaign: Campaign, stage: str, verdict: dict[str, Any], at: str,
                     evidence_digest: str | None) -> bool:
    """Insert a promotion and the ``promotion`` audit entry recording it inside the caller's
    transaction (on a store that ``ensure``\\ d ``PROMOTIONS``, as ``promotion`` and ``promotions``
    do); False, and nothing written, if the build was already in ``stage``."""
    cursor = db.execute(
        "INSERT INTO promotions VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (campaign.product, campaign.version, campaign.digest, stage, campaign.id, json.dumps(verdict, sort_keys=True),
         at),
    )
    if cursor.rowcount != 1:
        return False
    ref = f"{campaign.product}@{campaign.version}"
    append(db, "promotion", f"{ref} -> {stage}",
           {"build": ref, "digest": campaign.digest, "stage": stage, "campaign": campaign.id,
            "evidence_digest": evidence_digest, "promoted_at": at})
    return True


def promotion(store: Store, product: str, version: str, stage: str) -> dict[str, Any] | None:
    """The promotion of the build into ``stage``, if recorded, as its stored row."""
    store.ensure(PROMOTIONS)
    with store.reading() as db:
        row = db.execute("SELECT * FROM promotions WHERE product=? AND version=? AND stage=?",
                         (product, version, stage)).fetchone()
    return None if row is None else dict(row)


def promotions(store: Store, product: str, version: str) -> list[dict[str, Any]]:
    """Every recorded promotion of the build (any digest), oldest first, as stored rows."""
    store.ensure(PROMOTIONS)
    with store.reading() as db:
        rows = db.execute("SELECT * FROM promotions WHERE product=? AND version=? ORDER BY promoted_at",
                          (product, version)).fetchall()
    return [dict(r) for r in rows]


def promotion_findings(db: Connection, log: list[AuditEntry]) -> list[Finding]:
    """Promotions as ``db`` sees them (in the snapshot ``log`` was read in) against the ``promotion``
    entries that recorded them: a row no entry recorded, an entry whose row is gone, and a row
    whose digest, stage, campaign or time differs from its entry, each named by table, key and seq."""
    rows = {(r["product"], r["version"], r["stage"]): dict(r) for r in db.execute("SELECT * FROM promotions")}
    entries: dict[tuple[str, str], tuple[AuditEntry, dict[str, Any]]] = {}
    for entry, data in payloads(log, "promotion"):
        entries.setdefault((str(data.get("build")), str(data.get("stage"))), (entry, data))
    findings = []
    for (product, version, stage), row in sorted(rows.items()):
        key = f"promotions {product}@{version} -> {stage}"
        found = entries.pop((f"{product}@{version}", stage), None)
        if found is None:
            findings.append(Finding(key, None, f"{key}: no promotion entry in the audit log recorded this row "
                                    "(it was written behind lab's back)"))
            continue
        entry, data = found
        for column, field in (("digest", "digest"), ("campaign_id", "campaign"), ("promoted_at", "promoted_at")):
            if row[column] != data.get(field):
                findings.append(Finding(key, entry.seq, f"{key}: the row's {column} is {row[column]!r}, but entry "
                                        f"{entry.seq} recorded {data.get(field)!r}"))
    for (ref, stage), (entry, _) in sorted(entries.items()):
        key = f"promotions {ref} -> {stage}"
        findings.append(Finding(key, entry.seq, f"{key}: entry {entry.seq} recorded this promotion, but its row "
                                "is missing"))
    return findings
