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
from lab.decision.records import PROMOTIONS, promotion_findings
from lab.errors import ConfigError
from lab.evidence import audit
from lab.evidence.audit import AuditCheck, AuditEntry, Finding
from lab.evidence.checkpoints import CHECKPOINTS, Checkpoint, against_log, stored
from lab.evidence.store import Store
from lab.reports.bundle import build_bundle, read_bundle, verify_bundle
from lab.rollout.crosscheck import rollout_findings
from lab.rollout.records import ROLLOUT
from lab.signoff.checkpoints import Sealing, seal_now, sealed_line, sealer, signature_problem
from lab.signoff.records import SIGNOFF, signature_findings
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
    warnings: tuple[str, ...] = ()  # neither proof nor a failure (e.g. an audit log nobody sealed)

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


@dataclass(frozen=True)
class AuditVerdict:
    """What ``audit_verify`` found: the chain's own check, the newest valid checkpoint (``sealed``)
    and how many entries follow it, and every ``finding`` of the checkpoints and the state tables
    against the log. ``ok`` when the chain holds and nothing was found (and, when the lab requires
    checkpoints, a valid one seals the log)."""

    chain: AuditCheck
    checkpoints: int
    sealed: Checkpoint | None
    findings: tuple[Finding, ...]
    required: bool

    @property
    def unsealed(self) -> int:
        """How many entries come after the newest valid checkpoint's seq."""
        return max(0, self.chain.entries - (self.sealed.seq if self.sealed else 0))

    @property
    def seal_line(self) -> str:
        return sealed_line(self.sealed, f"no signed checkpoint ({self.checkpoints} stored, none valid)"
                           if self.checkpoints else "no signed checkpoint")

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.findings

    def to_json(self) -> dict[str, Any]:
        """``lab audit verify --json``: ``ok``; ``chain`` (``entries``, ``head``, ``intact``, ``first_bad``,
        ``problem``); ``seal`` (the line), ``checkpoint`` (the newest valid one: ``id``, ``seq``,
        ``hash``, ``principal``, ``signed_at``, ``reason``, ``payload``, ``signature``; null when
        none), ``checkpoints`` (how many are stored), ``unsealed_entries``; ``findings`` (``where``,
        ``seq``, ``problem``)."""
        return document(ok=self.ok, chain={"entries": self.chain.entries, "head": self.chain.head,
                                           "intact": self.chain.ok, "first_bad": self.chain.first_bad,
                                           "problem": self.chain.problem or None},
                        seal=self.seal_line, checkpoint=None if self.sealed is None else self.sealed.to_json(),
                        checkpoints=self.checkpoints, unsealed_entries=self.unsealed,
                        findings=[f.to_json() for f in self.findings])


def audit_verify(lab: Lab) -> AuditVerdict:
    """Check the audit log: its chain (the first edited, removed or reordered entry is named), its
    signed checkpoints (each signature against allowed_signers, and the log against every valid
    one: a recomputed chain or a cut-back tail is named with the seq and the checkpoint), and
    the state tables (promotions, signed records, rollouts with their waves and hosts) against
    the entries that recorded them."""
    config = lab.config
    return verdict_of(lab.store, config.agreement.allowed_signers, config.audit.require_checkpoints)


def verdict_of(store: Store, signers: Path | None, required: bool) -> AuditVerdict:
    """``audit_verify`` of ``store``, checkpoint signatures checked against ``signers``, ``required``
    whether a valid checkpoint must seal a non-empty log. The log, its head, the checkpoints and
    the state tables are read in one snapshot of the store (``Store.snapshot``), so what other
    processes commit meanwhile (a promotion and its entry, a new checkpoint) is seen whole or not
    at all, never as a row without its entry."""
    for schema in (PROMOTIONS, SIGNOFF, ROLLOUT, CHECKPOINTS):
        store.ensure(schema)
    with store.snapshot() as db:
        kept = stored(db)
        log, head = audit.read_log(db)
        tables = promotion_findings(db, log) + signature_findings(db, log) + rollout_findings(db, log)
    findings: list[Finding] = []
    valid = []
    for number, checkpoint in enumerate(kept, start=1):
        if checkpoint.id != number:
            findings.append(Finding("audit_checkpoints", None, f"checkpoint {number} is missing (the next one is "
                                    f"{checkpoint.id}): checkpoints were deleted"))
        problem = signature_problem(checkpoint, signers)
        if problem:
            findings.append(Finding(checkpoint.label(), checkpoint.seq, f"{checkpoint.label()}: {problem}"))
        else:
            valid.append(checkpoint)
    findings += against_log(log, valid)
    if required and log and not valid:
        findings.append(Finding("audit_checkpoints", None, "lab.yml requires signed checkpoints "
                                "(audit.require_checkpoints), but no valid checkpoint seals the log"))
    return AuditVerdict(audit.verify_log(log, head), len(kept), valid[-1] if valid else None,
                        tuple(findings + tables), required)


def audit_checkpoint(lab: Lab, key: Path | None = None, principal: str | None = None) -> Sealing:
    """Seal the audit log's head now with ``key`` (default lab.yml's ``audit.checkpoint_key``) as
    ``principal`` (default: the one allowed_signers lists for the key); ConfigError, with nothing
    written, when there is no key, the log is empty, or the signature would not verify."""
    store = lab.existing_store()
    if store is None:
        raise ConfigError("the audit log is empty: there is nothing to seal")
    return Sealing(seal_now(store, sealer(lab.config, key, principal, required=True)), "")


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
                           tuple(check.notes), tuple(check.problems), tuple(check.warnings))
