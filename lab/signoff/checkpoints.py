"""Sealing the audit log: sign its head with ``ssh-keygen -Y sign`` and check such seals.

A checkpoint signs ``{format, lab, seq, hash, signed_at, principal, namespace, reason}`` of the
log's newest entry in the namespace ``lab-audit-checkpoint`` (so an approval key listed only for
``lab-approval`` cannot seal, and a checkpoint signature can never pass as an approval). It is
written inside the transaction of the entry it seals (a promotion, a rollout's end) or on
demand (``lab audit checkpoint``), by the lab's key (lab.yml ``audit.checkpoint_key``) or an
operator's (``--key``). A lab without a key still promotes: the outcome says the log is not
sealed, unless lab.yml sets ``audit.require_checkpoints``, which refuses what cannot be sealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.config.labfile import LabConfig
from lab.errors import ConfigError, InfrastructureError
from lab.evidence.audit import head_of
from lab.evidence.checkpoints import CHECKPOINTS, Checkpoint, checkpoints, insert, sealed_fields_problem
from lab.evidence.db import Connection
from lab.evidence.store import Store
from lab.signoff.signing import sign, signer_identity, verify, verify_with_text
from lab.util.canonical import canonical_bytes, canonical_json
from lab.util.clock import now

NAMESPACE = "lab-audit-checkpoint"
FORMAT = "lab-audit-checkpoint/1"
NO_KEY = "no audit.checkpoint_key in lab.yml"


@dataclass(frozen=True)
class Sealing:
    """What sealing did: the ``checkpoint`` written, or None and ``note`` saying why not."""

    checkpoint: Checkpoint | None
    note: str

    def line(self) -> str:
        """``audit chain sealed at seq N by P, TIME`` or ``audit chain not sealed: WHY``."""
        return sealed_line(self.checkpoint, self.note)


def sealed_line(checkpoint: Checkpoint | None, why_not: str = "no signed checkpoint") -> str:
    """The one line reports and commands print about the log's seal."""
    if checkpoint is None:
        return f"audit chain not sealed: {why_not}"
    return f"audit chain sealed at seq {checkpoint.seq} by {checkpoint.principal}, {checkpoint.signed_at} " \
           f"(checkpoint {checkpoint.id})"


@dataclass(frozen=True)
class Sealer:
    """Signs checkpoints of one store's log with ``key`` as ``principal`` (None: the one allowed_signers
    lists for the key); ``required`` makes every failure to seal an error instead of a note."""

    lab: str
    key: Path | None
    principal: str | None
    allowed_signers: Path | None
    required: bool

    def seal(self, db: Connection, reason: str) -> Sealing:
        """Sign the log's head as ``db``'s open transaction sees it and keep the checkpoint there.

        Promises: with ``required``, ConfigError (or InfrastructureError) when it cannot be sealed,
        so the caller's transaction rolls back; otherwise a Sealing without checkpoint saying why."""
        try:
            return Sealing(self.sign_head(db, reason), "")
        except (ConfigError, InfrastructureError) as exc:
            if self.required:
                raise type(exc)(f"{exc}; lab.yml requires a signed checkpoint (audit.require_checkpoints), so "
                                "nothing was recorded") from None
            return Sealing(None, str(exc))

    def sign_head(self, db: Connection, reason: str) -> Checkpoint:
        if self.key is None:
            raise ConfigError(f"{NO_KEY}; name the lab's signing key there (audit: {{checkpoint_key: PATH}}) "
                              "or seal with `lab audit checkpoint --key KEY`")
        head = head_of(db)
        if head is None:
            raise ConfigError("the audit log is empty: there is nothing to seal")
        principal = self.principal or signer_identity(self.key, self.allowed_signers, None, NAMESPACE)
        payload = {"format": FORMAT, "lab": self.lab, "seq": head[0], "hash": head[1], "signed_at": now(),
                   "principal": principal, "namespace": NAMESPACE, "reason": reason}
        data = canonical_bytes(payload)
        signature = sign(data, self.key, NAMESPACE)
        checked = verify(data, signature, principal, self.allowed_signers, NAMESPACE)
        if not checked.ok:
            raise ConfigError(f"the checkpoint would not verify: {checked.problem.rstrip('.')}; list the key for "
                              f'{principal} in allowed_signers with namespaces="{NAMESPACE}"')
        return insert(db, canonical_json(payload), signature)


def sealer(config: LabConfig, key: Path | None = None, principal: str | None = None,
           required: bool | None = None) -> Sealer:
    """The lab's sealer: ``key`` (an operator's) or lab.yml's ``audit.checkpoint_key``, verified
    against the agreement's allowed_signers (or its override)."""
    audit = config.audit
    return Sealer(config.name, key or audit.checkpoint_key, principal or (None if key else audit.principal),
                  config.agreement.allowed_signers,
                  audit.require_checkpoints if required is None else required)


def seal_now(store: Store, sealer: Sealer, reason: str = "on demand") -> Checkpoint:
    """Seal the log's head now, in a transaction of its own; ConfigError when it cannot be."""
    store.ensure(CHECKPOINTS)
    with store.transaction() as db:
        checkpoint = sealer.sign_head(db, reason)
    return checkpoint


def signature_problem(checkpoint: Checkpoint, allowed_signers: Path | None = None,
                      allowed_signers_text: str | None = None) -> str:
    """Why ``checkpoint`` is not a valid seal ("" when it is): its signed payload is not a checkpoint
    or disagrees with its row, or the signature does not verify as the payload's principal in
    the checkpoint namespace against ``allowed_signers`` (a file, or its text from a bundle)."""
    data: Any = checkpoint.data()
    problem = sealed_fields_problem(checkpoint, data)
    if not problem and (data.get("format") != FORMAT or data.get("namespace") != NAMESPACE):
        problem = f"its signed payload is not a {FORMAT} checkpoint"
    if problem:
        return problem
    payload = checkpoint.payload.encode("utf-8")
    if allowed_signers_text is not None:
        checked = verify_with_text(payload, checkpoint.signature, checkpoint.principal, allowed_signers_text,
                                   NAMESPACE)
    else:
        checked = verify(payload, checkpoint.signature, checkpoint.principal, allowed_signers, NAMESPACE)
    return "" if checked.ok else f"its signature is not valid: {checked.problem}"


def latest_sealed(store: Store, allowed_signers: Path | None) -> Checkpoint | None:
    """The newest checkpoint whose signature verifies against ``allowed_signers`` (None: no valid seal)."""
    return next((c for c in reversed(checkpoints(store)) if not signature_problem(c, allowed_signers)), None)
