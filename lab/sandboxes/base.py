"""What every sandbox provider offers, and how providers are looked up by name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.model import SandboxSpec


@dataclass(frozen=True)
class SandboxHandle:
    """A sandbox ready for work: where its root is and the facts its provider adds.

    ``facts`` (never secrets) go to Ansible as extra vars and, merged over the host's inventory
    variables, to the transport as settings and to suites as ``${name}`` variables, so deploy
    and verify can never disagree about how to reach the host or where its files live.
    """

    name: str
    root: str
    facts: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # what reset did, in words, when it is not "reset to a clean tree" (static hosts)


@dataclass(frozen=True)
class LabSite:
    """Where the lab lives, for providers that run playbooks of their own (static: a reset playbook)."""

    root: Path  # the directory of lab.yml; playbook paths in the inventory are relative to it
    inventory: Path
    playbook_timeout: float


class SandboxProvider(ABC):
    """Creates, resets and destroys sandboxes. Every operation is idempotent."""

    name: str = ""

    def __init__(self, state_dir: Path, site: LabSite | None = None) -> None:
        self.state_dir = state_dir
        self.site = site

    @abstractmethod
    def reset(self, spec: SandboxSpec) -> SandboxHandle:
        """Bring the sandbox to its clean state (creating it if needed) and return its handle."""

    @abstractmethod
    def destroy(self, spec: SandboxSpec) -> None:
        """Remove the sandbox and everything it runs. Safe to repeat."""

    @abstractmethod
    def describe(self, spec: SandboxSpec) -> dict[str, Any]:
        """A short status for `lab sandbox list`: state and where it lives."""


PROVIDERS = {
    "local": ("lab.sandboxes.local", "LocalProvider"),
    "namespace": ("lab.sandboxes.namespace.provider", "NamespaceProvider"),
    "static": ("lab.sandboxes.static", "StaticProvider"),
}


def provider_for(name: str, state_dir: Path, site: LabSite | None = None) -> SandboxProvider:
    """The provider called ``name``, working under ``state_dir`` (and with the lab's ``site``, if given)."""
    entry = PROVIDERS.get(name)
    if entry is None:
        raise ConfigError(f"unknown sandbox provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    module = importlib.import_module(entry[0])
    cls: type[SandboxProvider] = getattr(module, entry[1])
    return cls(state_dir, site)
