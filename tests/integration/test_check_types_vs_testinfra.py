"""The Linux check types on this very host, judged twice: by the lab's runner (sent to the host as to
a sandbox: a manifest with root ``/``, one round trip through the local transport) and by
pytest-testinfra's ``local://`` backend. The two must agree case by case; where the lab differs on
purpose, the test says so and asserts the difference, so a change on either side shows up here.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra  # a declared test dependency (pyproject's dev extra)

from lab.checks import runner
from lab.checks.delivery import run_runner
from lab.checks.manifest import compile_suite, parse_results, suite_budget
from lab.model import Check, Result, Status, Suite
from lab.transports.local import LocalTransport

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux checks need a Linux host"),
]

DPKG = os.path.exists("/var/lib/dpkg/status")
needs_dpkg = pytest.mark.skipif(not DPKG or shutil.which("dpkg") is None, reason="needs a dpkg-based host")


@pytest.fixture(scope="module")
def ti() -> Any:
    """testinfra's view of this host."""
    return testinfra.get_host("local://")


def lab(*checks: tuple[str, str, dict[str, Any]]) -> dict[str, Result]:
    """Run (id, type, params) checks on this host as on a sandbox; the results by check id."""
    suite = Suite("vs-testinfra", Path(__file__), True, ("debian-12",),
                  tuple(Check(check_id, kind, params, 10.0, 0) for check_id, kind, params in checks))
    manifest = compile_suite(suite, "/", {})
    with LocalTransport("localhost", {}) as transport:
        output = run_runner(transport, manifest, suite_budget(suite, 60.0))
    assert output.exit_code == 0, output.stderr.decode()
    return {result.check_id: result for result in parse_results(suite, output)}


def passed(result: Result) -> bool:
    assert result.status in (Status.PASS, Status.FAIL), f"{result.check_id}: {result.status}: {result.message}"
    return result.status is Status.PASS


# --- package --------------------------------------------------------------------------------------

@needs_dpkg
def test_packages_installed_and_versions_agree(ti: Any) -> None:
    listed = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\n"], capture_output=True, text=True,
                            check=True).stdout.split()
    names = sorted({"bash", "coreutils", *listed[::60], "lab-no-such-package"})
    results = lab(*((name, "package", {"name": name}) for name in names),
                  ("absent", "package", {"name": "lab-no-such-package", "installed": False}))
    for name in names:
        package = ti.package(name)
        installed = package.is_installed
        assert passed(results[name]) is installed, name
        if installed:
            assert results[name].evidence["version"] == package.version, name
            assert results[name].evidence["manager"] == "dpkg"
    assert results["bash"].status is Status.PASS
    assert results["lab-no-such-package"].status is Status.FAIL
    assert results["lab-no-such-package"].message == \
        "package lab-no-such-package is not installed (not in the dpkg database)"
    assert results["absent"].status is Status.PASS


@needs_dpkg
def test_dpkg_database_reads_like_dpkg_query() -> None:
    """Every package of this host: the runner's parse of the database and its notion of installed,
    against dpkg-query's fields and testinfra's rule applied to them."""
    fields = "${Package}\t${Architecture}\t${Status}\t${Version}\n"
    listed = subprocess.run(["dpkg-query", "-W", "-f", fields], capture_output=True, text=True, check=True).stdout
    theirs = {(p, a): (s, v) for p, a, s, v in (line.split("\t") for line in listed.splitlines())}
    ours = {(f["Package"], f.get("Architecture", "")): (f.get("Status", ""), f.get("Version", ""))
            for text in runner.dpkg_database("/var/lib/dpkg") for f in runner.dpkg_stanzas(text)}
    ours = {key: value for key, value in ours.items() if "not-installed" not in value[0]}
    theirs = {key: value for key, value in theirs.items() if "not-installed" not in value[0]}
    assert ours == theirs
    for status, _ in theirs.values():
        words = status.split()
        assert runner.dpkg_installed(status) is (words[0] in ("install", "hold") and words[1:3] == ["ok", "installed"])


def dpkg_agrees(version: str, clause: str) -> bool:
    """``dpkg --compare-versions`` on one clause (``>=5.2``) of a constraint."""
    match = re.match(r"^\s*(==|!=|>=|<=|>|<)\s*(\S+)\s*$", clause)
    assert match, clause
    op = {">=": "ge", "<": "lt", "==": "eq", "!=": "ne", ">": "gt", "<=": "le"}[match.group(1)]
    return subprocess.run(["dpkg", "--compare-versions", version, op, match.group(2)], check=False).returncode == 0


@needs_dpkg
def test_package_version_constraints_agree_with_dpkg(ti: Any) -> None:
    """The lab's answer on each constraint, and dpkg's own on testinfra's version of the package.

    The references include partial ones (no revision, no epoch) and ``~``, where comparing only the
    parts a constraint names would differ from dpkg: the lab compares full versions as dpkg does.
    (Every class, with packages made for the purpose, is in test_linux_checks_differential.py.)
    """
    cases = []
    versions = {name: ti.package(name).version for name in ("bash", "coreutils")}
    for name, version in versions.items():
        upstream = version.split(":", 1)[-1].rsplit("-", 1)[0]
        major = int(upstream.split(".")[0])
        for constraint in (f">={upstream}", f"<{major}", f">={major}, <{major + 1}", f"=={version}",
                           f"!={version}", f">{version}", f"<={version}", f">=1:{major}", f"<{major + 1}",
                           f"=={upstream}", f"<={upstream}", f">{upstream}", f">{upstream}~", "<1:0",
                           f"<{upstream}-0", f">={version}~"):
            cases.append((name, version, constraint))
    results = lab(*((f"{name} {constraint}", "package", {"name": name, "version": constraint})
                    for name, _, constraint in cases))
    for name, version, constraint in cases:
        expected = all(dpkg_agrees(version, clause) for clause in constraint.split(","))
        assert passed(results[f"{name} {constraint}"]) is expected, (name, version, constraint)
    assert results[f"bash >={versions['bash'].rsplit('-', 1)[0]}"].status is Status.PASS


# --- user and group -------------------------------------------------------------------------------

def test_users_agree(ti: Any) -> None:
    names = ("root", "nobody", "daemon", "lab-no-such-user")
    theirs: dict[str, dict[str, Any]] = {}
    for name in names:
        user = ti.user(name)
        if user.exists:
            theirs[name] = {"uid": user.uid, "gid": user.gid, "home": user.home, "shell": user.shell,
                            "groups": user.groups}
    results = lab(*((name, "user", {"name": name}) for name in names),
                  *((f"{name} fields", "user", {"name": name, **fields}) for name, fields in theirs.items()))
    for name in names:
        assert passed(results[name]) is (name in theirs), name
        if name in theirs:
            evidence = results[name].evidence
            assert {key: evidence[key] for key in theirs[name]} == theirs[name], name
            assert results[f"{name} fields"].status is Status.PASS, results[f"{name} fields"].message
    assert (results["root"].evidence["uid"], results["root"].evidence["gid"]) == (0, 0)
    assert results["root"].evidence["home"] == "/root"
    assert results["nobody"].evidence["uid"] == 65534
    assert results["lab-no-such-user"].status is Status.FAIL


def test_groups_agree(ti: Any) -> None:
    names = ("root", "adm", "nogroup", "lab-no-such-group")
    results = lab(*((name, "group", {"name": name}) for name in names),
                  ("wrong", "group", {"name": "root", "gid": 4242}))
    for name in names:
        group = ti.group(name)
        exists = group.exists
        assert passed(results[name]) is exists, name
        if exists:
            assert results[name].evidence["gid"] == group.gid, name
            assert results[name].evidence["members"] == group.members, name
    assert results["root"].evidence["gid"] == 0
    assert results["lab-no-such-group"].status is Status.FAIL
    assert (results["wrong"].status, results["wrong"].message) == (Status.FAIL, "group root: gid is 0, expected 4242")


# --- listening ------------------------------------------------------------------------------------

def listener(family: socket.AddressFamily, kind: socket.SocketKind, address: str) -> socket.socket:
    sock = socket.socket(family, kind)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual-stack, Linux's default
    sock.bind((address, 0))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


@pytest.fixture
def sockets() -> Iterator[dict[str, int]]:
    """Sockets this test owns: name -> port."""
    opened = {
        "loopback": listener(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
        "any4": listener(socket.AF_INET, socket.SOCK_STREAM, "0.0.0.0"),
        "udp": listener(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1"),
    }
    if socket.has_ipv6 and os.path.exists("/proc/net/tcp6"):
        opened["any6"] = listener(socket.AF_INET6, socket.SOCK_STREAM, "::")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        ports = {"closed": closed.getsockname()[1]}
    ports.update({name: sock.getsockname()[1] for name, sock in opened.items()})
    yield ports
    for sock in opened.values():
        sock.close()


def test_sockets_agree(ti: Any, sockets: dict[str, int]) -> None:
    cases = [  # (socket, lab parameters, testinfra socket spec)
        ("loopback", {"address": "127.0.0.1"}, "tcp://127.0.0.1:{}"),
        ("loopback", {}, "tcp://{}"),
        ("any4", {"address": "0.0.0.0"}, "tcp://0.0.0.0:{}"),
        ("any4", {}, "tcp://{}"),
        ("udp", {"address": "127.0.0.1", "protocol": "udp"}, "udp://127.0.0.1:{}"),
        ("udp", {"address": "127.0.0.1"}, "tcp://127.0.0.1:{}"),
        ("closed", {"address": "127.0.0.1"}, "tcp://127.0.0.1:{}"),
        ("closed", {}, "tcp://{}"),
    ]
    if "any6" in sockets:
        cases += [
            ("any6", {}, "tcp://{}"),
            ("any6", {"address": "::"}, "tcp://:::{}"),
            ("any6", {"address": "127.0.0.1"}, "tcp://127.0.0.1:{}"),
            ("any6", {"address": "0.0.0.0"}, "tcp://0.0.0.0:{}"),
        ]
    results = lab(*((str(i), "listening", {"port": sockets[name], **params})
                    for i, (name, params, _) in enumerate(cases)))
    for i, (name, params, spec) in enumerate(cases):
        theirs = ti.socket(spec.format(sockets[name])).is_listening
        assert passed(results[str(i)]) is theirs, (name, params, spec, results[str(i)].message)
    expected = {"loopback": [True, False], "any4": [True, False], "udp": [True, False], "closed": [False, False]}
    for name, answers in expected.items():
        assert [passed(results[str(i)]) for i, case in enumerate(cases) if case[0] == name] == answers, name


def test_sockets_where_the_lab_differs_on_purpose(ti: Any, sockets: dict[str, int]) -> None:
    """0.0.0.0 serves 127.0.0.1. testinfra's Socket.is_listening means to count that (its docstring
    and its ``allipv4`` variable) but tests ``allipv4 in sockets`` (a bool in a list of tuples), so
    it answers False; the lab answers what a client would see."""
    port = sockets["any4"]
    result = lab(("any4 via loopback", "listening", {"port": port, "address": "127.0.0.1"}))["any4 via loopback"]
    assert result.status is Status.PASS
    assert result.evidence["matched"] == [f"0.0.0.0:{port}"]
    assert ti.socket(f"tcp://127.0.0.1:{port}").is_listening is False
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # and a client does get through


def test_socket_owner(sockets: dict[str, int]) -> None:
    me = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    results = lab(("mine", "listening", {"port": sockets["loopback"], "address": "127.0.0.1", "process": me}),
                  ("not nginx", "listening", {"port": sockets["loopback"], "address": "127.0.0.1", "process": "nginx"}))
    assert results["mine"].status is Status.PASS, results["mine"].message
    assert {"pid": os.getpid()}.items() <= results["mine"].evidence["owners"][0].items()
    assert results["not nginx"].status is Status.FAIL
    assert results["not nginx"].message.endswith("not by nginx")


# --- mount ----------------------------------------------------------------------------------------

def test_mount_points_agree(ti: Any) -> None:
    paths = ("/", "/proc", "/lab/no/such/mount")
    root = ti.mount_point("/")
    results = lab(*((path, "mount", {"path": path}) for path in paths),
                  ("root as testinfra sees it", "mount", {"path": "/", "fstype": root.filesystem,
                                                          "options": root.options}),
                  ("not tmpfs", "mount", {"path": "/proc", "fstype": "tmpfs"}))
    for path in paths:
        mount = ti.mount_point(path)
        assert passed(results[path]) is mount.exists, path
        if mount.exists and "stacked" not in results[path].evidence:  # stacked: the lab judges the top one
            evidence = results[path].evidence
            assert (evidence["fstype"], evidence["device"], evidence["options"]) == \
                (mount.filesystem, mount.device, mount.options), path
    assert results["/proc"].evidence["fstype"] == "proc"
    assert results["root as testinfra sees it"].status is Status.PASS
    assert results["not tmpfs"].status is Status.FAIL


# --- sysctl ---------------------------------------------------------------------------------------

def test_sysctl_agrees(ti: Any) -> None:
    keys = ("kernel.ostype", "kernel.osrelease", "net.ipv4.ip_forward", "kernel.pid_max",
            "net.ipv4.ip_local_port_range")
    values = {key: ti.sysctl(key) for key in keys}
    assert values["kernel.ostype"] == "Linux"
    assert isinstance(values["net.ipv4.ip_forward"], int)
    results = lab(
        *((key, "sysctl", {"key": key, "value": value}) for key, value in values.items()),
        *((f"{key} other", "sysctl", {"key": key, "value": value + 1 if isinstance(value, int) else value + "x"})
          for key, value in values.items()),
        ("missing", "sysctl", {"key": "lab.no_such_key", "value": 1}),
    )
    for key in keys:
        assert results[key].status is Status.PASS, results[key].message
        assert results[f"{key} other"].status is Status.FAIL, results[f"{key} other"].message
    with pytest.raises(AssertionError):  # sysctl -n fails on an unknown key
        ti.sysctl("lab.no_such_key")
    assert results["missing"].status is Status.FAIL
    assert results["missing"].message == "sysctl lab.no_such_key does not exist (no /proc/sys/lab/no_such_key)"


# --- service --------------------------------------------------------------------------------------

INIT_SCRIPT = """#!/bin/sh
# A probe service of the lab's tests: LSB status from its pid file.
PIDFILE=/run/{name}.pid
case "$1" in
  status)
    [ -f "$PIDFILE" ] || exit 3
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null && exit 0
    exit 1 ;;
  *) echo "Usage: $0 status" >&2; exit 3 ;;
esac
"""

needs_sysv_host = pytest.mark.skipif(
    os.geteuid() != 0 or os.path.isdir("/run/systemd/system") or shutil.which("service") is None,
    reason="installs a SysV probe service: run as root in a container without systemd as PID 1 and with "
    "service(8) (Debian's init-system-helpers), as CI does: sudo make test",
)


@pytest.fixture
def probe_service(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A SysV service of this host, started and enabled (rc2-5 start links, as update-rc.d makes)."""
    name = f"lab-probe-{os.getpid()}"
    script = Path("/etc/init.d") / name
    links = [Path(f"/etc/rc{level}.d") / f"S01{name}" for level in (2, 3, 4, 5)]
    pid_file = Path(f"/run/{name}.pid")
    process = subprocess.Popen(["sleep", "60"])
    try:
        script.write_text(INIT_SCRIPT.format(name=name))
        script.chmod(0o755)
        for link in links:
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(f"../init.d/{name}")
        pid_file.write_text(f"{process.pid}\n")
        yield name, process
    finally:
        process.kill()
        process.wait()
        for path in [script, pid_file, *links]:
            path.unlink(missing_ok=True)


@needs_sysv_host
def test_service_agrees_through_its_life(ti: Any, probe_service: tuple[str, subprocess.Popen[bytes]]) -> None:
    name, process = probe_service

    def both(state: str) -> tuple[bool, bool]:
        result = lab((state, "service", {"name": name, "running": True, "enabled": True}))[state]
        service = ti.service(name)
        assert result.status in (Status.PASS, Status.FAIL), result.message
        assert result.evidence["running_method"] == "init-script", result.message
        assert (result.evidence["running"], result.evidence["enabled"]) == (service.is_running, service.is_enabled)
        return result.evidence["running"], result.evidence["enabled"]

    assert both("started and enabled") == (True, True)
    for link in Path("/etc").glob(f"rc?.d/S01{name}"):
        link.unlink()
    assert both("started, not enabled") == (True, False)
    process.kill()
    process.wait()
    assert both("dead, pid file left") == (False, False)
    Path(f"/run/{name}.pid").unlink()
    assert both("stopped") == (False, False)


@needs_sysv_host
def test_process_based_service_where_testinfra_has_no_answer(ti: Any, tmp_path: Path) -> None:
    """Without an init script the lab looks for a process of that name; testinfra asks service(8),
    which does not know the service, so it says not running."""
    name = f"labp{os.getpid()}"[:15]
    binary = tmp_path / name
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    process = subprocess.Popen([str(binary), "60"])
    try:
        result = lab(("by name", "service", {"name": name}))["by name"]
        assert result.status is Status.PASS, result.message
        assert result.evidence["running_method"] == "process-name"
        assert f"[process-name: process {name}: pid {process.pid}]" in result.message
        assert ti.service(name).is_running is False
    finally:
        process.kill()
        process.wait()
    after = lab(("gone", "service", {"name": name}))["gone"]
    assert after.status is Status.FAIL


# --- kernel module --------------------------------------------------------------------------------

def test_kernel_module() -> None:
    """testinfra has no kernel-module module: /proc/modules itself is the reference."""
    modules = Path("/proc/modules")
    if not modules.exists():
        result = lab(("br_netfilter", "kernel_module", {"name": "br_netfilter"}))["br_netfilter"]
        assert result.status is Status.ERROR
        assert result.message.startswith("/proc/modules is not available")
        return
    lines = modules.read_text().splitlines()
    if not lines:
        pytest.skip("no kernel module is loaded on this host; run on a host or VM with a loaded module "
                    "(any line in /proc/modules, e.g. after sudo modprobe loop)")
    name = lines[0].split()[0]
    results = lab((name, "kernel_module", {"name": name}),
                  ("absent", "kernel_module", {"name": "lab_no_such_module"}))
    assert results[name].status is Status.PASS, results[name].message
    assert results["absent"].status is Status.FAIL
