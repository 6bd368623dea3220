"""The lab's inventory, as Ansible itself resolves it (see ``lab.ansible.inventory``).

The inventory's variables (``ansible_host``, ``ansible_port``, ``ansible_connection``,
``ansible_winrm_*``, ...) are the source of truth for reaching a host. Ansible reads the same
sources for deploy, with the same ansible.cfg and vault secrets, so deploy and verify never
disagree: there is no second reading of the files here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.ansible.inventory import resolve_inventory
from lab.ansible.settings import AnsibleSettings
from lab.errors import ConfigError


@dataclass(frozen=True)
class Inventory:
    """Hosts, their groups and their variables as Ansible resolved them (templated, vault decrypted).

    ``path`` is the first source (for messages), ``sources`` every one, in the order given.
    """

    path: Path
    sources: tuple[Path, ...]
    groups: dict[str, tuple[str, ...]]
    host_vars: dict[str, dict[str, Any]]
    unresolved: dict[str, dict[str, str]]

    def hosts_in(self, group: str) -> list[str]:
        """Every host of ``group`` and its child groups, sorted by name (none for an unknown group)."""
        return sorted(self.groups.get(group, ()))

    def variables(self, host: str) -> dict[str, Any]:
        """The host's variables (a copy), with Ansible's precedence: group vars from shallow to
        deep groups, then the host's own, ``group_vars``/``host_vars`` files and directories included."""
        return dict(self.host_vars.get(host, {}))


def load_inventory(sources: tuple[Path, ...], settings: AnsibleSettings) -> Inventory:
    """Resolve the inventory at ``sources`` (files, directories or plugin configs) with Ansible."""
    for source in sources:
        if not source.exists():
            raise ConfigError("inventory not found; create it or fix 'inventory' in lab.yml", source=str(source))
    resolved = resolve_inventory(sources, settings)
    return Inventory(sources[0], sources, resolved.groups, resolved.host_vars, resolved.unresolved)
