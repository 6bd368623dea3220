"""lab/ansible/playbook.py against real ansible-playbook runs (no mocks): outcomes, privacy, binary choice."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from lab.ansible.playbook import run_playbook
from lab.ansible.settings import AnsibleSettings
from tests.support.labfiles import write

pytestmark = pytest.mark.integration

SECRET = "S3cr3t-Do-Not-Leak-7f2a"

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: reach the host
      ansible.builtin.ping:
    - name: say hello
      ansible.builtin.debug:
        msg: "hello from {{ inventory_hostname }}"
    - name: fail on purpose when asked
      ansible.builtin.fail:
        msg: "the build refused to install on {{ inventory_hostname }}"
      when: inventory_hostname == "broken"
    - name: report a digest
      ansible.builtin.set_stats:
        data: {deployed_digest: "cafe0123"}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return write(tmp_path / "inventory.yml", f"""
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {sys.executable}
  hosts:
    good: {{}}
    broken: {{}}
    gone:
      ansible_connection: ssh
      ansible_host: 127.0.0.1
      ansible_port: 1
      ansible_ssh_common_args: -o ConnectTimeout=2
""")


def play(tmp_path: Path, inventory: Path, host: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, object]:
    monkeypatch.setenv("LAB_TEST_TOKEN", SECRET)  # an environment credential must not reach artifacts
    playbook = write(tmp_path / "play.yml", PLAYBOOK)
    work = tmp_path / "work"
    outcome = run_playbook(playbook, inventory=(inventory,), ansible=AnsibleSettings(tmp_path), host=host,
                           extravars={"api_token": SECRET},
                           work_dir=work, timeout=120)
    return work, outcome


def test_success_reports_host_and_stats(tmp_path: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, outcome = play(tmp_path, inventory, "good", monkeypatch)
    assert outcome.status == "successful"  # type: ignore[attr-defined]
    assert outcome.host_ok("good") is True  # type: ignore[attr-defined]
    assert outcome.stats == {"deployed_digest": "cafe0123"}  # type: ignore[attr-defined]
    assert list(outcome.hosts) == ["good"]  # type: ignore[attr-defined]


def test_a_failed_task_is_the_builds_failure_not_infrastructure(
    tmp_path: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, outcome = play(tmp_path, inventory, "broken", monkeypatch)
    assert outcome.host_ok("broken") is False  # type: ignore[attr-defined]
    assert outcome.infrastructure_error("broken") is False  # type: ignore[attr-defined]
    assert outcome.detail("broken") == (  # type: ignore[attr-defined]
        "play.yml failed: task 'fail on purpose when asked': the build refused to install on broken")


def test_an_unreachable_host_is_an_infrastructure_error(
    tmp_path: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, outcome = play(tmp_path, inventory, "gone", monkeypatch)
    assert outcome.host_ok("gone") is False  # type: ignore[attr-defined]
    assert outcome.infrastructure_error("gone") is True  # type: ignore[attr-defined]
    assert outcome.detail("gone").startswith("play.yml: gone unreachable")  # type: ignore[attr-defined]


def test_artifacts_are_private_and_hold_no_secret(
    tmp_path: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, _ = play(tmp_path, inventory, "good", monkeypatch)
    private = [p for p in work.iterdir() if p.is_dir()]
    assert len(private) == 1
    assert stat.S_IMODE(os.stat(work).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(private[0]).st_mode) == 0o700
    assert not (private[0] / "env").exists()
    assert not (private[0] / "extravars.json").exists()
    files = [p for p in private[0].rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files)
    for path in files:
        assert SECRET not in path.read_text(errors="replace"), path
    command = json.loads(next(p for p in files if p.name == "command").read_text())
    assert command["command"][0] == str(Path(sys.executable).parent / "ansible-playbook")
    assert SECRET not in " ".join(command["command"])


def test_the_default_deploy_playbook_installs_only_the_registered_build(tmp_path: Path, inventory: Path) -> None:
    import hashlib

    from lab.campaign.builds import pack
    from tests.support.labfiles import REPO

    write(tmp_path / "src" / "opt/app/VERSION", "2.0\n")
    artifact = tmp_path / "app-2.0.tar.gz"
    artifact.write_bytes(pack([tmp_path / "src"]))
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()

    def deploy(root: Path, claimed: str, **extra: str) -> object:
        extravars = {"sandbox_root": str(root), "lab_artifact": str(artifact), "lab_digest": claimed,
                     "lab_product": "app", "lab_version": "2.0", **extra}
        return run_playbook(REPO / "playbooks" / "deploy.yml", inventory=(inventory,),
                            ansible=AnsibleSettings(tmp_path), host="good", extravars=extravars,
                            work_dir=tmp_path / "work", timeout=120)

    tampered = deploy(tmp_path / "refused", "0" * 64)
    assert tampered.host_ok("good") is False  # type: ignore[attr-defined]
    assert tampered.detail("good").endswith(  # type: ignore[attr-defined]
        f"lab_host place: artifact on the target has sha256 {digest}, expected {'0' * 64}")
    assert not (tmp_path / "refused/opt").exists() and not (tmp_path / "refused/var/lib/lab/installed").exists()

    placed = deploy(tmp_path / "sandbox", digest)
    assert placed.host_ok("good") is True and placed.stats == {"deployed_digest": digest}  # type: ignore[attr-defined]
    assert (tmp_path / "sandbox/opt/app/VERSION").read_text() == "2.0\n"
    assert json.loads((tmp_path / "sandbox/var/lib/lab/installed/app.json").read_text()) == {
        "product": "app", "version": "2.0", "digest": digest}
    assert not (tmp_path / "sandbox/var/lib/lab/restore").exists()  # a sandbox keeps no restore point

    rolled = deploy(tmp_path / "production", digest, lab_rollout="rollout=r1 wave=1")
    assert rolled.host_ok("good") is True and rolled.stats == {"deployed_digest": digest}  # type: ignore[attr-defined]
    assert (tmp_path / f"production/var/lib/lab/restore/app/{digest}/manifest.json").exists()
    assert (tmp_path / "production/var/log/lab-deploy.log").read_text().split()[1:] == [
        "deploy", "app", "2.0", digest, "rollout=r1", "wave=1"]
