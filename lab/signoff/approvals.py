"""Signed approvals, rejections and waivers: what is signed, how it is recorded, how a stored one is checked.

The signed payload is canonical JSON naming everything the signature vouches for: the build and
its digest, the evidence digest (approvals), the target stage, the waived check, the expiry and
the approver. The store keeps that payload, the armored signature and the principal; the facts
handed to the policy (``lab.decision.gather.signoffs``) are read from the *signed* payload,
never from loose columns.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.evidence.store import Store
from lab.model import Build, SignedRecord
from lab.signoff.records import add_signed
from lab.signoff.signing import sign, verify
from lab.util.canonical import canonical_bytes, canonical_json
from lab.util.clock import iso, parse_instant

APPROVAL_FORMAT = "lab-approval/1"
WAIVER_FORMAT = "lab-waiver/1"


def approval_payload(build: Build, stage: str, evidence_digest: str, campaign_id: str | None, expires: datetime,
                     approver: str, signed_at: datetime, rejection: bool) -> dict[str, Any]:
    """The subject an approver signs to approve (or reject) ``build`` into ``stage`` on this evidence."""
    return {
        "format": APPROVAL_FORMAT, "kind": "rejection" if rejection else "approval",
        "build": build.ref, "build_digest": build.digest, "evidence_digest": evidence_digest,
        "campaign": campaign_id, "stage": stage, "expires": iso(expires), "approver": approver,
        "signed_at": iso(signed_at),
    }


def waiver_payload(build: Build, target: tuple[str, str, str], reason: str, expires: datetime, approver: str,
                   signed_at: datetime) -> dict[str, Any]:
    """The subject an approver signs to waive one failing check of ``build``."""
    if not reason.strip():
        raise ConfigError("a waiver needs a justification; say why with --reason \"...\"")
    sandbox, suite, check = target
    return {
        "format": WAIVER_FORMAT, "kind": "waiver", "build": build.ref, "build_digest": build.digest,
        "sandbox": sandbox, "suite": suite, "check": check, "reason": reason.strip(), "expires": iso(expires),
        "approver": approver, "signed_at": iso(signed_at),
    }


def sign_and_record(store: Store, build: Build, payload: dict[str, Any], key: Path, principal: str,
                    allowed_signers: Path | None, at: datetime) -> SignedRecord:
    """Sign ``payload`` with the key at ``key``, check the signature verifies as ``principal``
    against ``allowed_signers``, then record it (with its audit entry). A signature that would
    not count is refused with ConfigError and nothing is recorded."""
    data = canonical_bytes(payload)
    signature = sign(data, key)
    checked = verify(data, signature, principal, allowed_signers)
    if not checked.ok:
        raise ConfigError(f"not recorded: {checked.problem.rstrip('.')}. Ask for your public key to be listed for "
                          f"{principal} in allowed_signers")
    return record(store, build, payload, signature, principal, at)


def record(store: Store, build: Build, payload: dict[str, Any], signature: str, principal: str,
           at: datetime) -> SignedRecord:
    """Record an already signed ``payload`` as it is; whether it counts is decided when a gate reads it."""
    kind = str(payload.get("kind", ""))
    if kind not in ("approval", "rejection", "waiver"):
        raise ConfigError(f"cannot record a payload of kind {kind!r}")
    target = None
    if kind == "waiver":
        target = (str(payload["sandbox"]), str(payload["suite"]), str(payload["check"]))
    stage = None if kind == "waiver" else str(payload["stage"])
    return add_signed(store, kind, build, principal, canonical_json(payload), signature, iso(at), stage, target)


def payload_problem(record: SignedRecord, payload: Any, build: Build) -> str:
    """Why a stored record is not a well-formed signed subject of ``build`` ("" when it is)."""
    if not isinstance(payload, dict):
        return "the signed payload is not a JSON object"
    wanted = WAIVER_FORMAT if record.kind == "waiver" else APPROVAL_FORMAT
    if payload.get("format") != wanted or payload.get("kind") != record.kind:
        return f"the signed payload is not a {record.kind} ({payload.get('format')}, {payload.get('kind')})"
    if payload.get("approver") != record.principal:
        return f"the payload names approver {payload.get('approver')!r}, but it is recorded as {record.principal!r}"
    if payload.get("build") != build.ref:
        return f"the payload is about {payload.get('build')!r}, not {build.ref}"
    try:
        parse_instant(str(payload.get("expires")), "expiry")
    except ConfigError:
        return f"the payload's expiry {payload.get('expires')!r} is not a time"
    return ""
