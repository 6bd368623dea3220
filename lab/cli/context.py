"""What every command needs: the lab's configuration and its store, opened lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import click

from lab.config.labfile import LabConfig, find_lab_file, load_lab
from lab.evidence.store import Store


@dataclass
class LabContext:
    lab_option: str | None
    provider: str | None = None
    allowed_signers: Path | None = None
    _store: Store | None = field(default=None, repr=False)

    @cached_property
    def config(self) -> LabConfig:
        return load_lab(find_lab_file(self.lab_option), self.provider, self.allowed_signers)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.config.state_dir / "lab.sqlite3")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_lab = click.make_pass_decorator(LabContext)
