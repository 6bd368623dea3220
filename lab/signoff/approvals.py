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
from lab.signoff.fields import expiry_problem, justification_problem, missing_problem
from lab.signoff.records import add_signed
from lab.signoff.signing import sign, verify
from lab.util.canonical import canonical_bytes, canonical_json
from lab.util.clock import iso

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
    refuse_unjustified(reason)
    sandbox, suite, check = target
    return {
        "format": WAIVER_FORMAT, "kind": "waiver", "build": build.ref, "build_digest": build.digest,
        "sandbox": sandbox, "suite": suite, "check": check, "reason": reason.strip(), "expires": iso(expires),
        "approver": approver, "signed_at": iso(signed_at),
    }


def refuse_unjustified(reason: str) -> None:
    """ConfigError unless ``reason`` is a justification the gate will count (``fields.justification_problem``)."""
    problem = justification_problem(reason)
    if problem:
        raise ConfigError(f"a waiver needs a justification, but {problem}; say why the failure is acceptable "
                          "with --reason \"...\" (e.g. --reason \"known issue JRN-42, fixed in 2.0.1\")")


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
    return signed_fields_problem(payload)


APPROVAL_FIELDS: tuple[str, ...] = ("build_digest", "evidence_digest", "stage", "approver")
WAIVER_FIELDS: tuple[str, ...] = ("build_digest", "sandbox", "suite", "check", "approver")


def signed_fields_problem(payload: dict[str, Any]) -> str:
    """Why a signed payload lacks a field the README promises ("" when none is missing): the
    digests, the stage or the waived check (its scope), the approver, a valid expiry after the
    signing time, and for a waiver its justification."""
    waiver = payload.get("kind") == "waiver"
    names = WAIVER_FIELDS if waiver else APPROVAL_FIELDS
    if payload.get("kind") == "rejection":  # a rejection blocks whatever evidence it was signed over
        names = tuple(n for n in names if n != "evidence_digest")
    problem = (missing_problem({name: payload.get(name) for name in names})
               or expiry_problem(payload.get("expires"), payload.get("signed_at"))
               or (justification_problem(payload.get("reason")) if waiver else ""))
    return f"the signed payload is incomplete: {problem}" if problem else ""
