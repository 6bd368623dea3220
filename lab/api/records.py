"""Use cases of the record: the hash-chained audit log, and the evidence bundle that proves a build's path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lab.api.documents import document
from lab.api.session import Lab, build_spec, instant
from lab.campaign.builds import verified_build
from lab.evidence import audit
from lab.evidence.audit import AuditCheck, AuditEntry
from lab.reports.bundle import build_bundle, read_bundle, verify_bundle
from lab.util.atomic import write_text


@dataclass(frozen=True)
class EvidenceWritten:
    """An evidence bundle written to ``path``, with its digests and how many signed records it holds."""

    build_ref: str
    path: Path
    evidence_digest: str
    signatures: int
    bundle_digest: str


@dataclass(frozen=True)
class EvidenceVerdict:
    """What checking a bundle offline found: ``problems`` empty means it proves what it says."""

    product: str
    version: str
    digest: str
    notes: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditEntries(tuple[AuditEntry, ...]):
    """Entries of the audit log, oldest first."""

    def to_json(self) -> dict[str, Any]:
        """``lab audit show --json``: entries, oldest first: seq, time, kind, subject, payload (as data),
        prev_hash, hash."""
        return document(entries=[{"seq": e.seq, "time": e.time, "kind": e.kind, "subject": e.subject,
                                  "payload": e.data(), "prev_hash": e.prev_hash, "hash": e.hash} for e in self])


def audit_show(lab: Lab, kind: str | None = None) -> AuditEntries:
    """The audit log's entries, oldest first; only those of ``kind`` when given."""
    return AuditEntries(audit.entries(lab.store, kind))


def audit_verify(lab: Lab) -> AuditCheck:
    """Check that no entry of the audit log was edited, removed or reordered; the first bad seq is named."""
    return audit.verify(lab.store)


def evidence_write(lab: Lab, build_ref: str, output: Path, now: datetime | None = None) -> EvidenceWritten:
    """Write ``build_ref``'s evidence bundle to ``output`` atomically, as of ``now``: its digest, the hashes
    of the files its campaign used, the results, every decision and signed record with the
    allowed_signers they were checked against."""
    config = lab.config
    build = verified_build(build_spec(lab, build_ref), lab.store)
    bundle = build_bundle(config, lab.store, build, instant(now))
    write_text(output, json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return EvidenceWritten(build.ref, output, str(bundle["evidence_digest"]), len(bundle["signatures"]),
                           str(bundle["bundle_digest"]))


def evidence_verify(path: Path, allowed_signers: Path | None = None) -> EvidenceVerdict:
    """Check the evidence bundle at ``path`` offline (no lab, so no session): its hashes agree and every
    signature verifies, against ``allowed_signers`` when given, else the copy inside the bundle.
    ConfigError when ``path`` is not a lab evidence bundle."""
    data = read_bundle(path)
    signers = allowed_signers.read_text(encoding="utf-8") if allowed_signers else None
    check = verify_bundle(data, signers)
    build = data.get("build", {})
    return EvidenceVerdict(str(build.get("product")), str(build.get("version")), str(build.get("digest")),
                           tuple(check.notes), tuple(check.problems))
