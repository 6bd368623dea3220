"""The child process that asks Ansible itself what the inventory holds (``python -m lab.ansible.resolver``).

It reads a request (inventory sources, vault ids, vault password files) as JSON on stdin and
writes one JSON document on stdout: every group with its hosts, and every host with its
variables as ``ansible-playbook`` would see them before its first task (``InventoryManager`` +
``VariableManager``, each value templated, vaulted values decrypted), plus the connection and
privilege-escalation settings that come from ``ansible.cfg`` or the environment rather than from
variables (``remote_user``, ``private_key_file``, ``[ssh_connection]`` ``ssh_args``, ...), under
the variable names that would carry them.

It runs in a process of its own so that Ansible reads the ``ansible.cfg`` the lab chose
(``ANSIBLE_CONFIG``, set by the parent: Ansible reads its configuration once, on import) and its
global state never touches the lab's process. Decrypted values travel only on this pipe.
Imports nothing of lab: only the standard library and Ansible.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

# Variables Ansible adds to every host itself: not the inventory's, so not the lab's either.
MAGIC = frozenset({
    "ansible_config_file", "ansible_playbook_python", "ansible_version", "groups", "playbook_dir",
    "inventory_hostname", "inventory_hostname_short", "group_names", "inventory_dir", "inventory_file",
    "ansible_facts", "omit", "hostvars", "ansible_play_hosts", "ansible_play_batch", "role_names",
})
# Variables the lab reads itself: one that cannot be templated is an error, not a variable left out.
LAB_READ_PREFIXES = ("ansible_", "lab_")
# ssh connection options -> the variable that carries each (the ssh plugin's own names).
SSH_OPTIONS = {
    "remote_user": "ansible_user",
    "port": "ansible_port",
    "private_key_file": "ansible_ssh_private_key_file",
    "ssh_args": "ansible_ssh_args",
    "ssh_common_args": "ansible_ssh_common_args",
    "ssh_extra_args": "ansible_ssh_extra_args",
    "timeout": "ansible_ssh_timeout",
}
BECOME_SETTINGS = {"DEFAULT_BECOME": "ansible_become", "DEFAULT_BECOME_METHOD": "ansible_become_method",
                   "DEFAULT_BECOME_USER": "ansible_become_user", "DEFAULT_BECOME_FLAGS": "ansible_become_flags",
                   "DEFAULT_BECOME_EXE": "ansible_become_exe"}


class Refused(Exception):
    """A problem with the inventory or the vault secrets, said in one message (with its file:line when known)."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.line = line


def main() -> int:
    """Answer the request on stdin; exit 0 with the inventory, or 2 with ``{"error": ...}``."""
    request = json.load(sys.stdin)
    try:
        answer = resolve(request["sources"], request.get("vault_ids", []), request.get("vault_password_files", []))
    except Refused as exc:
        json.dump({"error": str(exc), "source": exc.source, "line": exc.line}, sys.stdout)
        return 2
    json.dump(answer, sys.stdout, default=str)
    return 0


def resolve(sources: list[str], vault_ids: list[str], password_files: list[str]) -> dict[str, Any]:
    """Groups, hosts and their templated variables, as Ansible resolves them."""
    from ansible import constants as C
    from ansible.cli import CLI
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.utils.display import Display
    from ansible.vars.manager import VariableManager

    problems = capture_warnings(Display)
    loader = DataLoader()
    try:
        secrets = CLI.setup_vault_secrets(loader, vault_ids=vault_ids, vault_password_files=password_files,
                                          ask_vault_pass=False, auto_prompt=False)
    except AnsibleError as exc:
        raise Refused(f"vault secret: {one_line(exc)}") from None
    loader.set_vault_secrets(secrets)
    try:
        inventory = InventoryManager(loader=loader, sources=sources)
    except AnsibleError as exc:
        raise first_problem(problems, sources) or Refused(one_line(exc)) from None
    refused = first_problem(problems, sources)
    if refused is not None:
        raise refused
    manager = VariableManager(loader=loader, inventory=inventory)
    groups = {name: [h.name for h in group.get_hosts()] for name, group in inventory.groups.items()}
    config_vars = configured_connection(C)
    hosts: dict[str, Any] = {}
    unresolved: dict[str, dict[str, str]] = {}
    for host in inventory.get_hosts():
        variables, failed = templated(loader, manager.get_vars(host=host, include_hostvars=False), host.name)
        hosts[host.name] = with_absolute_keys({**config_vars(variables), **variables})
        if failed:
            unresolved[host.name] = failed
    return {"groups": groups, "hosts": hosts, "unresolved": unresolved}


UNEXPECTED_KEY = re.compile(r"Skipping unexpected key \((.+?)\) in group")


def first_problem(problems: list[tuple[str, Any]], sources: list[str]) -> Refused | None:
    """The problem to report of those Ansible warned about: preferably one it located in a file."""
    if not problems:
        return None
    located = [(message, origin) for message, origin in problems if getattr(origin, "line_num", None)]
    message, origin = (located or problems)[0]
    source, line = getattr(origin, "path", None), getattr(origin, "line_num", None)
    key = UNEXPECTED_KEY.search(message)
    if key and source is None:
        source, line = find_key(key.group(1), sources)
    return Refused(message, source, line)


def find_key(key: str, sources: list[str]) -> tuple[str | None, int | None]:
    """Where ``key:`` first appears in the YAML files of ``sources`` (Ansible's warning does not say)."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*:")
    files: list[Path] = []
    for source in map(Path, sources):
        files += sorted(source.rglob("*.y*ml")) if source.is_dir() else [source]
    for file in files:
        try:
            lines = file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for number, text in enumerate(lines, start=1):
            if pattern.match(text):
                return str(file), number
    return None, None


def templated(loader: Any, everything: dict[str, Any], host: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The host's own variables, each templated over all of them; those that cannot be, apart with why.

    Ansible templates a variable only when a task uses it; one that needs facts (``ansible_env``)
    is left out here. A variable the lab reads itself (``ansible_*``, ``lab_*``) must resolve.
    """
    from ansible.errors import AnsibleError
    from ansible.template import Templar

    templar = Templar(loader=loader, variables=everything)
    resolved: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name, value in everything.items():
        if name in MAGIC:
            continue
        try:
            resolved[name] = templar.template(value)
        except AnsibleError as exc:
            reason = one_line(exc)
            if "vault" in reason.lower() or "decrypt" in reason.lower():
                raise Refused(f"host {host}: variable {name} cannot be resolved: {reason}; give the vault secret "
                              "with --vault-password-file FILE, --vault-id [LABEL@]FILE or "
                              "$ANSIBLE_VAULT_PASSWORD_FILE") from None
            if name.startswith(LAB_READ_PREFIXES):
                raise Refused(f"host {host}: variable {name} cannot be resolved: {reason}") from None
            failed[name] = reason
    return resolved, failed


def with_absolute_keys(variables: dict[str, Any]) -> dict[str, Any]:
    """Key paths made absolute against the lab's directory (this process's working directory, as it is
    ``ansible-playbook``'s), so verify's ssh finds the key deploy used from wherever lab was started."""
    for name in ("ansible_ssh_private_key_file", "ansible_private_key_file"):
        value = variables.get(name)
        if isinstance(value, str) and value:
            variables[name] = os.path.abspath(os.path.expanduser(value))
    return variables


def configured_connection(constants: Any) -> Any:
    """A function giving, for a host's variables, the ssh and become settings that come from
    ansible.cfg or the environment (not from variables or Ansible's defaults), as variables."""
    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import connection_loader

    become = {}
    for setting, variable in BECOME_SETTINGS.items():
        value, origin = constants.config.get_config_value_and_origin(setting)
        if origin not in (None, "default") and value not in (None, ""):
            become[variable] = value
    ssh = connection_loader.get("ssh", PlayContext(), None)

    def settings(variables: dict[str, Any]) -> dict[str, Any]:
        ssh.set_options(var_options={k: v for k, v in variables.items() if k.startswith("ansible_")})
        found = dict(become)
        for option, variable in SSH_OPTIONS.items():
            value, origin = ssh.get_option_and_origin(option)
            if origin not in (None, "default") and not str(origin).startswith("var") and value not in (None, ""):
                found[variable] = value
        return found

    return settings


def capture_warnings(display_class: Any) -> list[tuple[str, Any]]:
    """Ansible's warnings while it parses the inventory, collected with the origin (file:line) each
    names, if any: lab makes them errors, where Ansible would carry on without the hosts."""
    collected: list[tuple[str, Any]] = []

    def warning(self: Any, msg: str, *args: Any, obj: Any = None, **kwargs: Any) -> None:
        collected.append((str(msg), obj))

    def error_as_warning(self: Any, msg: str | None, exception: BaseException, *args: Any, obj: Any = None,
                         **kwargs: Any) -> None:
        collected.append((f"{msg or ''} {one_line(exception)}".strip(), getattr(exception, "obj", None) or obj))

    display_class.warning = warning
    display_class.error_as_warning = error_as_warning
    return collected


def one_line(exc: BaseException) -> str:
    """An Ansible error's message on one line (it spreads its cause and origin over several)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip() and "<<<" not in line)
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
