"""Whole campaigns on static WinRM sandboxes: two WinRM test endpoints as the lab's hosts.

Reset and deploy run real ``ansible-playbook`` over WinRM (``ansible.builtin.raw`` only: the
endpoints' shell is /bin/sh behind a PowerShell stand-in); verify runs the Python runner through
the lab's WinRM transport. The campaign's WinRM password is an Ansible-vaulted variable
(group_vars/sandboxes/vault.yml, decrypted with ``--vault-password-file``); everything the lab
wrote is searched for the password and for the vault's own password.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.campaign.builds import build_and_register
from lab.campaign.cells import Progress
from lab.campaign.runner import CampaignRunner
from lab.config.labfile import load_lab
from lab.evidence.store import Store
from lab.model import Status
from tests.support.estate import VAULT_PASSWORD, encrypt
from tests.support.labfiles import run_lab, write
from tests.support.winrm_endpoint import WinRMEndpoint
from tests.support.winrm_lab import PASSWORD, USER, ansible_ready_env, raw_protocol

pytestmark = pytest.mark.integration

LAB_YML = """\
name: winrm-lab
state_dir: .lab
reports_dir: reports
parallel: 2
inventory: inventory/hosts.yml
sandbox_group: sandboxes
provider: static
suites_dir: test_suites
agreement: agreement.yml
timeouts: {suite: 60, lease: 60, playbook: 300}
products:
  winapp:
    deploy: playbooks/deploy.yml
    suites: [winapp-smoke, winapp-hygiene]
    builds:
      - version: 1.0.0
        artifact: artifacts/winapp-1.0.0.bin
"""

AGREEMENT = """\
agreement: test
stages:
  - name: lab
  - name: pilot
    gate: {platforms: [winrm-endpoint], suites: mandatory}
"""

SMOKE = """\
suite: winapp-smoke
mandatory: true
platforms: [winrm-endpoint]
timeout: 10
checks:
  - id: version-file
    type: file
    path: /opt/winapp/VERSION
    contains: "1.0.0"
  - id: reports-version
    type: command
    command: [sh, -c, 'cat "$SANDBOX_ROOT/opt/winapp/VERSION"']
    stdout: '^1\\.0\\.0$'
  - id: reset-cleared-leftovers
    type: file
    path: /opt/winapp/leftover.tmp
    exists: false
"""

HYGIENE = """\
suite: winapp-hygiene
mandatory: false
platforms: [winrm-endpoint]
checks:
  - id: release-notes
    type: file
    path: /opt/winapp/RELEASE-NOTES.txt
"""

RESET = """\
- name: Reset a static WinRM sandbox
  hosts: all
  gather_facts: false
  tasks:
    - name: Remove every trace of earlier deploys
      ansible.builtin.raw: rm -rf '{{ sandbox_root }}/opt/winapp'
"""

DEPLOY = """\
- name: Deploy winapp
  hosts: all
  gather_facts: false
  tasks:
    - name: Install the build
      ansible.builtin.raw: >-
        mkdir -p '{{ sandbox_root }}/opt/winapp' &&
        printf '%s\\n' '{{ lab_version }}' > '{{ sandbox_root }}/opt/winapp/VERSION' &&
        printf '%s\\n' '{{ lab_digest }}' > '{{ sandbox_root }}/opt/winapp/DIGEST'
    - name: Read the digest back from the target
      ansible.builtin.raw: cat '{{ sandbox_root }}/opt/winapp/DIGEST'
      register: digest
      changed_when: false
    - name: Report it
      ansible.builtin.set_stats:
        data: {deployed_digest: "{{ digest.stdout | trim }}"}
"""


@dataclass(frozen=True)
class WinRMLab:
    lab_yml: Path
    endpoints: dict[str, WinRMEndpoint]
    inputs: dict[Path, bytes]  # the files the test wrote before the lab ran, with their contents


def files_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def make_lab(root: Path, endpoints: dict[str, WinRMEndpoint], *, reset: bool = True,
             vault_password_file: Path | None = None) -> Path:
    """A lab whose sandboxes are static WinRM hosts served by ``endpoints`` (HTTPS ones: validation off).

    With ``vault_password_file``, the WinRM password is vaulted in group_vars/sandboxes/vault.yml
    (that file holds the vault password); otherwise it is in the inventory in clear.
    """
    password_line = f"        ansible_password: '{PASSWORD}'\n"
    if vault_password_file is not None:
        write(vault_password_file, VAULT_PASSWORD + "\n")
        write(root / "inventory" / "group_vars" / "sandboxes" / "vault.yml",
              encrypt("ansible_password", PASSWORD, vault_password_file))
        password_line = ""
    hosts, reset_var = [], ["        lab_reset_playbook: playbooks/reset.yml"] if reset else []
    for name, ep in endpoints.items():
        sandbox = root / "hosts" / name
        (sandbox / "opt" / "winapp").mkdir(parents=True)
        (sandbox / "opt" / "winapp" / "leftover.tmp").write_text("from an earlier deploy\n")
        tls = "ansible_winrm_server_cert_validation: ignore, " if ep.https else ""
        hosts.append(f"        {name}: {{ansible_port: {ep.port}, ansible_winrm_scheme: {ep.scheme}, {tls}"
                     f"lab_sandbox_root: '{sandbox}'}}")
    write(root / "inventory" / "hosts.yml", f"""\
all:
  children:
    sandboxes:
      vars:
        ansible_connection: winrm
        ansible_host: 127.0.0.1
        ansible_user: {USER}
{password_line}        ansible_winrm_transport: ntlm
        ansible_python_interpreter: {sys.executable}
        lab_runner: python
        lab_platform: winrm-endpoint
        lab_winrm_retry_delay: 0.5
""" + "".join(f"{line}\n" for line in reset_var) + "      hosts:\n" + "\n".join(hosts) + "\n")
    write(root / "agreement.yml", AGREEMENT)
    write(root / "test_suites" / "winapp-smoke.yml", SMOKE)
    write(root / "test_suites" / "winapp-hygiene.yml", HYGIENE)
    write(root / "playbooks" / "deploy.yml", DEPLOY)
    write(root / "playbooks" / "reset.yml", RESET)
    (root / "artifacts").mkdir()
    (root / "artifacts" / "winapp-1.0.0.bin").write_bytes(b"winapp 1.0.0\n")
    return write(root / "lab.yml", LAB_YML)


@pytest.fixture(scope="module")
def winrm_campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WinRMLab, list[str]]]:
    """`lab build` and `lab run` through the CLI on two static WinRM hosts (HTTP+NTLM, HTTPS)."""
    root = tmp_path_factory.mktemp("winrm-lab")
    vault_password_file = tmp_path_factory.mktemp("vault") / "vault-pass"
    env = ansible_ready_env(tmp_path_factory.mktemp("bin"))
    with WinRMEndpoint(users={USER: PASSWORD}, env=env) as plain, \
            WinRMEndpoint(users={USER: PASSWORD}, https=True, env=env) as tls:
        lab_yml = make_lab(root, {"win-01": plain, "win-02": tls}, vault_password_file=vault_password_file)
        lab = WinRMLab(lab_yml, {"win-01": plain, "win-02": tls}, files_under(root))
        outputs = []
        for args in (("build", "winapp@1.0.0"), ("run", "winapp@1.0.0")):
            done = run_lab(lab.lab_yml, "--vault-password-file", str(vault_password_file), *args)
            outputs += [done.stdout, done.stderr]
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield lab, outputs


def report(lab: WinRMLab) -> dict[str, object]:
    (path,) = (lab.lab_yml.parent / "reports").glob("*.json")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_the_campaign_runs_reset_deploy_and_verify_over_winrm(winrm_campaign: tuple[WinRMLab, list[str]]) -> None:
    lab, _ = winrm_campaign
    data = report(lab)
    results = {(c["sandbox"], r["check_id"]): r["status"] for c in data["cells"] for r in c["results"]}  # type: ignore
    assert results == {(host, check): "fail" if check == "release-notes" else "pass"
                       for host in ("win-01", "win-02")
                       for check in ("version-file", "reports-version", "reset-cleared-leftovers", "release-notes")}
    assert data["verdict"]["allowed"] is True  # type: ignore[index]
    steps = {(s["sandbox"], s["step"]): s for s in data["steps"]}  # type: ignore[attr-defined]
    for host in ("win-01", "win-02"):
        assert steps[(host, "reset")]["detail"].startswith("reset by reset.yml: reset.yml ok (1 changed)")
        assert steps[(host, "deploy")]["deployed_digest"] == data["build"]["digest"]  # type: ignore[index]
    for ep in lab.endpoints.values():
        # Ansible: one shell and one command per raw task (reset 1, deploy 2); verify: ONE shell, both suites
        assert (ep.counters.shells_created, ep.counters.commands_run) == (3 + 1, 3 + 2)
        assert ep.shell_ids() == []


def test_the_report_says_when_certificate_validation_was_off(winrm_campaign: tuple[WinRMLab, list[str]]) -> None:
    lab, _ = winrm_campaign
    note = "TLS certificate validation was turned OFF for win-02 (ansible_winrm_server_cert_validation: ignore)"
    assert report(lab)["notes"] == [note]
    (html,) = [page for page in (lab.lab_yml.parent / "reports").glob("*.html") if page.name != "index.html"]
    assert note in html.read_text()
    assert "win-01" not in str(report(lab)["notes"])


def secret_forms() -> dict[str, bytes]:
    """The password (and the vault's password) as bytes in every form a careless write could leave it in."""
    return {
        "vault password": VAULT_PASSWORD.encode(),
        "utf-8": PASSWORD.encode(),
        "utf-16-le": PASSWORD.encode("utf-16-le"),
        "json-escaped": json.dumps(PASSWORD).encode()[1:-1],
        "basic-auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()),
        "base64": base64.b64encode(PASSWORD.encode()).rstrip(b"="),
    }


def test_the_password_is_nowhere_the_lab_wrote(winrm_campaign: tuple[WinRMLab, list[str]]) -> None:
    lab, outputs = winrm_campaign
    root = lab.lab_yml.parent
    vaulted = lab.inputs[root / "inventory" / "group_vars" / "sandboxes" / "vault.yml"]
    assert b"$ANSIBLE_VAULT;1.1;AES256" in vaulted and PASSWORD.encode() not in vaulted
    assert not any(PASSWORD.encode() in data for data in lab.inputs.values())  # only the vault holds it
    # everything the lab wrote or changed: store, reports, ansible-runner artifacts, state, the hosts' files
    blobs = {str(p): data for p, data in files_under(root).items() if lab.inputs.get(p) != data}
    names = {Path(p).name for p in blobs}
    assert "lab.sqlite3" in names and {"command", "stdout", "VERSION", "state.json"} <= names
    assert {".html", ".json", ".xml"} <= {Path(p).suffix for p in blobs}
    assert not any(p.startswith(str(root / "inventory")) for p in blobs)
    store = root / ".lab" / "lab.sqlite3"  # the CLI has exited: its WAL is checkpointed into this file
    blobs.update({f"cli output {i}": text.encode() for i, text in enumerate(outputs)})
    with closing(sqlite3.connect(store)) as db:
        dump = "\n".join(db.iterdump()).encode()
    assert b"CREATE TABLE" in dump and b"INSERT INTO" in dump  # the whole store, as text
    blobs["sqlite dump"] = dump
    leaks = [f"{where} ({form})" for where, blob in blobs.items() for form, secret in secret_forms().items()
             if secret in blob]
    assert leaks == []
    assert len(blobs) > 20


# -- a quota the campaign cannot get past becomes error results -------------------------------------


def test_a_host_at_its_shell_quota_gives_error_results_not_a_crash(tmp_path: Path) -> None:
    env = ansible_ready_env(tmp_path / "bin")
    with WinRMEndpoint(users={USER: PASSWORD}, env=env, max_shells_per_user=1) as ep:
        config = load_lab(make_lab(tmp_path / "lab", {"win-busy": ep}, reset=False))
        store = Store(config.state_dir / "lab.sqlite3")
        other = raw_protocol(ep)
        held: list[str] = []

        def take_the_only_shell(event: Progress) -> None:  # right after deploy, before verify
            if (event.what, event.name, event.ok) == ("step", "deploy", True):
                held.append(other.open_shell())

        try:
            build, _ = build_and_register(config.build_spec("winapp@1.0.0"), store)
            campaign = CampaignRunner(config, store, take_the_only_shell).start(build)
            cells = store.cells(campaign.id)
            steps = {s.step: s for s in store.steps(campaign.id)}
            wal = (config.state_dir / "lab.sqlite3-wal").read_bytes()  # the live WAL, store still open
        finally:
            store.close()
            for shell_id in held:
                other.close_shell(shell_id)
    assert len(held) == 1
    assert steps["reset"].detail == ("not reset: static host win-busy has no lab_reset_playbook, so it is used as "
                                     f"it is (root {tmp_path / 'lab' / 'hosts' / 'win-busy'})")
    assert steps["connect"].ok is False and steps["connect"].infrastructure_error is True
    assert "MaxShellsPerUser quota, also on the retry 0.5s later" in steps["connect"].detail
    results = [r for c in cells for r in c.results]
    assert len(results) == 2 and {r.status for r in results} == {Status.ERROR}
    assert all("MaxShellsPerUser" in r.message and PASSWORD not in r.message for r in results)
    assert b"MaxShellsPerUser" in wal  # the evidence is in the WAL, the password is not
    assert [form for form, secret in secret_forms().items() if secret in wal] == []
