"""Namespace sandboxes and the ssh transport, for real: overlayfs, namespaces, sshd, Ansible over SSH.

Most of these tests need root (they mount overlayfs and create namespaces) and OpenSSH's sshd;
as another user they skip and say so. Run them as root: `sudo make test` (CI runs as root).
Reset times are printed (pytest -s shows them) and measured by `python -m benchmarks.namespace_reset`;
they are not asserted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.api import outcome_code
from lab.campaign.builds import build_and_register
from lab.campaign.cells import Progress
from lab.campaign.runner import CampaignRunner
from lab.config.labfile import LabConfig, load_lab
from lab.errors import InfrastructureError
from lab.evidence.store import Store
from lab.model import Build, ClauseOutcome, SandboxSpec, Status
from lab.reports.data import gather
from lab.sandboxes.lease import lease
from lab.sandboxes.namespace import boot as nsboot
from lab.sandboxes.namespace import linux, sshkeys
from lab.sandboxes.namespace.provider import NamespaceProvider
from lab.transports.ssh import SSHTransport
from tests.support.labfiles import CliResult, copy_default_lab, require_root_and_sshd, run_lab

pytestmark = pytest.mark.integration

ACCEPTED = re.compile(r"^Accepted publickey for root from 127\.0\.0\.1 port \d+ ssh2", re.M)


def spec(name: str) -> SandboxSpec:
    return SandboxSpec(name, "debian-12", "namespace", {})


def connections(provider: NamespaceProvider, sandbox: SandboxSpec) -> int:
    """Authenticated SSH connections the sandbox's sshd accepted since its last reset (from its VERBOSE log)."""
    return len(ACCEPTED.findall(provider.sshd_log(sandbox).read_text()))


def sandbox_pids(home: Path, name: str) -> list[int]:
    """Processes whose command line mentions the sandbox's home, or the init marker with its name."""
    found = []
    for pid in linux.all_pids():
        argv = linux.arguments(pid)
        if any(str(home) in a for a in argv) or ("lab-namespace-init" in argv and name in argv):
            found.append(pid)
    return found


def kill_sshd(provider: NamespaceProvider, sandbox: SandboxSpec) -> list[int]:
    """SIGKILL every sshd process of the sandbox: its listener and the processes serving its connections."""
    state = json.loads((provider.home(sandbox) / "state.json").read_text())
    pids = [pid for pid in linux.pids_in_namespace("pid", state["pid_namespace"])
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd"]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def run(transport: SSHTransport, script: str) -> tuple[int, str, str]:
    result = transport.execute(["sh", "-c", script], b"", 30)
    return result.exit_code, result.stdout.decode(), result.stderr.decode()


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[NamespaceProvider]:
    """A namespace provider in a fresh state directory; every sandbox it made is destroyed afterwards."""
    require_root_and_sshd()
    made = NamespaceProvider(tmp_path / "state")
    yield made
    for home in sorted((made.state_dir / "namespaces").glob("*/")):
        made.destroy(spec(home.name))


# --- the provider -----------------------------------------------------------------------------

def test_create_reset_destroy_are_idempotent_and_reset_discards_writes(provider: NamespaceProvider) -> None:
    a = spec("sbx-a")
    home = provider.home(a)
    assert provider.describe(a) == {"state": "absent", "where": str(home)}
    started = time.monotonic()
    first = provider.reset(a)
    created = time.monotonic() - started
    assert first.root == "/"
    assert first.facts["ansible_connection"] == "ssh" and first.facts["sandbox_name"] == "sbx-a"
    with SSHTransport(a.name, first.facts) as ssh:
        assert run(ssh, "hostname; cat /proc/1/comm") == (0, "sbx-a\nsh\n", "")
        assert run(ssh, "echo scratch | tee /etc/lab-marker /root/lab-marker") == (0, "scratch\n", "")
    assert (home / "gen-1" / "upper" / "etc" / "lab-marker").read_text() == "scratch\n"
    assert not Path("/etc/lab-marker").exists()  # copy-on-write: the host never sees the sandbox's writes

    started = time.monotonic()
    second = provider.reset(a)
    reset = time.monotonic() - started
    print(f"namespace sandbox: created in {created:.2f}s, reset in {reset:.2f}s")
    assert second.facts == first.facts  # same ports, key and known_hosts: the pinned host key stays valid
    assert {k: provider.describe(a)[k] for k in ("state", "generation", "port")} == \
        {"state": "running", "generation": 2, "port": first.facts["ansible_port"]}
    with SSHTransport(a.name, second.facts) as ssh:
        assert run(ssh, "test -e /etc/lab-marker || test -e /root/lab-marker; echo $?; hostname") == \
            (0, "1\nsbx-a\n", "")
    assert not (home / "gen-1").exists()

    assert provider.reset(a).facts == first.facts
    assert provider.describe(a)["generation"] == 3
    provider.destroy(a)
    provider.destroy(a)
    assert provider.describe(a) == {"state": "absent", "where": str(home)}


def test_destroy_leaves_no_process_mount_or_port(provider: NamespaceProvider) -> None:
    b = spec("sbx-b")
    handle = provider.reset(b)
    ssh_port, lab_port = handle.facts["ansible_port"], handle.facts["lab_port"]
    with SSHTransport(b.name, handle.facts) as ssh:
        code, _, _ = run(ssh, f"nohup python3 -m http.server --bind 127.0.0.1 {lab_port} >/dev/null 2>&1 & "
                              "nohup sleep 600 >/dev/null 2>&1 &")
        assert code == 0
        deadline = time.monotonic() + 10
        while not linux.listening_addresses(lab_port) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert linux.listening_addresses(lab_port) == [f"127.0.0.1:{lab_port}"]
    home = provider.home(b)
    assert len(sandbox_pids(home, b.name)) == 2  # unshare and the sandbox's init
    state = json.loads((home / "state.json").read_text())
    assert len(linux.pids_in_namespace("pid", state["pid_namespace"])) >= 4  # init, sshd, http.server, sleep

    provider.destroy(b)
    assert sandbox_pids(home, b.name) == []
    assert linux.pids_in_namespace("pid", state["pid_namespace"]) == []
    assert [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if str(provider.state_dir) in line] == []
    assert (linux.listening_addresses(ssh_port), linux.listening_addresses(lab_port)) == ([], [])
    assert not home.exists()
    assert f"[127.0.0.1]:{ssh_port} " not in sshkeys.known_hosts_file(provider.state_dir).read_text()
    provider.destroy(b)


def test_sshd_listens_on_loopback_only_and_its_host_key_is_pinned(provider: NamespaceProvider,
                                                                   tmp_path: Path) -> None:
    c = spec("sbx-c")
    handle = provider.reset(c)
    port = handle.facts["ansible_port"]
    assert linux.listening_addresses(port) == [f"127.0.0.1:{port}"]
    ssh_dir = provider.state_dir / "ssh"
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((ssh_dir / "id_ed25519").stat().st_mode) == 0o600
    key_type, key_data = (provider.home(c) / "hostkey" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    assert key_type == "ssh-ed25519"
    assert (ssh_dir / "known_hosts").read_text().splitlines() == [f"[127.0.0.1]:{port} ssh-ed25519 {key_data}"]
    assert handle.facts["ansible_ssh_common_args"] == (
        f"-o UserKnownHostsFile={ssh_dir / 'known_hosts'} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes")

    impostor = sshkeys.ensure_key(tmp_path / "impostor" / "key", "impostor")
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {' '.join(sshkeys.public_key(impostor).split()[:2])}\n")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    for known_hosts, expected in ((wrong, "Host key verification failed."),
                                  (empty, f"No ED25519 host key is known for [127.0.0.1]:{port}")):
        facts = {**handle.facts, "ansible_ssh_common_args":
                 f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"}
        with pytest.raises(InfrastructureError) as caught:
            SSHTransport(c.name, facts).open()
        assert str(caught.value).startswith(f"cannot connect to sbx-c over ssh (root@127.0.0.1:{port}): ")
        assert expected in str(caught.value)
    with pytest.raises(InfrastructureError, match=r"Permission denied \(publickey\)"):
        SSHTransport(c.name, {**handle.facts, "ansible_ssh_private_key_file": str(impostor)}).open()
    assert connections(provider, c) == 0
    with SSHTransport(c.name, handle.facts) as ssh:
        assert run(ssh, "echo pinned") == (0, "pinned\n", "")
    assert connections(provider, c) == 1


def test_the_next_reset_recovers_from_a_crash(provider: NamespaceProvider) -> None:
    d = spec("sbx-d")
    provider.reset(d)
    home = provider.home(d)
    state = json.loads((home / "state.json").read_text())
    os.kill(state["init_pid"], signal.SIGKILL)  # the sandbox dies with its init
    deadline = time.monotonic() + 10
    while provider.describe(d)["state"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert provider.describe(d)["state"] == "stopped"
    provider.reset(d)
    assert provider.describe(d)["state"] == "running"

    before = sorted(sandbox_pids(home, d.name))
    (home / "state.json").unlink()  # a crash lost the state file: the processes are found by their marker
    handle = provider.reset(d)
    after = sorted(sandbox_pids(home, d.name))
    assert len(before) == len(after) == 2 and not set(before) & set(after)
    with SSHTransport(d.name, handle.facts) as ssh:
        assert run(ssh, "hostname") == (0, "sbx-d\n", "")


# --- campaigns over namespace sandboxes ---------------------------------------------------------

@pytest.fixture(scope="module")
def namespace_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabConfig, Store, dict[str, Build]]]:
    """A copy of the namespace demo lab with two sandboxes, both builds registered."""
    require_root_and_sshd()
    config = load_lab(copy_default_lab(tmp_path_factory.mktemp("nslab"), sandboxes=2), provider="namespace")
    assert [s.name for s in config.sandboxes] == ["ts-sbx-01", "ts-sbx-02"] and config.parallel == 2
    store = Store(config.state_dir / "lab.sqlite3")
    builds = {v: build_and_register(config.build_spec(f"care-planner@{v}"), store)[0] for v in ("2.0.0", "2.1.0")}
    yield config, store, builds
    store.close()
    provider = NamespaceProvider(config.state_dir)
    for sandbox in config.sandboxes:
        provider.destroy(sandbox)


def test_a_campaign_deploys_over_ssh_and_verifies_with_one_connection_per_sandbox(
        namespace_lab: tuple[LabConfig, Store, dict[str, Build]]) -> None:
    config, store, builds = namespace_lab
    provider = NamespaceProvider(config.state_dir)
    before_verify: dict[str, int] = {}

    def progress(event: Progress) -> None:
        if event.what == "step" and event.name == "deploy":  # Ansible is done with the sandbox
            before_verify[event.sandbox] = connections(provider, config.sandbox(event.sandbox))

    campaign = CampaignRunner(config, store, progress).start(builds["2.0.0"])
    data = gather(config, store, campaign)
    assert (data.verdict.allowed, outcome_code(data)) == (True, 0)
    assert sorted((c.sandbox, c.suite) for c in data.cells) == sorted(
        (s, suite) for s in ("ts-sbx-01", "ts-sbx-02")
        for suite in ("care-planner-smoke", "portfolio-compat", "care-planner-hygiene"))
    assert {r.status for c in data.cells for r in c.results} == {Status.PASS}
    deploys = {s.sandbox: s.deployed_digest for s in data.steps if s.step == "deploy" and s.ok}
    assert deploys == {"ts-sbx-01": builds["2.0.0"].digest, "ts-sbx-02": builds["2.0.0"].digest}
    for sandbox in config.sandboxes:
        installed = json.loads(provider_file(provider, sandbox, "var/lib/lab/installed/care-planner.json"))
        assert installed["version"] == "2.0.0"
        total = connections(provider, sandbox)
        print(f"{sandbox.name}: {before_verify[sandbox.name]} SSH connection(s) by Ansible (baseline + deploy), "
              f"{total - before_verify[sandbox.name]} by the lab's transport (3 suites)")
        assert before_verify[sandbox.name] >= 1  # Ansible reached it over SSH
        assert total - before_verify[sandbox.name] == 1  # one transport connection for three suites
    assert not Path("/var/lib/lab/installed/care-planner.json").exists()  # deployed into the sandboxes only


def provider_file(provider: NamespaceProvider, sandbox: SandboxSpec, relative: str) -> str:
    """A file the sandbox wrote since its last reset, read from its upper layer on the host."""
    generation = json.loads((provider.home(sandbox) / "state.json").read_text())["generation"]
    return (provider.home(sandbox) / f"gen-{generation}" / "upper" / relative).read_text()


def test_build_b_is_blocked_over_namespace_sandboxes_as_in_the_local_demo(
        namespace_lab: tuple[LabConfig, Store, dict[str, Build]]) -> None:
    config, _, _ = namespace_lab
    result = run_lab(config.path, "--provider", "namespace", "run", "care-planner@2.1.0", "--no-reports",
                     timeout=300)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "care-planner@2.1.0 (sha256 " in result.stdout and "BLOCKED from pilot" in result.stdout
    both = "on ts-sbx-01, ts-sbx-02"
    assert (f"mandatory checks: 8 mandatory check(s) failed: portfolio-compat/carefmt-api-level {both}; "
            f"portfolio-compat/journal-health {both}; portfolio-compat/journal-records {both}; "
            f"portfolio-compat/journal-selftest {both}\n") in result.stdout, result.stdout
    assert "[ok ] no errors: every mandatory check could be judged" in result.stdout


def test_killing_a_sandboxs_sshd_mid_campaign_gives_errors_not_a_hang(
        namespace_lab: tuple[LabConfig, Store, dict[str, Build]]) -> None:
    config, store, builds = namespace_lab
    provider = NamespaceProvider(config.state_dir)
    victim = config.sandbox("ts-sbx-01")
    killed: list[tuple[str, list[int]]] = []  # (first suite, sshd pids)
    victim_cell_events: list[str] = []

    def progress(event: Progress) -> None:
        if event.what == "cell" and event.sandbox == victim.name:
            if not killed:
                killed.append((event.name, kill_sshd(provider, victim)))
            victim_cell_events.append(event.name)

    campaign = CampaignRunner(config, store, progress).start(builds["2.0.0"])
    data = gather(config, store, campaign)
    first_suite, pids = killed[0]
    assert pids and len(victim_cell_events) == 3
    victim_cells = {c.suite: c for c in data.cells if c.sandbox == victim.name}
    first = victim_cells.pop(first_suite)
    assert {r.status for r in first.results} == {Status.PASS}
    # The lost connection is the error, not a timeout: no check waited for the suite timeout (120 s),
    # which would read "the suite timed out after 120s before this check reported".
    lost = re.compile(rf"transport failed: ssh connection to {victim.name} \(root@127\.0\.0\.1:\d+\) lost: .+")
    for cell in victim_cells.values():
        assert {r.status for r in cell.results} == {Status.ERROR}
        for r in cell.results:
            assert lost.fullmatch(r.message) and "timed out" not in r.message, r.message
    assert {r.status for c in data.cells if c.sandbox == "ts-sbx-02" for r in c.results} == {Status.PASS}
    assert (data.verdict.allowed, outcome_code(data)) == (False, 3)
    clauses = {c.name: c.outcome for c in data.verdict.clauses}
    assert clauses["no errors"] is ClauseOutcome.NOT_MET
    assert [s.step for s in data.steps if not s.ok] == ["verify"]
    assert provider.describe(victim)["state"] == "degraded"
    provider.reset(victim)
    assert provider.describe(victim)["state"] == "running"


# --- lab sandbox up|down|reset|list ------------------------------------------------------------

def test_the_sandbox_commands_manage_namespace_sandboxes(tmp_path: Path,
                                                         run_cli: Callable[..., CliResult]) -> None:
    require_root_and_sshd()
    lab = ("--lab", str(copy_default_lab(tmp_path / "lab", sandboxes=1)), "--provider", "namespace")
    state_dir = tmp_path / "lab" / ".lab"
    try:
        assert "ts-sbx-01        namespace  absent" in run_cli(*lab, "sandbox", "list").out
        up = run_cli(*lab, "sandbox", "up")
        assert up.code == 0 and re.match(r"ts-sbx-01: up in \d+\.\d\ds: running, port \d+ \(namespace, ", up.out)
        assert run_cli(*lab, "sandbox", "up").out.startswith("ts-sbx-01: already up: running, port ")
        with lease(state_dir, "ts-sbx-01", "campaign c-42", 1):
            listed = run_cli(*lab, "sandbox", "list")
            assert re.search(r"ts-sbx-01 +namespace +running +\d+  campaign c-42 +\d+s ", listed.out), listed.out
            held = run_cli(*lab, "sandbox", "reset", "--lease-timeout", "0")
            assert held.code == 3 and "sandbox ts-sbx-01 is held by campaign c-42" in held.err
        reset = run_cli(*lab, "sandbox", "reset", "ts-sbx-01")
        assert reset.code == 0 and reset.out.startswith("ts-sbx-01: reset in ")
        home = state_dir / "namespaces" / "ts-sbx-01"
        assert linux.pids_with_arguments(nsboot.INIT_MARK, str(home)) != []
        stopped = run_cli(*lab, "sandbox", "stop")
        assert stopped.code == 0 and re.match(r"ts-sbx-01: stop in \d+\.\d\ds: stopped, port \d+ \(namespace, ",
                                              stopped.out), stopped.out
        assert linux.pids_with_arguments(nsboot.INIT_MARK, str(home)) == []
        assert (home / "state.json").is_file() and list(home.glob("gen-*/upper"))  # its files stay
        assert run_cli(*lab, "sandbox", "up").out.startswith("ts-sbx-01: up in ")  # a stopped sandbox comes back
        assert run_cli(*lab, "sandbox", "down").out == "ts-sbx-01: down\n"
        assert run_cli(*lab, "sandbox", "down").code == 0
        assert "ts-sbx-01        namespace  absent" in run_cli(*lab, "sandbox", "list").out
        unknown = run_cli(*lab, "sandbox", "reset", "ts-sbx-99")
        assert unknown.code == 2 and "unknown sandbox 'ts-sbx-99'" in unknown.err
    finally:
        NamespaceProvider(state_dir).destroy(spec("ts-sbx-01"))


def test_the_sandbox_list_works_for_local_sandboxes_too(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    lab = ("--lab", str(copy_default_lab(tmp_path / "lab", sandboxes=1)))
    assert re.search(r"ts-sbx-01 +local +absent +- +- +- ", run_cli(*lab, "sandbox", "list").out)
    assert run_cli(*lab, "sandbox", "up").out.startswith("ts-sbx-01: up in ")
    listed = run_cli(*lab, "sandbox", "list").out
    assert re.search(r"ts-sbx-01 +local +ready +\d+  - +\d+s +\S+/\.lab/sandboxes/ts-sbx-01/root", listed), listed
    root = tmp_path / "lab" / ".lab" / "sandboxes" / "ts-sbx-01" / "root"
    # a service of the sandbox: its tree on its command line
    service = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", str(root)])
    try:
        (root / "run" / "svc.pid").write_text(f"{service.pid}\n")
        (root / "var" / "log" / "svc.log").write_text("kept\n")
        stopped = run_cli(*lab, "sandbox", "stop")
        assert stopped.code == 0
        assert re.match(r"ts-sbx-01: stop in \d+\.\d\ds: stopped, port \d+ \(local, ", stopped.out), stopped.out
        # lab reaps what it stopped when it is the parent (here: the test process runs the CLI in-process)
        assert not Path(f"/proc/{service.pid}").exists()
    finally:
        service.kill()
    assert (root / "var" / "log" / "svc.log").read_text() == "kept\n"
    assert re.search(r"ts-sbx-01 +local +stopped +\d+ ", run_cli(*lab, "sandbox", "list").out)
    assert run_cli(*lab, "sandbox", "up").out.startswith("ts-sbx-01: up in ")  # stopped is not up: reset, clean
    assert not (root / "var" / "log" / "svc.log").exists()
    assert run_cli(*lab, "sandbox", "down").out == "ts-sbx-01: down\n"


def test_without_root_the_provider_says_how_to_run_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    provider = NamespaceProvider(tmp_path / "state")
    with pytest.raises(InfrastructureError) as caught:
        provider.reset(spec("sbx-e"))
    assert str(caught.value) == ("provider namespace needs root (it mounts overlayfs and creates namespaces); "
                                 "run the lab as root, e.g. `sudo lab ...`, or use provider local")
    assert not (tmp_path / "state").exists()


def test_a_hung_check_over_ssh_leaves_no_process_in_the_sandbox_after_the_suite_timeout(
        provider: NamespaceProvider) -> None:
    """The lab can only kill its local ssh client; the runner in the sandbox stops itself and
    every check session it started (its SSH session closed; at the latest at its own deadline)."""
    from lab.checks.delivery import run_runner

    e = spec("sbx-e")
    handle = provider.reset(e)
    state = json.loads((provider.home(e) / "state.json").read_text())
    marker = "4177"

    def in_sandbox() -> list[str]:
        found = []
        for pid in linux.pids_in_namespace("pid", state["pid_namespace"]):
            argv = linux.arguments(pid)
            if any(marker in a for a in argv) or (argv and "lab-runner" in " ".join(argv)):
                found.append(" ".join(argv))
        return found

    manifest = {"format": 1, "suite": "hung", "root": "/", "checks": [
        {"id": "hung", "type": "command", "timeout": 300, "retries": 0,
         "params": {"command": ["sh", "-c", f"sleep {marker}1 & sleep {marker}2"]}}]}
    with SSHTransport(e.name, handle.facts) as ssh:
        seen: list[str] = []
        result = run_runner(ssh, manifest, 3)
        assert result.timed_out
        seen = in_sandbox()
        deadline = time.monotonic() + 8  # the runner's own deadline is 2 s after the transport's
        while in_sandbox() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert in_sandbox() == [], seen
        assert run(ssh, "echo still reachable") == (0, "still reachable\n", "")
