"""The runner's Linux server checks on fake trees: a sandbox root (tmp_path) and a fake /proc.

Each type gets a passing case, a failing case with its evidence, and a broken parameter that is an
``error`` result, never a crash of the runner. The same checks on this real host, compared with
pytest-testinfra, are in tests/integration/test_check_types_vs_testinfra.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lab.checks import runner
from lab.checks.types.linux import CHECK_TYPES


def run_checks(root: Path, *checks: dict[str, Any]) -> list[dict[str, Any]]:
    """Run checks through the runner's engine (as on a sandbox); their result lines, in order."""
    manifest = {"format": 1, "suite": "linux", "root": str(root), "checks": [
        {"id": f"c{i}", "timeout": 5, "retries": 0, **c} for i, c in enumerate(checks)]}
    out = io.StringIO()
    runner.run_manifest(manifest, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[-1] == {"end": True, "checks": len(checks)}
    return lines[:-1]


def one(root: Path, kind: str, **params: Any) -> dict[str, Any]:
    return run_checks(root, {"type": kind, "params": params})[0]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /proc for the runner (kernel state: sockets, mounts, sysctl, modules)."""
    fake = tmp_path / "proc"
    fake.mkdir()
    monkeypatch.setattr(runner, "PROC", str(fake))
    monkeypatch.setattr(runner, "MODULES_DIR", str(tmp_path / "lib-modules"))
    return fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    return sandbox


# --- schemas --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "params"), [
    ("package", {"name": "bash", "version": ">=5.2, <6"}),
    ("package", {"name": "libc6:amd64", "manager": "dpkg"}),
    ("package", {"name": "telnetd", "installed": False}),
    ("service", {"name": "ssh", "running": True, "enabled": True}),
    ("service", {"name": "journal", "pid_file": "/run/journal.pid"}),
    ("user", {"name": "root", "uid": 0, "gid": 0, "home": "/root", "shell": "/bin/bash", "groups": ["root"]}),
    ("group", {"name": "adm", "gid": 4, "members": ["syslog"]}),
    ("listening", {"port": 22, "address": "0.0.0.0", "process": "sshd"}),
    ("listening", {"port": "${lab_port}", "protocol": "udp", "listening": False}),
    ("mount", {"path": "/", "fstype": "ext4", "options": ["rw"]}),
    ("sysctl", {"key": "net.ipv4.ip_forward", "value": 0}),
    ("sysctl", {"key": "kernel.ostype", "value": "Linux"}),
    ("kernel_module", {"name": "br_netfilter", "loaded": False}),
])
def test_schemas_accept_what_the_runner_understands(kind: str, params: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(CHECK_TYPES[kind]).validate(params)


@pytest.mark.parametrize(("kind", "params"), [
    ("package", {"name": "../../etc/passwd"}),
    ("package", {"name": "telnetd", "installed": False, "version": ">=1"}),
    ("service", {"name": "-H evil"}),
    ("service", {"name": "ssh", "running": "yes"}),
    ("user", {"name": "root", "uid": -1}),
    ("group", {"name": "root", "members": "root"}),
    ("listening", {"port": 70000}),
    ("listening", {"port": 22, "protocol": "sctp"}),
    ("mount", {"path": "relative"}),
    ("sysctl", {"key": "kernel.ostype"}),
    ("sysctl", {"key": "kernel.ostype", "value": True}),
    ("kernel_module", {"name": "ext4.ko/x"}),
])
def test_schemas_reject_broken_parameters(kind: str, params: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(CHECK_TYPES[kind]).validate(params)


# --- package --------------------------------------------------------------------------------------

DPKG_STATUS = """\
Package: bash
Status: install ok installed
Priority: required
Architecture: amd64
Version: 5.2.15-2+b8
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 Status: this continuation line is not a field

Package: openssh-server
Status: hold ok installed
Architecture: amd64
Version: 1:9.2p1-2+deb12u3

Package: half
Status: install reinstreq half-installed
Architecture: all
Version: 1.0-1

Package: unpacked
Status: install ok unpacked
Architecture: all
Version: 1.0-1

Package: leaving
Status: deinstall ok installed
Architecture: all
Version: 2.0-1

Package: purged
Status: deinstall ok config-files
Architecture: all
Version: 3.0-1

Package: libfoo
Status: install ok installed
Architecture: amd64
Version: 2.1-1

Package: libfoo
Status: install ok half-configured
Architecture: i386
Version: 2.1-1

Package: journaled
Status: install ok unpacked
Architecture: all
Version: 4.0-1
"""


@pytest.fixture
def dpkg_root(root: Path) -> Path:
    write(root / "var" / "lib" / "dpkg" / "status", DPKG_STATUS)
    # dpkg stopped half-way: its journal says "journaled" got configured since the status was written
    write(root / "var" / "lib" / "dpkg" / "updates" / "0001",
          "Package: journaled\nStatus: install ok installed\nArchitecture: all\nVersion: 4.0-2\n")
    return root


@pytest.mark.parametrize(("name", "installed", "version"), [
    ("bash", True, "5.2.15-2+b8"),
    ("openssh-server", True, "1:9.2p1-2+deb12u3"),  # held packages are installed
    ("half", False, None),
    ("unpacked", False, None),
    ("leaving", False, None),  # files still there, but selected for removal: testinfra says not installed
    ("purged", False, None),
    ("libfoo", True, "2.1-1"),
    ("libfoo:amd64", True, "2.1-1"),
    ("libfoo:i386", False, None),
    ("journaled", True, "4.0-2"),
    ("never-heard-of", False, None),
])
def test_dpkg_installed_means_what_testinfra_means(dpkg_root: Path, name: str, installed: bool,
                                                    version: str | None) -> None:
    result = one(dpkg_root, "package", name=name)
    assert result["status"] == ("pass" if installed else "fail")
    assert (result["evidence"]["installed"], result["evidence"]["version"]) == (installed, version)
    assert result["evidence"]["manager"] == "dpkg"
    assert result["evidence"]["source"] == "/var/lib/dpkg/status"
    assert "dpkg" in result["message"]
    absent = one(dpkg_root, "package", name=name, installed=False)
    assert absent["status"] == ("fail" if installed else "pass")


def test_dpkg_state_is_in_the_message(dpkg_root: Path) -> None:
    half = one(dpkg_root, "package", name="half")
    assert half["message"] == "package half is not installed (dpkg status: install reinstreq half-installed)"
    assert half["evidence"]["instances"] == [
        {"architecture": "all", "status": "install reinstreq half-installed", "version": "1.0-1"}]
    missing = one(dpkg_root, "package", name="never-heard-of")
    assert missing["message"] == "package never-heard-of is not installed (not in the dpkg database)"


@pytest.mark.parametrize(("name", "constraint", "ok"), [
    ("bash", ">=5.2", True),
    ("bash", ">=5.2.15-2", True),
    ("bash", "==5.2.15", False),  # dpkg: an omitted revision is empty, and 5.2.15 << 5.2.15-2+b8
    ("bash", "==5.2.15-2", False),
    ("bash", "==5.2.15-2+b8", True),
    ("bash", ">5.2.15", True),
    ("bash", "<5.2.15-2+b9", True),
    ("bash", "~=5.1", True),
    ("bash", "~=5.2.16", False),
    ("bash", ">=6", False),
    ("openssh-server", ">=9.0, <10", False),  # an omitted epoch is 0: 1:9.2p1 is above 10 for dpkg
    ("openssh-server", ">=10", True),  # ... and above 10 (dpkg --compare-versions 1:9.2p1-2 gt 10)
    ("openssh-server", ">=1:9.0, <1:10", True),
    ("openssh-server", ">=2:1", False),  # with an epoch, the epoch counts
    ("openssh-server", ">=1:9.2", True),
    ("openssh-server", ">9.2", True),  # 9.2p1 > 9.2 for dpkg
])
def test_dpkg_version_constraints(dpkg_root: Path, name: str, constraint: str, ok: bool) -> None:
    result = one(dpkg_root, "package", name=name, version=constraint)
    assert result["status"] == ("pass" if ok else "fail"), result["message"]
    assert result["evidence"]["constraint"] == constraint


def test_package_broken_parameters_are_errors(dpkg_root: Path, tmp_path: Path) -> None:
    lines = run_checks(
        dpkg_root,
        {"type": "package", "params": {"name": "../../etc/shadow"}},
        {"type": "package", "params": {"name": "bash", "version": "about five"}},
        {"type": "package", "params": {"name": "bash", "installed": False, "version": ">=1"}},
        {"type": "package", "params": {"name": "bash", "manager": "pacman"}},
        {"type": "package", "params": {}},
        {"type": "package", "params": {"name": "bash", "installed": "yes"}},
    )
    assert [line["status"] for line in lines] == ["error"] * 6
    assert "not a valid package name" in lines[0]["message"]
    assert "bad version constraint clause 'about five'" in lines[1]["message"]
    nothing = one(tmp_path / "empty", "package", name="bash")
    assert nothing["status"] == "error"
    assert "no package database on the sandbox" in nothing["message"]


# dpkg --compare-versions is the authority for dpkg's order; rpm's examples are from its documentation.
DPKG_PAIRS = [
    ("1.0", "1.0"), ("1.0", "1.0.0"), ("1.0~rc1", "1.0"), ("1.0~~", "1.0~"), ("1.0a", "1.0"),
    ("1.0a", "1.0.1"), ("1.0+b1", "1.0"), ("1.0-1", "1.0-1+b1"), ("9.2p1", "9.2"), ("2.10", "2.9"),
    ("1.0-0", "1.0"), ("0:1.0", "1.0"), ("1:0.1", "9.9"), ("1.002", "1.2"), ("1.0~rc1-1", "1.0-1"),
    ("a", "b"), ("1.0.", "1.0"), ("1.0+dfsg", "1.0.1"), ("5.2.15-2+b8", "5.2.15-2+b10"),
    ("1:9.2p1-2", "10"), ("1:9.2p1-2", "1:10"), ("2:0", "1:99"), ("1.0-1~bpo12+1", "1.0-1"),
    ("1.0~rc1~git1", "1.0~rc1"), ("7.4.052-1ubuntu3", "7.4-1"), ("1.2.3-1", "1.2.3-1.1"), ("1.0a~", "1.0a"),
    ("1.0-a", "1.0-1"), ("10:1", "9:2"), ("1.0+really0.9", "1.0"), ("0.0", "0"), ("1.0~", "1.0~0"),
]


@pytest.mark.skipif(shutil.which("dpkg") is None,
                    reason="needs dpkg on PATH to confirm dpkg's version order: run on Debian or Ubuntu "
                    "(or a debian container), as CI does: make test")
def test_dpkg_order_agrees_with_dpkg() -> None:
    for a, b in DPKG_PAIRS:
        for op, sign in (("lt", -1), ("eq", 0), ("gt", 1)):
            expected = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0
            assert (runner.dpkg_compare(a, b) == sign) is expected, (a, op, b)


@pytest.mark.parametrize(("a", "b", "order"), [
    ("1.0", "1.0", 0), ("1.0", "1.0.1", -1), ("1.0a", "1.0.1", -1), ("2.10", "2.9", 1),
    ("1.0~rc1", "1.0", -1), ("1.0^git1", "1.0", 1), ("1.0^git1", "1.0.1", -1), ("1.0~rc1", "1.0~rc2", -1),
    ("1.01", "1.1", 0), ("1_0", "1.0", 0), ("el9", "el10", -1), ("a", "1", -1),
])
def test_rpm_order(a: str, b: str, order: int) -> None:
    assert runner.rpm_compare_part(a, b) == order
    assert runner.rpm_compare_part(b, a) == -order


# --- user and group -------------------------------------------------------------------------------

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
# a comment
+nisuser::::::
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
svc:x:998:998::/var/lib/svc:/usr/sbin/nologin
orphan:x:1001:4242::/home/orphan:/bin/sh
broken:x:1002
"""

GROUP = """\
root:x:0:
adm:x:4:alice,svc
alice:x:1000:
svc:x:998:
docker:x:999:alice
"""


@pytest.fixture
def accounts(root: Path) -> Path:
    write(root / "etc" / "passwd", PASSWD)
    write(root / "etc" / "group", GROUP)
    return root


def test_user_from_the_sandbox_passwd(accounts: Path) -> None:
    alice = one(accounts, "user", name="alice", uid=1000, gid=1000, home="/home/alice", shell="/bin/bash",
                groups=["adm", "docker"])
    assert alice["status"] == "pass"
    assert alice["evidence"]["groups"] == ["alice", "adm", "docker"]  # as `id -nG alice` lists them
    assert alice["message"] == "user alice exists (uid 1000, gid 1000, home /home/alice, shell /bin/bash)"
    root_user = one(accounts, "user", name="root", uid=0, groups=["root"])
    assert (root_user["status"], root_user["evidence"]["groups"]) == ("pass", ["root"])
    orphan = one(accounts, "user", name="orphan")
    assert orphan["evidence"]["groups"] == ["4242"]  # a gid without a group shows as its number, like id
    assert one(accounts, "user", name="mallory", exists=False)["status"] == "pass"


def test_user_failures_list_every_difference(accounts: Path) -> None:
    svc = one(accounts, "user", name="svc", uid=0, shell="/bin/bash", groups=["docker", "adm"])
    assert svc["status"] == "fail"
    assert svc["message"] == ("user svc: uid is 998, expected 0; shell is /usr/sbin/nologin, expected /bin/bash; "
                              "not in group docker (groups: svc, adm)")
    assert svc["evidence"]["uid"] == 998
    missing = one(accounts, "user", name="mallory")
    assert (missing["status"], missing["message"]) == ("fail", "user mallory does not exist (not in /etc/passwd)")
    present = one(accounts, "user", name="root", exists=False)
    assert (present["status"], present["message"]) == ("fail", "user root exists (uid 0) but must not")
    assert one(accounts, "user", name="+nisuser")["status"] == "error"  # not a valid name at all


def test_user_broken_parameters_and_files_are_errors(accounts: Path, tmp_path: Path) -> None:
    lines = run_checks(
        accounts,
        {"type": "user", "params": {"name": "root", "uid": "zero"}},
        {"type": "user", "params": {"name": "root", "groups": "root"}},
        {"type": "user", "params": {"name": "bad/name"}},
        {"type": "user", "params": {"name": "broken"}},
        {"type": "user", "params": {}},
    )
    assert [line["status"] for line in lines] == ["error"] * 5
    assert lines[0]["message"] == "uid must be an integer, got 'zero'"
    assert lines[3]["message"] == "/etc/passwd line 7 has 3 fields, expected 7: cannot judge 'broken'"
    no_passwd = one(tmp_path / "bare", "user", name="root")
    assert no_passwd["status"] == "error"
    assert no_passwd["message"].startswith("cannot read /etc/passwd")


def test_group_from_the_sandbox_group_file(accounts: Path) -> None:
    adm = one(accounts, "group", name="adm", gid=4, members=["svc"])
    assert (adm["status"], adm["evidence"]["members"]) == ("pass", ["alice", "svc"])
    # alice's primary group does not list her: members are the group's own list, as in testinfra
    alice = one(accounts, "group", name="alice", members=["alice"])
    assert alice["status"] == "fail"
    assert alice["message"] == "group alice: alice not among its members (none)"
    wrong = one(accounts, "group", name="docker", gid=1)
    assert (wrong["status"], wrong["message"]) == ("fail", "group docker: gid is 999, expected 1")
    assert one(accounts, "group", name="wheel")["status"] == "fail"
    assert one(accounts, "group", name="wheel", exists=False)["status"] == "pass"
    broken = run_checks(accounts, {"type": "group", "params": {"name": "adm", "members": [1]}},
                        {"type": "group", "params": {"name": "adm", "gid": 4.5}})
    assert [b["status"] for b in broken] == ["error", "error"]


# --- service --------------------------------------------------------------------------------------

@pytest.fixture
def sleeper(root: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process of the sandbox (its argv names the sandbox root, as local sandboxes' processes do)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(root)])
    yield proc
    proc.kill()
    proc.wait()


def test_service_on_a_sandbox_root_is_process_based(root: Path, sleeper: subprocess.Popen[bytes],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)  # no systemctl: SysV links decide
    write(root / "run" / "journal.pid", str(sleeper.pid))
    write(root / "etc" / "init.d" / "journal", "#!/bin/sh\nexit 0\n")  # never run on a sandbox root
    (root / "etc" / "rc2.d").mkdir(parents=True)
    (root / "etc" / "rc2.d" / "S01journal").symlink_to("../init.d/journal")
    result = one(root, "service", name="journal", pid_file="/run/journal.pid", enabled=True, running=True)
    assert result["status"] == "pass"
    evidence = result["evidence"]
    assert (evidence["running_method"], evidence["enabled_method"]) == ("pid-file", "sysv-rc-links")
    assert evidence["systemd_pid1"] is False
    assert evidence["running_detail"] == f"pid file /run/journal.pid: pid {sleeper.pid} is alive"
    assert evidence["enabled_detail"] == "SysV start links: /etc/rc2.d/S01journal"
    assert "[pid-file:" in result["message"]
    assert "[sysv-rc-links:" in result["message"]
    by_name = one(root, "service", name="journal", process=Path(sys.executable).name)
    assert (by_name["status"], by_name["evidence"]["running_method"]) == ("pass", "process-name")
    # without a process parameter, a process called like the service: there is none
    unnamed = one(root, "service", name="journal")
    assert unnamed["status"] == "fail"
    assert unnamed["message"] == ("service journal is not running [process-name: process journal: none running]; "
                                  "expected running")
    disabled = one(root, "service", name="other", running=False, enabled=False)
    assert disabled["status"] == "pass"
    assert disabled["evidence"]["enabled_detail"] == "SysV start links: no /etc/rc?.d/S??other"


def test_service_pid_file_of_a_dead_process(root: Path, sleeper: subprocess.Popen[bytes]) -> None:
    write(root / "run" / "journal.pid", str(sleeper.pid))
    sleeper.kill()
    sleeper.wait()
    dead = one(root, "service", name="journal", pid_file="/run/journal.pid")
    assert dead["status"] == "fail"
    assert f"pid {sleeper.pid} is not running" in dead["message"]


def fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str, code: int) -> None:
    bin_dir = tmp_path / "fake-bin"
    write(bin_dir / "systemctl", f"#!/bin/sh\necho '{state}'\nexit {code}\n").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(("state", "code", "name", "status", "enabled"), [
    ("enabled", 0, "ssh", "pass", True),
    ("static", 0, "dbus", "pass", True),  # testinfra: exit 0 is enabled
    ("disabled", 1, "ssh", "fail", False),
    ("masked", 1, "ssh", "fail", False),
    ("not-found", 4, "ghost.service", "error", None),  # a unit name systemd does not know: cannot judge
    ("not-found", 4, "ghost", "fail", False),  # not a unit name: the SysV links decide, and there are none
])
def test_service_enabled_from_systemctl(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str,
                                        code: int, name: str, status: str, enabled: bool | None) -> None:
    fake_systemctl(tmp_path, monkeypatch, state, code)
    result = one(root, "service", name=name, enabled=True)
    assert result["status"] == status, result["message"]
    if enabled is not None:
        assert result["evidence"]["enabled"] is enabled
    if status != "error" and name == "ssh":
        assert result["evidence"]["enabled_method"] == "systemctl"
        assert f"systemctl is-enabled {name}: {state} (exit {code})" in result["message"]


def test_service_broken_parameters_are_errors(root: Path) -> None:
    lines = run_checks(
        root,
        {"type": "service", "params": {"name": "../../bin/sh"}},
        {"type": "service", "params": {"name": "-H evil"}},
        {"type": "service", "params": {"name": "ssh", "running": "yes"}},
        {"type": "service", "params": {"name": "ssh", "pid_file": 42}},
        {"type": "service", "params": {}},
    )
    assert [line["status"] for line in lines] == ["error"] * 5
    assert lines[0]["message"] == "name '../../bin/sh' is not a valid service name"


# --- listening ------------------------------------------------------------------------------------

def hex_address(address: str) -> str:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    return "".join(f"{struct.unpack('=I', packed[i:i + 4])[0]:08X}" for i in range(0, len(packed), 4))


def socket_table(*rows: tuple[str, int, str, int]) -> str:
    """A /proc/net/{tcp,udp}[6] table: (address, port, state, inode) per socket."""
    lines = ["  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"]
    for index, (address, port, state, inode) in enumerate(rows):
        remote = "0" * len(hex_address(address))
        lines.append(f"{index:4}: {hex_address(address)}:{port:04X} {remote}:0000 {state} 00000000:00000000 "
                     f"00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0")
    return "\n".join(lines) + "\n"


# IPV6_V6ONLY of the fake IPv6 sockets, as the kernel's sock_diag would tell them (by inode)
V6ONLY = {"tcp": {"201": False, "204": True, "205": True}, "udp": {"401": True, "402": False}}


@pytest.fixture
def sockets(proc: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write(proc / "net" / "tcp", socket_table(
        ("127.0.0.1", 8080, "0A", 101), ("0.0.0.0", 22, "0A", 102), ("0.0.0.0", 9000, "0A", 103),
        ("10.0.0.5", 5432, "0A", 104), ("127.0.0.1", 40000, "01", 105),  # 01: an established connection
        ("0.0.0.0", 2223, "0A", 106)))
    write(proc / "net" / "tcp6", socket_table(
        ("::", 22, "0A", 201), ("::1", 8081, "0A", 202), ("::ffff:127.0.0.1", 7000, "0A", 203),
        ("::", 2222, "0A", 204), ("::", 2223, "0A", 205)))
    write(proc / "net" / "udp", socket_table(("127.0.0.1", 53, "07", 301), ("127.0.0.1", 5353, "01", 302)))
    write(proc / "net" / "udp6", socket_table(("::", 5000, "07", 401), ("::", 5001, "07", 402)))
    monkeypatch.setattr(runner, "v6only_flags", lambda protocol: V6ONLY[protocol])
    return proc


@pytest.mark.parametrize(("params", "status", "matched"), [
    ({"port": 8080, "address": "127.0.0.1"}, "pass", ["127.0.0.1:8080"]),
    ({"port": 8080}, "fail", []),  # only on loopback, not on all addresses
    ({"port": 22}, "pass", ["0.0.0.0:22", "[::]:22"]),
    ({"port": 22, "address": "192.168.1.7"}, "pass", ["0.0.0.0:22", "[::]:22"]),
    ({"port": 22, "address": "::1"}, "pass", ["[::]:22"]),
    ({"port": 9000}, "fail", []),  # 0.0.0.0 only: IPv6 clients are not served (testinfra agrees)
    ({"port": 9000, "address": "127.0.0.1"}, "pass", ["0.0.0.0:9000"]),  # testinfra's code says no, see runner
    ({"port": 9000, "address": "::1"}, "fail", []),
    ({"port": 5432, "address": "10.0.0.5"}, "pass", ["10.0.0.5:5432"]),
    ({"port": 5432, "address": "127.0.0.1"}, "fail", []),
    ({"port": 8081, "address": "0:0:0:0:0:0:0:1"}, "pass", ["[::1]:8081"]),  # addresses are normalized
    ({"port": 7000, "address": "127.0.0.1"}, "pass", ["127.0.0.1:7000"]),  # ::ffff:127.0.0.1 is IPv4
    ({"port": 40000, "address": "127.0.0.1"}, "fail", []),  # connected, not listening
    ({"port": "8080", "address": "127.0.0.1"}, "pass", ["127.0.0.1:8080"]),  # a ${lab_port} string
    ({"port": 53, "protocol": "udp", "address": "127.0.0.1"}, "pass", ["127.0.0.1:53"]),
    ({"port": 5353, "protocol": "udp", "address": "127.0.0.1"}, "fail", []),  # a connected UDP socket
    ({"port": 8080, "protocol": "udp", "address": "127.0.0.1"}, "fail", []),
    ({"port": 8080, "address": "127.0.0.1", "listening": False}, "fail", ["127.0.0.1:8080"]),
    ({"port": 1234, "listening": False}, "pass", []),
    # a :: socket with IPV6_V6ONLY serves IPv6 only; testinfra counts it for IPv4 too
    ({"port": 2222, "address": "127.0.0.1"}, "fail", []),
    ({"port": 2222, "address": "0.0.0.0"}, "fail", []),
    ({"port": 2222, "address": "::1"}, "pass", ["[::]:2222 (v6only)"]),
    ({"port": 2222}, "fail", []),
    ({"port": 2223}, "pass", ["0.0.0.0:2223", "[::]:2223 (v6only)"]),  # 0.0.0.0 and a v6only ::: everywhere
    ({"port": 22, "address": "0.0.0.0"}, "pass", ["0.0.0.0:22", "[::]:22"]),
    ({"port": 5000, "protocol": "udp", "address": "127.0.0.1"}, "fail", []),
    ({"port": 5000, "protocol": "udp", "address": "::1"}, "pass", ["[::]:5000 (v6only)"]),
    ({"port": 5001, "protocol": "udp", "address": "127.0.0.1"}, "pass", ["[::]:5001"]),
])
def test_listening_semantics(root: Path, sockets: Path, params: dict[str, Any], status: str,
                             matched: list[str]) -> None:
    result = one(root, "listening", **params)
    assert result["status"] == status, result["message"]
    assert result["evidence"]["matched"] == matched
    assert result["evidence"]["source"] == f"/proc/net/{params.get('protocol', 'tcp')}, " \
                                           f"/proc/net/{params.get('protocol', 'tcp')}6"


def test_listening_messages(root: Path, sockets: Path) -> None:
    assert one(root, "listening", port=9000)["message"] == \
        "tcp port 9000 is not listening on all addresses (listening on: 0.0.0.0:9000)"
    assert one(root, "listening", port=9000, address="127.0.0.1")["message"] == \
        "tcp port 9000 is listening on 127.0.0.1 (0.0.0.0:9000)"
    assert one(root, "listening", port=1234)["message"] == \
        "tcp port 1234 is not listening on all addresses (nothing on that port)"


def test_listening_without_ipv6_all_addresses_is_0000(root: Path, proc: Path) -> None:
    write(proc / "net" / "tcp", socket_table(("0.0.0.0", 9000, "0A", 1)))
    assert one(root, "listening", port=9000)["status"] == "pass"


def test_listening_process_needs_a_visible_owner(root: Path, sockets: Path) -> None:
    # the fake /proc has no processes: the owner cannot be told, which is an error, not a pass
    result = one(root, "listening", port=8080, address="127.0.0.1", process="nginx")
    assert result["status"] == "error"
    assert result["message"] == ("tcp port 8080 is listening on 127.0.0.1 but its process cannot be told: "
                                 "no process holds the socket")


def test_listening_owner_on_the_real_proc(root: Path) -> None:
    names = runner.process_names(os.getpid())
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        mine = one(root, "listening", port=port, address="127.0.0.1", process=sorted(names)[0])
        assert mine["status"] == "pass", mine["message"]
        assert {"pid": os.getpid(), "names": sorted(names)} in mine["evidence"]["owners"]
        other = one(root, "listening", port=port, address="127.0.0.1", process="nginx")
        assert other["status"] == "fail"
        assert other["message"].endswith(", not by nginx")


def test_listening_broken_parameters_are_errors(root: Path, sockets: Path) -> None:
    lines = run_checks(
        root,
        {"type": "listening", "params": {"port": 70000}},
        {"type": "listening", "params": {"port": "http"}},
        {"type": "listening", "params": {"port": 22, "address": "localhost"}},
        {"type": "listening", "params": {"port": 22, "protocol": "sctp"}},
        {"type": "listening", "params": {"port": 22, "process": "sshd", "listening": False}},
        {"type": "listening", "params": {}},
    )
    assert [line["status"] for line in lines] == ["error"] * 6
    assert lines[2]["message"] == "address must be an IPv4 or IPv6 address, got 'localhost'"
    (sockets / "net" / "tcp").unlink()
    (sockets / "net" / "tcp6").unlink()
    gone = one(root, "listening", port=22)
    assert gone["status"] == "error"
    assert "no socket table" in gone["message"]


# --- mount ----------------------------------------------------------------------------------------

@pytest.fixture
def mounts(proc: Path, root: Path) -> Path:
    write(proc / "mounts", "\n".join([
        "rootfs / rootfs rw 0 0",
        "/dev/vda / ext4 rw,relatime,errors=remount-ro 0 0",
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
        "tmpfs /srv tmpfs rw,size=1024k 0 0",
        "/dev/vdb /srv ext4 ro,relatime 0 0",
        r"/dev/vdc /mnt/with\040space xfs rw 0 0",
        f"tmpfs {root}/data tmpfs rw,nodev 0 0",
    ]) + "\n")
    return proc


def test_mount_points(mounts: Path, tmp_path: Path) -> None:
    real = Path("/")
    top = one(real, "mount", path="/", fstype="ext4", device="/dev/vda", options=["rw", "errors=remount-ro"])
    assert top["status"] == "pass"
    assert top["message"] == "/ is mounted (ext4 on /dev/vda, rw,relatime,errors=remount-ro)"
    assert one(real, "mount", path="/proc/", fstype="proc")["status"] == "pass"  # a trailing slash is fine
    stacked = one(real, "mount", path="/srv")
    assert (stacked["evidence"]["fstype"], stacked["evidence"]["stacked"]) == ("ext4", 2)  # the one on top
    assert one(real, "mount", path="/mnt/with space", fstype="xfs")["status"] == "pass"
    assert one(real, "mount", path="/home", exists=False)["status"] == "pass"


def test_mount_failures(mounts: Path) -> None:
    real = Path("/")
    wrong = one(real, "mount", path="/srv", fstype="tmpfs", options=["rw", "noexec"])
    assert wrong["status"] == "fail"
    assert wrong["message"] == ("mount /srv: fstype is ext4, expected tmpfs; "
                                "options lack rw, noexec (options: ro,relatime)")
    missing = one(real, "mount", path="/home")
    assert (missing["status"], missing["message"]) == ("fail", "/home is not a mount point")
    assert one(real, "mount", path="/proc", exists=False)["status"] == "fail"


def test_mount_under_a_sandbox_root(mounts: Path, root: Path) -> None:
    assert one(root, "mount", path="/data", fstype="tmpfs")["status"] == "pass"
    assert one(root, "mount", path="/")["status"] == "fail"  # the sandbox directory is not a mount point


def test_mount_broken_parameters_are_errors(mounts: Path, proc: Path) -> None:
    lines = run_checks(Path("/"), {"type": "mount", "params": {"path": "srv"}},
                       {"type": "mount", "params": {"path": "/", "options": "rw"}},
                       {"type": "mount", "params": {"path": "/", "exists": "no"}})
    assert [line["status"] for line in lines] == ["error"] * 3
    (proc / "mounts").unlink()
    assert one(Path("/"), "mount", path="/")["message"].startswith("cannot read /proc/mounts")


# --- sysctl ---------------------------------------------------------------------------------------

@pytest.fixture
def sysctl(proc: Path) -> Path:
    write(proc / "sys" / "kernel" / "ostype", "Linux\n")
    write(proc / "sys" / "net" / "ipv4" / "ip_forward", "1\n")
    write(proc / "sys" / "net" / "ipv4" / "ip_local_port_range", "32768\t60999\n")
    write(proc / "sys" / "net" / "ipv4" / "conf" / "eth0.1" / "forwarding", "0\n")
    return proc


@pytest.mark.parametrize(("key", "value", "status"), [
    ("kernel.ostype", "Linux", "pass"),
    ("kernel.ostype", "FreeBSD", "fail"),
    ("net.ipv4.ip_forward", 1, "pass"),
    ("net.ipv4.ip_forward", "1", "pass"),
    ("net.ipv4.ip_forward", 0, "fail"),
    ("net.ipv4.ip_local_port_range", "32768 60999", "pass"),  # /proc writes a tab
    ("net.ipv4.ip_local_port_range", 32768, "fail"),  # not an integer
    ("net/ipv4/conf/eth0.1/forwarding", 0, "pass"),  # slashes: dots are part of the name
    ("net.ipv4.no_such_key", 1, "fail"),
])
def test_sysctl_values(root: Path, sysctl: Path, key: str, value: int | str, status: str) -> None:
    result = one(root, "sysctl", key=key, value=value)
    assert result["status"] == status, result["message"]
    assert result["evidence"]["expected"] == value


def test_sysctl_messages_and_errors(root: Path, sysctl: Path) -> None:
    assert one(root, "sysctl", key="net.ipv4.ip_forward", value=0)["message"] == \
        "sysctl net.ipv4.ip_forward is '1', expected 0"
    assert one(root, "sysctl", key="net.ipv4.nope", value=0)["message"] == \
        "sysctl net.ipv4.nope does not exist (no /proc/sys/net/ipv4/nope)"
    lines = run_checks(
        root,
        {"type": "sysctl", "params": {"key": "net.ipv4", "value": 1}},
        {"type": "sysctl", "params": {"key": "net..ipv4", "value": 1}},
        {"type": "sysctl", "params": {"key": "../../etc/shadow", "value": 1}},
        {"type": "sysctl", "params": {"key": "kernel.ostype", "value": True}},
        {"type": "sysctl", "params": {"key": "kernel.ostype"}},
    )
    assert [line["status"] for line in lines] == ["error"] * 5
    assert lines[0]["message"] == "sysctl net.ipv4 is a directory of keys (/proc/sys/net/ipv4), not a key"


# --- kernel module --------------------------------------------------------------------------------

@pytest.fixture
def modules(proc: Path, tmp_path: Path) -> Path:
    write(proc / "modules", "br_netfilter 32768 0 - Live 0x0000000000000000\n"
                            "bridge 307200 1 br_netfilter, Live 0x0000000000000000\n"
                            "nf_tables 294912 0 - Unloading 0x0000000000000000\n")
    write(proc / "sys" / "kernel" / "osrelease", "6.1.0-test\n")
    write(tmp_path / "lib-modules" / "6.1.0-test" / "modules.builtin", "kernel/fs/ext4/ext4.ko\n")
    return proc


def test_kernel_modules(root: Path, modules: Path) -> None:
    loaded = one(root, "kernel_module", name="br-netfilter")  # - and _ are the same module
    assert (loaded["status"], loaded["message"]) == ("pass", "kernel module br-netfilter is loaded")
    absent = one(root, "kernel_module", name="vxlan")
    assert (absent["status"], absent["message"]) == ("fail", "kernel module vxlan is not loaded; expected it loaded")
    assert one(root, "kernel_module", name="vxlan", loaded=False)["status"] == "pass"
    unloading = one(root, "kernel_module", name="nf_tables")
    assert (unloading["status"], unloading["evidence"]["state"]) == ("fail", "Unloading")
    builtin = one(root, "kernel_module", name="ext4")
    assert (builtin["status"], builtin["evidence"]["builtin"]) == ("pass", True)
    assert builtin["message"] == "kernel module ext4 is built into the kernel"


def test_kernel_module_unavailable_is_an_error(root: Path, proc: Path) -> None:
    result = one(root, "kernel_module", name="br_netfilter")
    assert result["status"] == "error"
    assert result["message"].startswith("/proc/modules is not available")
    assert "cannot tell whether module br_netfilter is loaded" in result["message"]
    broken = run_checks(root, {"type": "kernel_module", "params": {"name": "../x"}},
                        {"type": "kernel_module", "params": {"name": "x", "loaded": 1}})
    assert [b["status"] for b in broken] == ["error", "error"]


# --- the runner stays one file for Python 3.8 -----------------------------------------------------

def test_runner_is_python_38_syntax() -> None:
    import ast

    source = Path(runner.__file__).read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 8))
    for newer in (".removeprefix(", ".removesuffix(", "functools.cache(", "zoneinfo", " | None"):
        assert newer not in source, newer
