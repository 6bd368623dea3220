"""The demo lab as an existing Ansible estate, over SSH on namespace sandboxes (issue 11):

- the inventory is a directory of sources with an INI file, group_vars/ and host_vars/ as
  directories, and vaulted variables, decrypted with ``--vault-password-file`` for deploy and
  verify alike: the baseline playbook writes the vaulted ``care_site_profile`` into each sandbox
  and a check reads it back through ``${care_site_profile}``;
- a root ``ansible.cfg`` (found in the lab's directory, not exported) sets a ``ProxyCommand`` in
  ``[ssh_connection] ssh_extra_args`` and nothing else does: every connection, Ansible's and the
  lab's own transport's, goes through that proxy, which logs it;
- the vaulted secret is nowhere the lab wrote, nor on any process's command line while it ran.

Needs root and OpenSSH's sshd (namespace sandboxes); skips otherwise, saying how to run it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.estate import SECRET, SITE_PROFILE, VAULT_PASSWORD, make_estate
from tests.support.labfiles import copy_default_lab, lab_command, require_root_and_sshd, write

pytestmark = pytest.mark.integration

# A TCP relay for ssh's ProxyCommand: logs "<port>" per connection, then copies bytes both ways.
RELAY = """\
import socket, sys, threading
host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(log, "a") as f:
    f.write(f"{port}\\n")
sock = socket.create_connection((host, port))
def upstream():
    while data := sys.stdin.buffer.read1(65536):
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := sock.recv(65536):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
"""


@dataclass(frozen=True)
class Estate:
    lab_yml: Path
    password_file: Path
    proxy_log: Path
    outputs: tuple[str, ...]
    argv_seen: tuple[str, ...]  # every command line seen on the machine while lab ran


def lab(estate_yml: Path, password_file: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    """``lab --provider namespace ...`` as a user runs it, from another directory (no ANSIBLE_CONFIG)."""
    vault = ["--vault-password-file", str(password_file)] if password_file else []
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_CONFIG", "ANSIBLE_VAULT_PASSWORD_FILE")}
    return subprocess.run([*lab_command(), "--lab", str(estate_yml), "--provider", "namespace", *vault, *args],
                          capture_output=True, text=True, timeout=900, env={**env, "CI": "1"}, cwd="/", check=False)


def command_lines(seen: set[str], stop: threading.Event) -> None:
    """Collect every process's command line until ``stop`` is set (to prove no secret is on one)."""
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            try:
                seen.add((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                continue
        time.sleep(0.05)


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    require_root_and_sshd()
    root = tmp_path_factory.mktemp("estate")
    lab_yml = copy_default_lab(root / "lab", sandboxes=2)
    password_file = root / "secrets" / "vault-pass"
    make_estate(lab_yml, password_file)
    relay = write(root / "relay.py", RELAY)
    proxy_log = root / "proxy.log"
    write(lab_yml.parent / "ansible.cfg",
          "[ssh_connection]\n"
          f"ssh_extra_args = -o 'ProxyCommand={sys.executable} {relay} %h %p {proxy_log}'\n")
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=command_lines, args=(seen, stop), daemon=True)
    watcher.start()
    outputs = []
    try:
        for args in (("build", "care-planner@2.0.0"), ("run", "care-planner@2.0.0")):
            done = lab(lab_yml, password_file, *args)
            outputs += [done.stdout, done.stderr]
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        stop.set()
        watcher.join()
        yield Estate(lab_yml, password_file, proxy_log, tuple(outputs), tuple(seen))
    finally:
        stop.set()
        lab(lab_yml, password_file, "sandbox", "down")


def report(estate: Estate) -> dict[str, object]:
    (path,) = (estate.lab_yml.parent / "reports").glob("*.json")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_a_campaign_passes_on_an_ini_estate_with_vaulted_group_vars(estate: Estate) -> None:
    data = report(estate)
    results = {(c["sandbox"], c["suite"], r["check_id"]): r["status"]  # type: ignore[index]
               for c in data["cells"] for r in c["results"]}  # type: ignore[attr-defined]
    for sandbox in ("ts-sbx-01", "ts-sbx-02"):
        assert results[(sandbox, "estate-vault", "site-profile-is-the-vaulted-one")] == "pass"
    assert data["verdict"]["allowed"] is True  # type: ignore[index]
    steps = {(s["sandbox"], s["step"]): s["ok"] for s in data["steps"]}  # type: ignore[attr-defined]
    assert all(steps[(s, step)] for s in ("ts-sbx-01", "ts-sbx-02") for step in ("reset", "baseline", "deploy"))


def test_the_root_ansible_cfg_carries_deploy_and_verify_alike(estate: Estate) -> None:
    ports = estate.proxy_log.read_text().split()
    by_port = {port: ports.count(port) for port in set(ports)}
    assert len(by_port) == 2  # both sandboxes, through the proxy only ansible.cfg names
    # Ansible's baseline and deploy (at least one connection each) and the lab's transport (one).
    assert all(count >= 2 for count in by_port.values()), by_port
    ours = [line for line in estate.argv_seen if line.startswith("ssh ") and str(estate.lab_yml.parent) in line]
    transport = [line for line in ours if "ControlMaster=yes" in line]  # the lab's own master connections
    assert transport and all("ProxyCommand=" in line for line in transport)
    ansible_ssh = [line for line in ours if "ControlMaster=auto" in line]  # Ansible's ssh (its default ssh_args)
    assert ansible_ssh and all("ProxyCommand=" in line for line in ansible_ssh)


def test_without_the_vault_secret_nothing_runs_and_the_exit_is_2(estate: Estate, tmp_path: Path) -> None:
    store = estate.lab_yml.parent / ".lab" / "lab.sqlite3"
    with closing(sqlite3.connect(store)) as db:
        before = db.execute("SELECT count(*) FROM campaigns").fetchone()[0]
    missing = lab(estate.lab_yml, None, "run", "care-planner@2.0.0")
    assert missing.returncode == 2 and "vault" in missing.stderr and "Traceback" not in missing.stderr
    wrong = lab(estate.lab_yml, write(tmp_path / "wrong", "wrong-password\n"), "run", "care-planner@2.0.0")
    assert wrong.returncode == 2 and "Decryption failed" in wrong.stderr
    with closing(sqlite3.connect(store)) as db:
        assert db.execute("SELECT count(*) FROM campaigns").fetchone()[0] == before


def test_vaulted_values_are_nowhere_the_lab_wrote_nor_on_a_command_line(estate: Estate) -> None:
    root = estate.lab_yml.parent
    written = [p for p in root.rglob("*") if p.is_file() and "inventory" not in p.relative_to(root).parts]
    names = {p.name for p in written}
    assert "lab.sqlite3" in names and {"command", "stdout"} <= names  # store and ansible-runner artifacts
    assert {".html", ".json", ".xml"} <= {p.suffix for p in written}
    blobs = {str(p): p.read_bytes() for p in written}
    with closing(sqlite3.connect(root / ".lab" / "lab.sqlite3")) as db:
        blobs["sqlite dump"] = "\n".join(db.iterdump()).encode()
    blobs.update({f"cli output {i}": text.encode() for i, text in enumerate(estate.outputs)})
    blobs["command lines"] = "\n".join(estate.argv_seen).encode()
    assert any("ansible-playbook" in line for line in estate.argv_seen)  # the watcher saw the runs
    assert any(SITE_PROFILE.encode() in blob for blob in blobs.values())  # the search would see a value
    leaks = [where for where, blob in blobs.items()
             for secret in (SECRET, VAULT_PASSWORD) if secret.encode() in blob or
             json.dumps(secret).encode()[1:-1] in blob]
    assert leaks == []
