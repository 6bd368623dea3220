"""Ask Ansible what the inventory holds: one child process per command (``lab.ansible.resolver``).

Ansible's own ``InventoryManager`` and ``VariableManager`` read the sources (INI, YAML, scripts,
inventory plugins, directories of them, ``group_vars``/``host_vars`` files and directories) with
the lab's ansible.cfg and vault secrets, exactly as ``ansible-playbook`` will: deploy and verify
can never see different values. Importing Ansible is slow (about half a second), so this runs
once per command, for every host at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.ansible.settings import AnsibleSettings
from lab.errors import ConfigError

RESOLVE_TIMEOUT = 300  # seconds; a dynamic inventory script or plugin may ask a slow API
# Ansible by default only warns about a source it cannot parse and carries on without its hosts.
STRICT_INVENTORY = {"ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
                    "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "False"}


@dataclass(frozen=True)
class ResolvedInventory:
    """Groups with all their hosts (children's included), and each host's templated variables.

    ``unresolved`` holds, per host, the variables that could not be templated before a play runs
    (they need facts) and why; Ansible resolves them when a task uses them.
    """

    groups: dict[str, tuple[str, ...]]
    host_vars: dict[str, dict[str, Any]]
    unresolved: dict[str, dict[str, str]]


def resolve_inventory(sources: Sequence[Path], settings: AnsibleSettings) -> ResolvedInventory:
    """Resolve ``sources`` with Ansible, from the lab's directory; ConfigError (naming the first source) on
    an inventory Ansible cannot parse, a variable the lab reads that cannot be templated, or a
    missing or wrong vault secret."""
    request = {"sources": [str(s) for s in sources], "vault_ids": list(settings.vault_ids),
               "vault_password_files": list(settings.vault_password_files)}
    env = {**os.environ, **settings.environment(), **STRICT_INVENTORY}
    try:
        child = subprocess.run([sys.executable, "-m", "lab.ansible.resolver"], input=json.dumps(request).encode(),
                               capture_output=True, cwd=settings.lab_dir, env=env, timeout=RESOLVE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"Ansible did not resolve the inventory within {RESOLVE_TIMEOUT}s",
                          source=str(sources[0])) from None
    try:
        answer = json.loads(child.stdout)
    except ValueError:
        why = child.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ConfigError(f"Ansible could not read the inventory: {why[-1] if why else f'exit {child.returncode}'}",
                          source=str(sources[0])) from None
    if "error" in answer:
        raise ConfigError(f"Ansible: {answer['error']}", source=answer.get("source") or str(sources[0]),
                          line=answer.get("line"))
    return ResolvedInventory(
        groups={name: tuple(hosts) for name, hosts in answer["groups"].items()},
        host_vars=answer["hosts"],
        unresolved=answer.get("unresolved", {}),
    )
