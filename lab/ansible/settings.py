"""Which ``ansible.cfg`` and which vault secrets every Ansible call of a lab uses.

Ansible looks for its configuration in ``$ANSIBLE_CONFIG``, then ``./ansible.cfg``, then
``~/.ansible.cfg``, then ``/etc/ansible/ansible.cfg``, and uses the first it finds. For a lab,
``./`` is the lab's directory (where lab.yml is), whatever directory lab was started from; the
file found is handed to every Ansible run (``ANSIBLE_CONFIG``), so the inventory, deploy and
verify all read the same one. As Ansible does, an ``ansible.cfg`` in a world-writable lab
directory is ignored (anyone could have put it there).

Vault secrets are named, never held: ``--vault-id [LABEL@]FILE`` and ``--vault-password-file
FILE`` (and Ansible's own ``$ANSIBLE_VAULT_PASSWORD_FILE`` and ansible.cfg ``vault_identity_list``
/ ``vault_password_file``) travel as file names; Ansible reads the passwords itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lab.errors import ConfigError

CONFIG_NAME = "ansible.cfg"


@dataclass(frozen=True)
class AnsibleSettings:
    """Where Ansible runs from (the lab's directory: every Ansible process's working directory), the
    ansible.cfg in effect (None: none found, Ansible's defaults) and the vault secrets' sources."""

    lab_dir: Path
    config_file: Path | None = None
    vault_ids: tuple[str, ...] = ()
    vault_password_files: tuple[str, ...] = ()
    config_origin: str = "none found: Ansible's defaults"

    def environment(self) -> dict[str, str]:
        """Environment variables every Ansible process of the lab gets."""
        return {"ANSIBLE_CONFIG": str(self.config_file)} if self.config_file is not None else {}

    def vault_arguments(self) -> list[str]:
        """``ansible-playbook`` options naming the vault secrets (file names only, never a password)."""
        arguments: list[str] = []
        for vault_id in self.vault_ids:
            arguments += ["--vault-id", vault_id]
        for password_file in self.vault_password_files:
            arguments += ["--vault-password-file", password_file]
        return arguments

    def describe(self) -> str:
        """One line for ``lab validate``: which ansible.cfg is in effect and why."""
        if self.config_file is None:
            return f"ansible.cfg: {self.config_origin}"
        return f"ansible.cfg: {self.config_file} ({self.config_origin})"


def find_ansible_config(lab_dir: Path, environ: dict[str, str] | None = None) -> tuple[Path | None, str]:
    """The ansible.cfg Ansible would use when run from ``lab_dir``, and where it was found.

    ConfigError when ``$ANSIBLE_CONFIG`` names a file that does not exist (Ansible would quietly
    fall back to its defaults, and deploy would not run as the user meant).
    """
    env = os.environ if environ is None else environ
    named = env.get("ANSIBLE_CONFIG")
    if named:
        path = Path(os.path.expanduser(named))
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ConfigError("$ANSIBLE_CONFIG names no file; fix it or unset it", source=str(path))
        return path.resolve(), "$ANSIBLE_CONFIG"
    local = lab_dir / CONFIG_NAME
    if local.is_file() and not world_writable(lab_dir):
        return local.resolve(), "the lab's directory"
    home = Path(os.path.expanduser("~")) / ".ansible.cfg"
    if home.is_file():
        return home, "your home directory"
    system = Path("/etc/ansible/ansible.cfg")
    if system.is_file():
        return system, "the system's"
    reason = "none found: Ansible's defaults"
    if local.is_file():
        reason += f" ({local} is ignored: its directory is world-writable, as Ansible ignores it)"
    return None, reason


def world_writable(directory: Path) -> bool:
    """True when anyone may write to ``directory`` (Ansible then ignores its ansible.cfg)."""
    try:
        return bool(directory.stat().st_mode & 0o002)
    except OSError:
        return False


def ansible_settings(lab_dir: Path, vault_ids: tuple[str, ...] = (),
                     vault_password_files: tuple[str, ...] = ()) -> AnsibleSettings:
    """The settings for a lab in ``lab_dir``; ConfigError for a vault source lab cannot use.

    Relative vault files are taken from the current directory (where the user typed them) and
    made absolute; ``prompt`` is refused: lab never asks for a password interactively.
    """
    config_file, origin = find_ansible_config(lab_dir)
    ids = tuple(vault_source(v, "--vault-id") for v in vault_ids)
    files = tuple(vault_source(f, "--vault-password-file") for f in vault_password_files)
    return AnsibleSettings(lab_dir, config_file, ids, files, origin)


def vault_source(value: str, option: str) -> str:
    """``[LABEL@]FILE`` with FILE made absolute; ConfigError for ``prompt`` or a missing file."""
    label, sep, source = value.partition("@") if "@" in value else ("", "", value)
    if source in ("prompt", "prompt_ask_vault_pass") or not source:
        raise ConfigError(f"{option} {value!r}: lab does not prompt for vault passwords; give a password "
                          "file or a script that prints the password")
    path = Path(os.path.expanduser(source))
    if not path.is_file():
        raise ConfigError(f"{option} {value!r}: vault password file not found; create it or fix the path",
                          source=str(path))
    return f"{label}{sep}{path.resolve()}"
