"""The evidence a gate looks at, as plain facts: suites, cells, waivers, approvals.

The caller (``lab.decision.gather``) reads them from the store and verifies signatures
(``ssh-keygen``) before handing them over; the gate's clauses only read them. ``evidence_document``
is the part approvers sign, ``evidence_digest`` its sha256.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lab.model import CellState, Status
from lab.util.canonical import digest_of


@dataclass(frozen=True)
class SuiteFacts:
    """What the gate needs to know about a suite."""

    name: str
    mandatory: bool
    platforms: tuple[str, ...]

    def targets(self, platform: str) -> bool:
        return "any" in self.platforms or platform in self.platforms


@dataclass(frozen=True)
class CellFacts:
    """One cell as evidence: its state and the statuses of its results (with their check ids, if known)."""

    sandbox: str
    suite: str
    state: CellState
    statuses: tuple[Status, ...]
    check_ids: tuple[str, ...] = ()

    def results(self) -> Iterator[tuple[str, Status]]:
        """(check id, status) pairs; the id is "" when the evidence did not name the checks."""
        ids = self.check_ids if len(self.check_ids) == len(self.statuses) else ("",) * len(self.statuses)
        return zip(ids, self.statuses, strict=True)


@dataclass(frozen=True)
class WaiverFacts:
    """A recorded waiver of one failing check, with the outcome of its signature's verification."""

    record_id: int
    principal: str
    sandbox: str
    suite: str
    check_id: str
    build_digest: str
    reason: str
    expires: str  # ISO 8601 with offset
    signature_valid: bool
    problem: str = ""  # why the signature did not verify (empty when it did)

    @property
    def target(self) -> str:
        return f"{self.sandbox}/{self.suite}/{self.check_id}"


@dataclass(frozen=True)
class ApprovalFacts:
    """A recorded approval or rejection, with the outcome of its signature's verification."""

    record_id: int
    principal: str
    rejection: bool
    stage: str
    build_digest: str
    evidence_digest: str
    expires: str  # ISO 8601 with offset
    signature_valid: bool
    problem: str = ""  # why the signature did not verify (empty when it did)

    @property
    def word(self) -> str:
        return "rejection" if self.rejection else "approval"


@dataclass(frozen=True)
class Evidence:
    """Everything a gate may look at, gathered from the store by the caller.

    ``entered`` maps each stage the build is in to when it entered it (ISO 8601).
    """

    build_ref: str
    digest: str
    campaign_id: str | None
    campaign_finished: bool
    sandboxes: dict[str, str]  # sandbox -> platform, as the campaign used them
    deployed_digests: dict[str, str | None]  # sandbox -> digest found on it after deploy
    suites: dict[str, SuiteFacts]
    cells: tuple[CellFacts, ...]
    entered: dict[str, str] = field(default_factory=dict)
    approvals: tuple[ApprovalFacts, ...] = ()
    waivers: tuple[WaiverFacts, ...] = ()

    @cached_property
    def signed_digest(self) -> str:
        """``evidence_digest`` of this evidence, computed once (every gate decided on it uses it)."""
        return digest_of(evidence_document(self))


def evidence_digest(evidence: Evidence) -> str:
    """The sha256 of the canonical JSON of ``evidence_document``: what approvers sign."""
    return evidence.signed_digest


def evidence_document(evidence: Evidence) -> dict[str, Any]:
    """The evidence approvers sign, as plain data: build, campaign, digests, suites, every result
    and the recorded waivers. Approvals, stage entries and the clock are not part of it (an
    approval cannot sign over itself)."""
    return {
        "format": 1,
        "build": evidence.build_ref,
        "digest": evidence.digest,
        "campaign": evidence.campaign_id,
        "finished": evidence.campaign_finished,
        "sandboxes": evidence.sandboxes,
        "deployed": evidence.deployed_digests,
        "suites": {n: {"mandatory": s.mandatory, "platforms": list(s.platforms)} for n, s in evidence.suites.items()},
        "cells": sorted([c.sandbox, c.suite, c.state.value, [[i, s.value] for i, s in c.results()]]
                        for c in evidence.cells),
        "waivers": sorted([w.target, w.principal, w.build_digest, w.expires, w.reason] for w in evidence.waivers),
    }
