"""Provider ``static``: hosts as the inventory declares them, reset by a playbook or not at all."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.ansible.settings import AnsibleSettings
from lab.errors import ConfigError, InfrastructureError
from lab.model import SandboxSpec
from lab.sandboxes.base import LabSite
from lab.sandboxes.registry import provider_for
from lab.sandboxes.static import StaticProvider, sandbox_root
from tests.support.labfiles import write

SECRET = "static-host-secret-9f"


def spec(name: str = "win-01", **variables: Any) -> SandboxSpec:
    base = {"ansible_connection": "winrm", "ansible_user": "labsvc", "ansible_password": SECRET,
            "lab_platform": "windows-server-2022-rds", "lab_provider": "static"}
    base.update(variables)
    return SandboxSpec(name, "windows-server-2022-rds", "static", base)


def test_is_registered_and_takes_the_lab_site(tmp_path: Path) -> None:
    site = LabSite(tmp_path, (tmp_path / "hosts.yml",), 60, AnsibleSettings(tmp_path))
    provider = provider_for("static", tmp_path / ".lab", site)
    assert isinstance(provider, StaticProvider) and provider.site == site


def test_the_root_is_the_hosts_filesystem_root_unless_set() -> None:
    assert sandbox_root(spec()) == "C:\\"  # winrm + the PowerShell runner: Windows
    assert sandbox_root(spec(ansible_connection="psrp")) == "C:\\"
    assert sandbox_root(spec(lab_runner="python")) == "/"  # a WinRM host whose shell is POSIX
    assert sandbox_root(spec(ansible_connection="ssh")) == "/"
    assert sandbox_root(spec(ansible_connection="ssh", ansible_shell_type="powershell")) == "C:\\"
    assert sandbox_root(spec(lab_sandbox_root="D:\\Lab")) == "D:\\Lab"
    with pytest.raises(ConfigError, match="host win-01: lab_sandbox_root must be a non-empty path"):
        sandbox_root(spec(lab_sandbox_root=""))


def test_without_a_reset_playbook_reset_changes_nothing_and_says_so(tmp_path: Path) -> None:
    provider = StaticProvider(tmp_path / ".lab")
    assert provider.describe(spec()) == {"state": "static", "where": "win-01", "reset": "none"}
    handle = provider.reset(spec(ansible_host="10.0.0.5", ansible_port=5986))
    assert handle.root == "C:\\"
    assert handle.facts == {"sandbox_root": "C:\\", "sandbox_name": "win-01"}  # nothing secret, no ansible_*
    assert handle.note == "not reset: static host win-01 has no lab_reset_playbook, so it is used as it is (root C:\\)"
    state_file = tmp_path / ".lab" / "static" / "win-01" / "state.json"
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    assert SECRET not in state_file.read_text()
    assert json.loads(state_file.read_text())["ok"] is True
    described = provider.describe(spec(ansible_host="10.0.0.5", ansible_port=5986))
    assert described["state"] == "static" and described["where"] == "10.0.0.5" and described["port"] == 5986
    assert isinstance(described["since"], float)
    provider.destroy(spec())
    provider.destroy(spec())  # safe to repeat
    assert not state_file.parent.exists()


def test_reset_playbook_problems_are_configuration_errors(tmp_path: Path) -> None:
    with_playbook = spec(lab_reset_playbook="playbooks/revert-snapshot.yml")
    with pytest.raises(ConfigError, match="relative to the lab's root, which this caller did not give"):
        StaticProvider(tmp_path / ".lab").reset(with_playbook)
    site = LabSite(tmp_path, (tmp_path / "hosts.yml",), 60, AnsibleSettings(tmp_path))
    with pytest.raises(ConfigError) as error:
        StaticProvider(tmp_path / ".lab", site).reset(with_playbook)
    assert str(error.value) == (f"host win-01: lab_reset_playbook 'playbooks/revert-snapshot.yml' not found "
                                f"(looked for {tmp_path / 'playbooks' / 'revert-snapshot.yml'}); create it or fix "
                                "the inventory")


@pytest.mark.integration
def test_a_failing_reset_playbook_is_an_infrastructure_error(tmp_path: Path) -> None:
    inventory = write(tmp_path / "hosts.yml", f"""
all:
  hosts:
    lin-01:
      ansible_connection: local
      ansible_python_interpreter: {sys.executable}
""")
    write(tmp_path / "playbooks" / "revert.yml", """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.fail:
        msg: "snapshot clean-baseline not found on {{ sandbox_name }} (root {{ sandbox_root }})"
""")
    provider = StaticProvider(tmp_path / ".lab", LabSite(tmp_path, (inventory,), 120, AnsibleSettings(tmp_path)))
    target = SandboxSpec("lin-01", "debian-12", "static", {"ansible_connection": "local",
                                                           "lab_reset_playbook": "playbooks/revert.yml"})
    with pytest.raises(InfrastructureError) as error:
        provider.reset(target)
    assert str(error.value) == ("host lin-01: reset playbook failed: revert.yml failed: task 'ansible.builtin.fail': "
                                "snapshot clean-baseline not found on lin-01 (root /)")
    assert provider.describe(target)["state"] == "degraded"
