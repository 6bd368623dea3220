"""The evidence bundle: one JSON file that proves, offline, what was tested and who signed off.

It holds the build's digest, the sha256 of every file the campaign used (lab.yml, agreement,
suites, playbooks), the evidence document whose digest approvers sign, a results summary, the
current decision for every gated stage, the recorded decisions and promotions, every signed
approval, rejection and waiver, the allowed_signers text, and the newest signed checkpoint of the
audit log (a copy kept outside the store: whoever rewrites the store's log and deletes its
checkpoints is still caught by a bundle written before). ``verify_bundle`` checks that it all
hangs together and that the signatures verify, with nothing but ssh-keygen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lab.campaign import audit as campaign_audit
from lab.config.allowed_signers import signers_source
from lab.config.labfile import LabConfig
from lab.decision.evaluate import evaluate, evidence_document
from lab.decision.gather import evidence_of, latest_campaign
from lab.decision.promotion import decision_payload
from lab.decision.records import promotions
from lab.errors import ConfigError
from lab.evidence import audit
from lab.evidence.checkpoints import checkpoint_of
from lab.evidence.store import Store
from lab.model import Build
from lab.signoff.checkpoints import latest_sealed, sealed_line, signature_problem
from lab.signoff.records import signed
from lab.signoff.signing import verify_with_text
from lab.util.canonical import digest_of
from lab.util.clock import iso
from lab.util.yamlfile import decode, read_capped

FORMAT = "lab-evidence/1"


def counts_of(cells: list[Any]) -> dict[str, int]:
    """Result counts per status over the evidence document's cells."""
    counts: dict[str, int] = {}
    for cell in cells:
        for _check, status in cell[3]:
            counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


def build_bundle(config: LabConfig, store: Store, build: Build, now: datetime) -> dict[str, Any]:
    """The evidence bundle of ``build``'s latest campaign, as of ``now``."""
    campaign = latest_campaign(store, build)
    if campaign is None:
        raise ConfigError(f"{build.ref} has no campaign; run `lab run {build.ref}` first")
    evidence = evidence_of(config, store, build, campaign)
    document = evidence_document(evidence)
    decisions = {}
    for stage in config.agreement.stages:
        if stage.gate is not None:
            decisions[stage.name] = decision_payload(evaluate(stage.gate, stage, evidence, now))
    started = [e.data() for e in audit.entries(store, "campaign-start") if e.data().get("campaign") == campaign.id]
    valid = {a.record_id for a in evidence.approvals if a.signature_valid}
    valid |= {w.record_id for w in evidence.waivers if w.signature_valid}
    signers = config.agreement.allowed_signers
    chain = audit.verify(store)
    seal = latest_sealed(store, signers)
    body: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": iso(now),
        "lab": config.name,
        "build": {"product": build.product, "version": build.version, "digest": build.digest,
                  "artifact": build.artifact.name},
        "campaign": {"id": campaign.id, "state": campaign.state.value, "created_at": campaign.created_at,
                     "finished_at": campaign.finished_at},
        "files": campaign_audit.used_files(config, build.product),
        "files_at_campaign_start": started[0].get("files") if started else None,
        "golden_images": campaign_audit.golden_images(store, campaign.id),
        "evidence": document,
        "evidence_digest": digest_of(document),
        "results": {"counts": counts_of(document["cells"]), "cells": len(document["cells"])},
        "decisions": decisions,
        "recorded_decisions": [{"seq": e.seq, "time": e.time, "kind": e.kind, **e.data()}
                               for e in audit.entries(store, subject_prefix=f"{build.ref} -> ")],
        "promotions": [{k: v for k, v in p.items() if k != "verdict"} for p in promotions(store, build.product,
                                                                                                 build.version)],
        "signatures": [{"id": s.id, "kind": s.kind, "principal": s.principal, "payload": s.payload,
                        "signature": s.signature, "recorded_at": s.recorded_at, "valid": s.id in valid}
                       for s in signed(store, build.product, build.version)],
        "allowed_signers": signers.read_text(encoding="utf-8") if signers and signers.is_file() else None,
        "allowed_signers_source": signers_source(config.agreement),
        "audit": {"entries": chain.entries, "head": chain.head, "intact": chain.ok},
        "audit_checkpoint": None if seal is None else seal.to_json(),
    }
    return {**body, "bundle_digest": digest_of(body)}


@dataclass
class BundleCheck:
    """What ``verify_bundle`` found: ``problems`` empty means the bundle proves what it says."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # not a failure, but not proof either

    @property
    def ok(self) -> bool:
        return not self.problems


MAX_BUNDLE_BYTES = 256 * 1024 * 1024


def read_bundle(path: Path) -> dict[str, Any]:
    """The bundle at ``path``; ConfigError if it is not a lab evidence bundle."""
    text = decode(read_capped(path, MAX_BUNDLE_BYTES, "evidence bundle"), path)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"cannot read the evidence bundle: {exc}", source=str(path)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"not a lab evidence bundle (format {FORMAT} expected)", source=str(path))
    return data


def verify_bundle(data: dict[str, Any], allowed_signers: str | None = None) -> BundleCheck:
    """Check a bundle offline: its own digest, the evidence digest, the files against those the
    campaign started with, the results summary, the decisions, and every signature against
    ``allowed_signers`` (text; default the bundle's own)."""
    check = BundleCheck()
    body = {k: v for k, v in data.items() if k != "bundle_digest"}
    if digest_of(body) != data.get("bundle_digest"):
        check.problems.append("the bundle's content does not match its bundle_digest: it was changed")
    evidence, digest = data.get("evidence") or {}, data.get("evidence_digest")
    if digest_of(evidence) != digest:
        check.problems.append("the evidence does not match evidence_digest")
    build_digest = data.get("build", {}).get("digest")
    if evidence.get("digest") != build_digest:
        check.problems.append(f"the evidence is about sha256 {evidence.get('digest')}, not the build's {build_digest}")
    started = data.get("files_at_campaign_start")
    if started is None:
        check.notes.append("the campaign's start recorded no file hashes; the files are as of the bundle")
    else:
        for name, sha in sorted(data.get("files", {}).items()):
            if started.get(name) != sha:
                check.problems.append(f"{name} changed since the campaign started ({str(started.get(name))[:12]} "
                                      f"then, {sha[:12]} now)")
    if counts_of(evidence.get("cells", [])) != data.get("results", {}).get("counts"):
        check.problems.append("the results summary does not match the evidence's results")
    for stage, decision in sorted(data.get("decisions", {}).items()):
        if decision.get("evidence_digest") != digest:
            check.problems.append(f"the decision for {stage} was made on other evidence")
    signers = allowed_signers if allowed_signers is not None else data.get("allowed_signers")
    for item in data.get("signatures", []):
        check_signature(check, item, signers, build_digest, digest)
    check_seal(check, data, signers)
    return check


def check_seal(check: BundleCheck, data: dict[str, Any], signers: str | None) -> None:
    """The bundle's copy of the audit log's newest checkpoint: its signature against ``signers``, and
    the hash it seals against the head the bundle recorded when it sealed that very entry. A
    bundle without one says the log was not sealed (a note: the lab may have no key)."""
    raw = data.get("audit_checkpoint")
    if raw is None:
        check.warnings.append("audit chain not sealed: the bundle carries no signed checkpoint of the audit log")
        return
    checkpoint = checkpoint_of(raw)
    if checkpoint is None:
        check.problems.append("the bundle's audit_checkpoint is not a checkpoint (id, seq, hash, principal, "
                              "signed_at, reason, payload, signature)")
        return
    problem = "no allowed_signers to verify it against" if signers is None else \
        signature_problem(checkpoint, allowed_signers_text=signers)
    if problem:
        check.problems.append(f"audit {checkpoint.label()}: {problem}")
        return
    head = data.get("audit", {})
    if head.get("entries") == checkpoint.seq and head.get("head") != checkpoint.hash:
        check.problems.append(f"audit {checkpoint.label()}: it sealed hash {checkpoint.hash[:16]}… of entry "
                              f"{checkpoint.seq}, but the bundle records {str(head.get('head'))[:16]}… there")
        return
    check.notes.append(f"{sealed_line(checkpoint)}: the checkpoint's signature verifies")


def check_signature(check: BundleCheck, item: dict[str, Any], signers: str | None, build_digest: str | None,
                    digest: str | None) -> None:
    """Verify one signed record of a bundle; a record the lab counted as valid must verify."""
    label = f"{item.get('kind')} #{item.get('id')} by {item.get('principal')}"
    if signers is None:
        check.problems.append(f"{label}: no allowed_signers to verify it against")
        return
    result = verify_with_text(str(item.get("payload", "")).encode("utf-8"), str(item.get("signature", "")),
                              str(item.get("principal", "")), signers)
    try:
        payload = json.loads(str(item.get("payload", "")))
    except json.JSONDecodeError:
        payload = {}
    if not result.ok:
        (check.problems if item.get("valid") else check.notes).append(f"{label}: does not verify ({result.problem})")
        return
    if payload.get("build_digest") != build_digest:
        check.problems.append(f"{label}: signed for another build (sha256 {payload.get('build_digest')})")
    elif item.get("kind") == "approval" and payload.get("evidence_digest") != digest:
        check.notes.append(f"{label}: verifies, but was signed over other evidence; it does not count here")
    else:
        check.notes.append(f"{label}: verifies ({payload.get('stage') or payload.get('check')}, "
                           f"until {payload.get('expires')})")
