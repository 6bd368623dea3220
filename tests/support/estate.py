"""An "existing Ansible estate" variant of the default lab: an INI inventory in a directory of
sources, group_vars/ and host_vars/ as directories, and vaulted variables (issue 11).

The vaulted ``care_site_profile`` is one the baseline playbook writes into each sandbox and a
check reads back (``${care_site_profile}``), so deploy and verify must both decrypt it; the
vaulted ``lab_estate_secret`` is never used: it is what the leak tests search for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.labfiles import write

VAULT_PASSWORD = "estate-vault-password-7f3a"
SECRET = "Vaulted-estate-secret-9c41e"
SITE_PROFILE = "vaulted-site-5d2b"

INI = """\
# An INI inventory, as many estates keep theirs
[sandboxes]
{sandboxes}

[production]
prod-ts-[01:24]
"""

ESTATE_SUITE = """\
suite: estate-vault
description: the vaulted site profile the baseline wrote is the one verify reads
mandatory: true
platforms: [debian-12]
checks:
  - id: site-profile-is-the-vaulted-one
    type: file
    path: ${sandbox_root}/etc/care-planner/site.conf
    contains: "profile = ${care_site_profile}"
"""


def encrypt(name: str, value: str, password_file: Path) -> str:
    """``name: !vault |...`` for ``value``, by ansible-vault itself (the value travels on stdin)."""
    vault = Path(sys.executable).parent / "ansible-vault"
    done = subprocess.run([str(vault), "encrypt_string", "--vault-password-file", str(password_file),
                           "--stdin-name", name], input=value, capture_output=True, text=True, check=True)
    return done.stdout


def make_estate(lab_yml: Path, password_file: Path, sandboxes: tuple[str, ...] = ("ts-sbx-01", "ts-sbx-02")) -> None:
    """Turn the default lab copied at ``lab_yml`` into the estate variant (see the module docstring)."""
    root = lab_yml.parent
    write(password_file, VAULT_PASSWORD + "\n")
    inventory = root / "inventory"
    (inventory / "hosts.yml").unlink()
    write(inventory / "hosts.ini", INI.format(sandboxes="\n".join(sandboxes)))
    write(inventory / "group_vars" / "sandboxes" / "main.yml",
          "ansible_connection: local\nlab_provider: local\nlab_platform: debian-12\n")
    write(inventory / "group_vars" / "sandboxes" / "vault.yml", encrypt("care_site_profile", SITE_PROFILE,
                                                                        password_file))
    write(inventory / "group_vars" / "production.yml",
          "ansible_connection: local\nlab_provider: local\nlab_platform: debian-12\n"
          "care_site_profile: production\n")
    write(inventory / "group_vars" / "all" / "vault.yml", encrypt("lab_estate_secret", SECRET, password_file))
    write(inventory / "host_vars" / sandboxes[0] / "main.yml", "lab_estate_note: from a host_vars directory\n")
    write(root / "test_suites" / "estate-vault.yml", ESTATE_SUITE)
    text = lab_yml.read_text()
    text = text.replace("inventory: inventory/hosts.yml", "inventory: inventory")
    text = text.replace("suites: [care-planner-smoke, portfolio-compat, care-planner-hygiene]",
                        "suites: [care-planner-smoke, portfolio-compat, care-planner-hygiene, estate-vault]")
    lab_yml.write_text(text)
