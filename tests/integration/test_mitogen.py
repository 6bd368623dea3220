"""Mitogen for Ansible: on by default when installed (strategy mitogen_linear), off with $LAB_MITOGEN=0.
Proven from inside a task: the process that runs a module is Mitogen's persistent interpreter, or
Ansible's own AnsiballZ wrapper."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from lab.ansible.playbook import MITOGEN_SWITCH, mitogen_settings, run_playbook_on
from lab.ansible.settings import AnsibleSettings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("ansible_mitogen") is None,
                       reason="mitogen is not installed in lab's environment: pip install -e . (it is a dependency)"),
]

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Name the process that runs this module
      ansible.builtin.shell: "tr '\\\\0' ' ' < /proc/$PPID/cmdline"
      register: parent
    - ansible.builtin.set_stats:
        data: {parent: "{{ parent.stdout }}"}
"""


def module_parent(tmp_path: Path) -> str:
    playbook = tmp_path / "which.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {ansible_connection: local}\n    h2: {ansible_connection: local}\n")
    outcome = run_playbook_on(playbook, inventory=(inventory,), ansible=AnsibleSettings(tmp_path), hosts=["h1", "h2"],
                              extravars={"ansible_python_interpreter": sys.executable}, host_vars={},
                              work_dir=tmp_path / "runs", timeout=120, forks=2)
    assert outcome.status == "successful" and outcome.host_ok("h1") and outcome.host_ok("h2")
    return str(outcome.hosts["h1"].stats["parent"])


def test_modules_run_in_mitogen_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MITOGEN_SWITCH, raising=False)
    assert mitogen_settings()["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert "(mitogen:" in module_parent(tmp_path)


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_lab_mitogen_off_runs_ansible_s_own_strategy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     value: str) -> None:
    monkeypatch.setenv(MITOGEN_SWITCH, value)
    assert mitogen_settings() == {}
    parent = module_parent(tmp_path)
    assert "(mitogen:" not in parent and "AnsiballZ_command.py" in parent
