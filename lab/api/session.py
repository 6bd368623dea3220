"""The session every use case takes: which lab, with which overrides; its config and store, opened lazily."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType

from lab.campaign.catalog import resolve
from lab.config.labfile import LabConfig, find_lab_file, load_lab
from lab.evidence.store import Store
from lab.model import BuildSpec
from lab.util.clock import current


@dataclass
class Lab:
    """One lab, as a caller names it: ``path`` is the lab file or its directory (None: ``$LAB_CONFIG``
    or ``./lab.yml``); ``provider`` runs every sandbox on that provider whatever the inventory says;
    ``allowed_signers`` verifies approvals against that file instead of the agreement's (recorded as
    an override wherever a decision is); ``vault_ids`` / ``vault_password_files`` name the Ansible
    vault secrets (files, never passwords) that the inventory and every playbook run are given;
    ``executor`` names the executor kind over lab.yml's (``inprocess`` or ``celery``);
    ``checkpoint_key`` signs the audit log's checkpoints instead of lab.yml's ``audit.checkpoint_key``
    (an operator's or a CI secret's key, kept outside the lab).

    Nothing is read until a use case needs it: ``config`` loads and validates the lab (ConfigError
    naming file:line on the first problem), ``store`` opens its store (SQLite or PostgreSQL). ``close()`` (or leaving
    a ``with`` block) closes the store; a session is for one thread.
    """

    path: str | None = None
    provider: str | None = None
    allowed_signers: Path | None = None
    vault_ids: tuple[str, ...] = ()
    vault_password_files: tuple[str, ...] = ()
    executor: str | None = None
    checkpoint_key: Path | None = None
    _store: Store | None = field(default=None, repr=False)

    @cached_property
    def config(self) -> LabConfig:
        """The lab's validated configuration, loaded on first use."""
        config = load_lab(find_lab_file(self.path), self.provider, self.allowed_signers, self.vault_ids,
                          self.vault_password_files, self.executor)
        if self.checkpoint_key is None:
            return config
        return replace(config, audit=replace(config.audit, checkpoint_key=self.checkpoint_key.absolute()))

    @property
    def store(self) -> Store:
        """The lab's store (``<state_dir>/lab.sqlite3``, or the PostgreSQL store lab.yml's ``store:`` or
        ``$LAB_STORE`` names), opened on first use; made on its first write (a command that only reads
        or is refused leaves no store behind)."""
        if self._store is None:
            self._store = Store(self.config.store, lazy=True)
        return self._store

    def existing_store(self) -> Store | None:
        """The lab's store if it exists (opened on first use), None when nothing was ever stored: reads
        that find nothing then leave no state directory behind."""
        where = self.config.store.path
        if self._store is None and where is not None and not where.exists():
            return None
        return self.store

    def close(self) -> None:
        """Close the store if it was opened; the session may be used again afterwards."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def instant(now: datetime | None) -> datetime:
    """``now`` when the caller injects a time, else ``$LAB_NOW``, else the system clock (UTC)."""
    return now if now is not None else current()


def build_spec(lab: Lab, ref: str) -> BuildSpec:
    """The build ``ref`` names (PRODUCT@VERSION, declared or registered, or PRODUCT@latest); NotFoundError
    listing the versions there are otherwise."""
    return resolve(lab.config, lab.existing_store(), ref)
