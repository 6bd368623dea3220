"""The provider contract: what lab needs from whatever gives it a host, sandbox or production.

A *provider* brings hosts up, resets them to a clean state, destroys them and describes them.
The same providers serve both kinds of host the lab knows: *sandboxes* (the hosts of lab.yml's
sandbox group, reset before every campaign) and *production hosts* (the rollout's inventory
group, brought up once by ``lab production up`` and never reset by a campaign). A host names its
provider with the inventory variable ``lab_provider``. The built-in providers are ``local``,
``namespace`` and ``static``; others ship as packages of their own (see ``lab.sandboxes.registry``).

What a provider promises, for a host given as a ``SandboxSpec`` (its inventory name, platform,
provider and inventory variables):

``reset(spec) -> HostHandle``
    The host in its clean state, created if it did not exist. Idempotent. Raises
    InfrastructureError when the host cannot be brought up, ConfigError when its inventory
    variables are wrong.
``current(spec) -> HostHandle | None``
    The host as it is now, changing nothing: None when it is not up (never created, destroyed,
    or its processes are gone).
``up(spec) -> HostHandle``
    ``current(spec)``, or ``reset(spec)`` when the host is not up.
``destroy(spec)``
    Stop everything the host runs and remove it. Safe to repeat. A provider whose hosts exist
    outside the lab (``owns_hosts = False``, e.g. ``static``) only forgets what it recorded.
``halt(spec)``
    Stop everything the host runs and keep its files, so what it holds stays readable (its logs,
    what was installed). A halted host is not up: ``current`` is None and ``up`` resets it. Safe
    to repeat. Providers whose hosts run nothing of the lab's (``static``) have nothing to stop.
``describe(spec) -> dict``
    A short status for ``lab sandbox list`` and ``lab production status``: ``state`` (absent,
    ready, running, stopped, degraded, static, ...), ``where``, and ``port``, ``since``
    (epoch seconds), ``detail`` when known.
``tree(spec) -> Path | None``
    The host's root file tree as this machine sees it (``local`` hosts), for reading what the
    host holds; None when its files are not on this machine.

Golden baselines (optional; the defaults keep none, so the baseline playbook runs after every reset):

``reset_from(spec, golden) -> HostHandle``
    As ``reset``, but with ``golden``'s baseline already in place when the provider holds that
    golden image: the handle's ``golden`` is then its key. A handle whose ``golden`` is None has
    no baseline yet: the caller runs the baseline playbook, then ``capture``.
``capture(spec, golden) -> bool``
    Keep the host as it is now, right after its baseline was installed, as ``golden``'s image,
    replacing any earlier image of that key; False when the provider keeps no golden images.
``forget_golden(spec, golden)``
    Drop ``golden``'s image, so the next ``reset_from`` installs the baseline again.

A ``Golden`` is keyed by the digest of everything the baseline installs (the baseline pack, the
baseline playbook, the platform and the host variables the playbook reads): when any of them
changes the key changes and the old image is never used again.

A ``HostHandle`` carries the host's ``root`` (where suites find the files they check) and its
``facts``: never secrets, they go to Ansible as extra vars and, merged over the host's inventory
variables, to the transport as settings and to suites as ``${name}`` variables, so deploy and
verify reach the host the same way. Every provider's facts include ``sandbox_root`` and
``sandbox_name``; connection settings a provider chooses itself (a port, a key) are facts too.

A provider is constructed as ``Provider(state_dir, site, pool=...)``: ``state_dir`` is where it
keeps what it knows (``.lab/`` by default), ``site`` the lab's root, inventory and playbook
timeout (for providers that run playbooks of their own), and ``pool`` the kind of host it serves
(``sandboxes`` or ``production``), for providers that keep the two apart on disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lab.ansible.settings import AnsibleSettings
from lab.model import SandboxSpec

SANDBOXES = "sandboxes"
PRODUCTION = "production"
POOLS = (SANDBOXES, PRODUCTION)


@dataclass(frozen=True)
class Golden:
    """A golden baseline: ``key`` is the sha256 of everything the baseline installs (see the module docstring)."""

    key: str

    @property
    def label(self) -> str:
        """A short name for checkpoints and messages: ``golden-<first 12 hex digits>``."""
        return f"golden-{self.key[:12]}"


@dataclass(frozen=True)
class HostHandle:
    """A host ready for work: where its root is and the facts its provider adds (see the module docstring)."""

    name: str
    root: str
    facts: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # what reset did, in words, when it is not "reset to a clean tree" (static hosts)
    golden: str | None = None  # the key of the golden image the host was reset to (its baseline in place)


@dataclass(frozen=True)
class LabSite:
    """Where the lab lives, for providers that run playbooks of their own (static: a reset playbook)."""

    root: Path  # the directory of lab.yml; playbook paths in the inventory are relative to it
    inventory: tuple[Path, ...]  # the inventory's sources
    playbook_timeout: float
    ansible: AnsibleSettings  # the ansible.cfg and vault secrets every playbook run gets


class Provider(ABC):
    """Brings hosts up, resets, destroys and describes them (the contract: see the module docstring)."""

    name: ClassVar[str] = ""
    owns_hosts: ClassVar[bool] = True  # False: the hosts exist outside the lab, destroy only forgets them

    def __init__(self, state_dir: Path, site: LabSite | None = None, pool: str = SANDBOXES) -> None:
        self.state_dir = state_dir
        self.site = site
        self.pool = pool

    @abstractmethod
    def reset(self, spec: SandboxSpec) -> HostHandle:
        """Bring the host to its clean state (creating it if needed) and return its handle."""

    @abstractmethod
    def current(self, spec: SandboxSpec) -> HostHandle | None:
        """The host's handle as it is now, changing nothing; None when it is not up."""

    @abstractmethod
    def destroy(self, spec: SandboxSpec) -> None:
        """Remove the host and everything it runs (or, for hosts the lab does not own, its records). Safe to repeat."""

    @abstractmethod
    def describe(self, spec: SandboxSpec) -> dict[str, Any]:
        """A short status: ``state`` and ``where``, with ``port``, ``since`` and ``detail`` when known."""

    def halt(self, spec: SandboxSpec) -> None:
        """Stop what the host runs, keeping its files; by default nothing (hosts that run no lab process)."""
        del spec

    def up(self, spec: SandboxSpec) -> HostHandle:
        """The host as it is when it is up, else freshly reset: a host already up is left untouched."""
        return self.current(spec) or self.reset(spec)

    def tree(self, spec: SandboxSpec) -> Path | None:
        """The host's root file tree on this machine, if its files are here; None by default."""
        return None

    def reset_from(self, spec: SandboxSpec, golden: Golden) -> HostHandle:
        """The host reset with ``golden``'s baseline in place when this provider holds that image (the
        handle's ``golden`` says so); by default it keeps none: a plain ``reset``."""
        return self.reset(spec)

    def capture(self, spec: SandboxSpec, golden: Golden) -> bool:
        """Keep the freshly baselined host as ``golden``'s image; False (by default) when the provider keeps none."""
        return False

    def forget_golden(self, spec: SandboxSpec, golden: Golden) -> None:
        """Drop ``golden``'s image (nothing to drop by default)."""
        return None
