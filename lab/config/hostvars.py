"""Inventory variables lab itself reads, checked for meaning wherever the inventory came from.

Ansible takes any value; lab must not: a port of ``"ssh"`` or ``70000``, a timeout of ``.nan``, a
reset playbook outside the lab would each fail late, on a sandbox, or do harm. These checks run on
each host's merged variables (``Inventory.variables``), so they hold however the inventory is read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lab.config.paths import Confinement
from lab.errors import ConfigError

PORT_VARIABLES = ("ansible_port", "ansible_ssh_port", "ansible_winrm_port")
SECONDS_VARIABLES = ("lab_install_timeout", "lab_uninstall_timeout", "lab_max_clock_skew")
TEXT_VARIABLES = ("ansible_host", "ansible_user", "ansible_connection", "lab_platform", "lab_provider")
MAX_SECONDS = 7 * 86400


def check_host_variables(host: str, variables: dict[str, Any], source: Path,
                         confinement: Confinement | None = None) -> None:
    """ConfigError naming the host, the variable, its value and what to write, for the first bad one."""

    def bad(name: str, what: str) -> ConfigError:
        return ConfigError(f"host {host!r}: {name} is {variables[name]!r}; {what}", source=str(source))

    for name, value in variables.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise bad(name, "write a finite number (or quote it if it is text)")
    for name in PORT_VARIABLES:
        if name in variables and not templated(variables[name]) and port_number(variables[name]) is None:
            raise bad(name, "write a port number from 1 to 65535")
    for name in SECONDS_VARIABLES:
        value = variables.get(name)
        if name in variables and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 < value <= MAX_SECONDS):
            raise bad(name, f"write a number of seconds above 0 and at most {MAX_SECONDS} (7 days)")
    for name in TEXT_VARIABLES:
        value = variables.get(name)
        if name in variables and not templated(value) and (not isinstance(value, str) or not value.strip()
                                  or any(c in value for c in "\0\n\r")):
            raise bad(name, "write it as one line of text")
    reset = variables.get("lab_reset_playbook")
    if confinement is not None and reset not in (None, ""):
        if not isinstance(reset, str):
            raise bad("lab_reset_playbook", "write a path to a playbook, relative to the lab's directory")
        confinement.resolve(reset, f"host {host!r}: lab_reset_playbook", source=source, line=None, must_exist="file")


def templated(value: Any) -> bool:
    """Whether ``value`` is a Jinja expression Ansible fills in (``"{{ port }}"``), which lab cannot judge here."""
    return isinstance(value, str) and "{{" in value


def port_number(value: Any) -> int | None:
    """``value`` as a TCP port (an integer or a string of digits, 1 to 65535); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and 1 <= value <= 65535 else None
