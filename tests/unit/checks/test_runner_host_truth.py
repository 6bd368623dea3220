"""The runner's file, process, sysctl, package-version and listening checks on the cases where an
earlier runner disagreed with the host's own tools: file kinds other than file/directory, dangling
links, owners and groups, processes by comm/exe/cmdline (never argv[1]), sysctl keys with slashes,
dpkg/rpm full-version order, and ``::`` sockets with IPV6_V6ONLY.

The same classes against the host's own tools (stat, pgrep, sysctl -n, dpkg --compare-versions,
connect()) over the local and SSH transports are in tests/integration/test_linux_checks_differential.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lab.checks import runner
from lab.checks.types.linux import CHECK_TYPES

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="makes device nodes or chowns files: run as root "
                                "(sudo .venv/bin/pytest tests/unit/checks/test_runner_host_truth.py)")


def one(root: Path, check_type: str, /, **params: Any) -> dict[str, Any]:
    """One check through the runner's engine, as on a sandbox whose root is ``root``."""
    manifest = {"format": 1, "suite": "t", "root": str(root),
                "checks": [{"id": "c", "type": check_type, "params": params, "timeout": 5, "retries": 0}]}
    out = io.StringIO()
    runner.run_manifest(manifest, out)
    line: dict[str, Any] = json.loads(out.getvalue().splitlines()[0])
    return line


def status(root: Path, check_type: str, /, **params: Any) -> str:
    result = one(root, check_type, **params)
    assert result["status"] in ("pass", "fail"), result["message"]
    return str(result["status"])


# --- file -----------------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """A sandbox root with one of each kind of file the kernel has (devices only as root)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "real.conf").write_text("x = 1\n")
    (root / "etc" / "passwd").write_text(f"root:x:0:0::/root:/bin/sh\n1234:x:{os.getuid()}:{os.getgid()}::/:/bin/sh\n")
    (root / "etc" / "group").write_text(f"root:x:0:\n2000:x:{os.getgid()}:\n")
    os.mkfifo(root / "fifo")
    (root / "link").symlink_to("etc/real.conf")
    (root / "abs-link").symlink_to("/etc/real.conf")  # inside the sandbox: its own /etc/real.conf
    (root / "dangling").symlink_to("/no/such/file")
    (root / "loop").symlink_to("loop")
    (root / "dirlink").symlink_to("etc")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock"))
    if os.geteuid() == 0:
        os.mknod(root / "char", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "block", 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    yield root
    server.close()


@pytest.mark.parametrize(("path", "kind"), [
    ("/etc/real.conf", "file"), ("/etc", "directory"), ("/fifo", "fifo"), ("/sock", "socket"),
    ("/link", "file"), ("/abs-link", "file"), ("/dirlink", "directory"),
])
def test_each_kind_is_told_apart(tree: Path, path: str, kind: str) -> None:
    result = one(tree, "file", path=path)
    assert (result["status"], result["evidence"]["kind"]) == ("pass", kind)
    for other in ("file", "directory", "symlink", "socket", "fifo", "char", "block"):
        params = {"path": path, "kind": other, **({"follow": False} if other == "symlink" else {})}
        expected = "pass" if other == kind or (other == "symlink" and path.endswith("link")) else "fail"
        assert status(tree, "file", **params) == expected, (path, other)


def test_a_fifo_is_not_a_file(tree: Path) -> None:
    fifo = one(tree, "file", path="/fifo", kind="file")
    assert (fifo["status"], fifo["message"]) == ("fail", "/fifo is a fifo, expected a file")


@needs_root
def test_devices_are_char_and_block(tree: Path) -> None:
    assert one(tree, "file", path="/char", kind="char")["status"] == "pass"
    assert one(tree, "file", path="/block", kind="block")["status"] == "pass"
    char_as_file = one(tree, "file", path="/char", kind="file")
    assert (char_as_file["status"], char_as_file["message"]) == ("fail", "/char is a char, expected a file")
    assert one(tree, "file", path="/char", contains="x")["status"] == "error"  # content needs a regular file


def test_dangling_link_follows_the_follow_rule_and_never_errors(tree: Path) -> None:
    gone = one(tree, "file", path="/dangling")
    assert gone["status"] == "fail"
    assert gone["message"] == ("/dangling is a dangling symlink (to /no/such/file; follow: true judges what it "
                               "points to)")
    assert (gone["evidence"]["exists"], gone["evidence"]["link_target"]) == (False, "/no/such/file")
    assert status(tree, "file", path="/dangling", exists=False) == "pass"  # nothing is there to follow to
    assert status(tree, "file", path="/dangling", exists=False, follow=False) == "fail"  # the link is there
    assert status(tree, "file", path="/dangling", follow=False) == "pass"
    assert status(tree, "file", path="/dangling", kind="symlink") == "pass"  # kind: symlink judges the link
    assert status(tree, "file", path="/dangling", target="/no/such/file") == "pass"
    assert status(tree, "file", path="/loop", exists=False) == "pass"  # a loop of links: nothing to follow to
    assert status(tree, "file", path="/loop", kind="symlink") == "pass"


def test_symlink_target_is_the_links_own_text(tree: Path) -> None:
    assert status(tree, "file", path="/link", target="etc/real.conf") == "pass"
    wrong = one(tree, "file", path="/link", target="/etc/real.conf")
    assert (wrong["status"], wrong["message"]) == ("fail", "/link links to etc/real.conf, expected /etc/real.conf")
    not_a_link = one(tree, "file", path="/etc/real.conf", target="/x")
    assert not_a_link["message"] == "/etc/real.conf is not a symlink, expected one to /x"
    assert one(tree, "file", path="/link", kind="symlink", follow=True)["status"] == "error"


def test_owner_and_group_by_name_or_id(tree: Path) -> None:
    uid, gid = os.getuid(), os.getgid()
    conf = one(tree, "file", path="/etc/real.conf", owner="1234", group="2000")
    assert conf["status"] == "pass", conf["message"]
    assert (conf["evidence"]["uid"], conf["evidence"]["owner"]) == (uid, "root" if uid == 0 else "1234")
    assert status(tree, "file", path="/etc/real.conf", owner=uid, group=gid) == "pass"
    assert status(tree, "file", path="/etc/real.conf", owner=str(uid), group=str(gid)) == "pass"
    # a digit string that is a name means the name: user "1234" has this uid, not uid 1234
    assert status(tree, "file", path="/etc/real.conf", owner=uid + 1) == "fail"
    missing = one(tree, "file", path="/etc/real.conf", owner="nobody-here")
    assert missing["status"] == "fail"
    assert missing["message"].endswith("expected nobody-here (no such name in /etc/passwd)")


@needs_root
def test_an_orphan_gid_is_judged_by_its_number(tree: Path) -> None:
    orphan = tree / "etc" / "orphan"
    orphan.write_text("")
    os.chown(orphan, 4242, 4343)
    result = one(tree, "file", path="/etc/orphan", owner=4242, group=4343)
    assert result["status"] == "pass", result["message"]
    assert (result["evidence"]["owner"], result["evidence"]["group"]) == (None, None)
    named = one(tree, "file", path="/etc/orphan", group="root")
    assert (named["status"], named["message"]) == ("fail", "/etc/orphan group is 4343, expected root (0)")


def test_an_absolute_link_stays_inside_the_sandbox_root(tree: Path) -> None:
    result = one(tree, "file", path="/abs-link", contains="x = 1")
    assert result["status"] == "pass", result["message"]
    (tree / "escape").symlink_to("/../../../etc/real.conf")  # ".." stops at the sandbox root
    assert status(tree, "file", path="/escape", contains="x = 1") == "pass"


def test_file_schema_takes_the_new_fields() -> None:
    validator = jsonschema.Draft202012Validator(CHECK_TYPES["file"])
    for good in ({"path": "/x", "kind": "fifo"}, {"path": "/x", "kind": "symlink", "target": "/y", "follow": False},
                 {"path": "/x", "owner": "www-data", "group": 33}, {"path": "/x", "owner": "1000"}):
        validator.validate(good)
    for bad in ({"path": "/x", "kind": "symlink", "follow": True}, {"path": "/x", "kind": "pipe"},
                {"path": "/x", "owner": -1}, {"path": "/x", "group": "a b"}, {"path": "/x", "follow": "yes"}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)


# --- process --------------------------------------------------------------------------------------

@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def spawn(started: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv)
    started.append(proc)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/exe").exists() and time.monotonic() < deadline:  # until it has exec'd
        if os.path.realpath(f"/proc/{proc.pid}/exe") == os.path.realpath(argv[0]):
            break
        time.sleep(0.01)
    return proc


def test_an_argument_is_not_a_process_name(tmp_path: Path, spawned: list[subprocess.Popen[bytes]]) -> None:
    """``flock /x/locks/nginx sleep`` is not nginx: argv[1]'s basename never names a process."""
    lock = tmp_path / "locks" / "nginx"
    lock.parent.mkdir()
    lock.write_text("import time\ntime.sleep(60)\n")
    holder = spawn(spawned, [sys.executable, str(lock)])
    named = one(Path("/"), "process", name="nginx")
    assert holder.pid not in named["evidence"]["running_pids"]
    by_cmdline = one(Path("/"), "process", cmdline=f"{tmp_path}/locks/nginx$")
    assert (by_cmdline["status"], by_cmdline["evidence"]["running_pids"]) == ("pass", [holder.pid])


def test_comm_exe_and_cmdline(tmp_path: Path, spawned: list[subprocess.Popen[bytes]]) -> None:
    name = f"labproc{os.getpid()}longname"  # longer than the kernel's 15-byte comm
    binary = tmp_path / name
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    proc = spawn(spawned, [str(binary), "60"])
    assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == name[:15]
    root = Path("/")
    for params in ({"comm": name[:15]}, {"comm": name}, {"exe": name}, {"exe": str(binary)}, {"name": name},
                   {"cmdline": f"{name} 60$"}, {"comm": name, "cmdline": " 60$"}):
        result = one(root, "process", **params)
        assert (result["status"], result["evidence"]["running_pids"]) == ("pass", [proc.pid]), params
    for params in ({"comm": "sleep"}, {"exe": "sleep"}, {"comm": name, "cmdline": " 61$"}, {"exe": "/bin/" + name}):
        assert proc.pid not in one(root, "process", **params)["evidence"]["running_pids"], params
    proc.kill()
    proc.wait()
    gone = one(root, "process", comm=name)
    assert (gone["status"], gone["message"]) == ("fail", f"{name} is not running")


def test_a_zombie_is_not_running(tmp_path: Path) -> None:
    name = f"labz{os.getpid()}"
    binary = tmp_path / name
    shutil.copy(shutil.which("true") or "/bin/true", binary)
    proc = subprocess.Popen([str(binary)])
    try:
        deadline = time.monotonic() + 10
        while b") Z " not in Path(f"/proc/{proc.pid}/stat").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == name  # still listed, as a zombie
        zombie = one(Path("/"), "process", comm=name)
        assert (zombie["status"], zombie["evidence"]["running_pids"]) == ("fail", [])
        assert status(Path("/"), "process", comm=name, running=False) == "pass"
    finally:
        proc.wait()


def test_a_pid_file_with_a_selector_checks_that_process(tmp_path: Path,
                                                        spawned: list[subprocess.Popen[bytes]]) -> None:
    proc = spawn(spawned, [shutil.which("sleep") or "/bin/sleep", "60"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "svc.pid").write_text(f"{proc.pid}\n")
    assert status(tmp_path, "process", pid_file="/run/svc.pid", comm="sleep") == "pass"
    reused = one(tmp_path, "process", pid_file="/run/svc.pid", comm="nginx")  # the pid now belongs to another
    assert (reused["status"], reused["message"]) == ("fail", "pid_file /run/svc.pid, comm nginx is not running")


def test_process_schema_and_broken_parameters() -> None:
    validator = jsonschema.Draft202012Validator(CHECK_TYPES["process"])
    for good in ({"comm": "nginx"}, {"exe": "/usr/sbin/nginx"}, {"cmdline": "nginx: master"}, {"name": "x"},
                 {"pid_file": "/run/x.pid", "comm": "x", "running": False}):
        validator.validate(good)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"running": True})
    assert one(Path("/"), "process", cmdline="(")["status"] == "error"
    assert one(Path("/"), "process", running=True)["status"] == "error"


# --- sysctl ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "parts"), [
    ("net.ipv4.ip_forward", ["net", "ipv4", "ip_forward"]),
    ("net/ipv4/ip_forward", ["net", "ipv4", "ip_forward"]),
    ("net/ipv4/conf/eth0.1/forwarding", ["net", "ipv4", "conf", "eth0.1", "forwarding"]),
    ("net.ipv4.conf.eth0/1.forwarding", ["net", "ipv4", "conf", "eth0.1", "forwarding"]),  # sysctl.d(5)
    ("net.ipv4.conf.br0/10/2.rp_filter", ["net", "ipv4", "conf", "br0.10.2", "rp_filter"]),
    ("kernel", ["kernel"]),
])
def test_sysctl_key_forms(key: str, parts: list[str]) -> None:
    assert runner.sysctl_parts(key) == parts


def test_sysctl_dotted_interface_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = tmp_path / "proc"
    (proc / "sys" / "net" / "ipv4" / "conf" / "eth0.1").mkdir(parents=True)
    (proc / "sys" / "net" / "ipv4" / "conf" / "eth0.1" / "forwarding").write_text("1\n")
    monkeypatch.setattr(runner, "PROC", str(proc))
    for key in ("net/ipv4/conf/eth0.1/forwarding", "net.ipv4.conf.eth0/1.forwarding"):
        result = one(tmp_path, "sysctl", key=key, value=1)
        assert (result["status"], result["evidence"]["path"]) == \
            ("pass", "/proc/sys/net/ipv4/conf/eth0.1/forwarding"), key
    assert one(tmp_path, "sysctl", key="net.ipv4.conf.eth0.1.forwarding", value=1)["status"] == "fail"


# --- package versions -----------------------------------------------------------------------------

@pytest.mark.parametrize(("version", "constraint", "ok"), [
    ("1:2.0-1", ">=3", True),  # the epoch wins, as dpkg --compare-versions 1:2.0-1 ge 3 says
    ("1:2.0-1", "<3", False),
    ("1:2.0-1", ">=1:2.0, <1:3", True),
    ("2.0~rc1-1", ">=2.0", False),  # a tilde pre-release is below the release
    ("2.0~rc1-1", ">=2.0~", True),
    ("2.0-1", "==2.0", False),  # an omitted revision is empty, not "any"
    ("2.0", "==2.0-0", True),  # ... and an empty revision orders like 0
    ("2.0-1", "~=1.4", False),
    ("1.9-3", "~=1.4", True),
    ("2.0~rc1-1", "~=1.4", False),  # no pre-release of the next major is compatible
    ("1:1.5-1", "~=1:1.4", True),
])
def test_dpkg_constraints_use_the_full_version(version: str, constraint: str, ok: bool) -> None:
    assert runner.satisfies(version, constraint, runner.dpkg_compare, tilde=True) is ok


@pytest.mark.parametrize(("a", "b", "order"), [
    ("1.0-1", "1.0", 1),  # an absent release is empty: below any release, as rpm.vercmp says
    ("1.0", "1.0-0", -1),
    ("1.0-2", "1.0-10", -1),
    ("1:1.0", "2.0", 1),
    ("0:1.0-1", "1.0-1", 0),
    ("1.0~rc1-1", "1.0-1", -1),
    ("1.0^20230101-1", "1.0-1", 1),
])
def test_rpm_full_order(a: str, b: str, order: int) -> None:
    assert runner.rpm_compare(a, b) == order
    assert runner.rpm_compare(b, a) == -order


@pytest.mark.skipif(shutil.which("rpm") is None, reason="needs rpm on PATH to confirm rpm's order: "
                    "apt-get install rpm (Debian), or run on an rpm-based host")
def test_rpm_order_agrees_with_rpm() -> None:
    pairs = [("1.0-1", "1.0"), ("1.0-2", "1.0-10"), ("1:1.0", "2.0"), ("1.0~rc1-1", "1.0-1"), ("2.10", "2.9"),
             ("1.0a", "1.0.1"), ("1.0^git1", "1.0"), ("1.0^git1", "1.0.1"), ("1.01", "1.1"), ("el9", "el10"),
             ("1.0-1.el9", "1.0-1.el10"), ("0:1.0", "1.0"), ("1.0_1", "1.0.1"), ("1.0~~", "1.0~"),
             ("1.0", "1.0-0"), ("2:1.0-1", "1:9.9-9"), ("1.0-1~rc", "1.0-1"), ("1.0a-1", "1.0-1")]
    script = "; ".join(f"print(rpm.vercmp('{a}', '{b}') .. ' ')" for a, b in pairs)
    out = subprocess.run(["rpm", "--eval", f"%{{lua: {script}}}"], capture_output=True, text=True, check=True).stdout
    assert [runner.rpm_compare(a, b) for a, b in pairs] == [int(line) for line in out.split()]


# --- listening: IPV6_V6ONLY ------------------------------------------------------------------------

def listener(v6only: bool, kind: socket.SocketKind = socket.SOCK_STREAM) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    sock.bind(("::", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


needs_ipv6 = pytest.mark.skipif(not socket.has_ipv6 or not os.path.exists("/proc/net/tcp6"),
                                reason="needs IPv6 on this host (a kernel with /proc/net/tcp6)")


@needs_ipv6
@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_v6only_from_the_sockets_own_flag(kind: socket.SocketKind) -> None:
    protocol = "tcp" if kind == socket.SOCK_STREAM else "udp"
    with listener(True, kind) as only6, listener(False, kind) as dual:
        port6, port_dual = only6.getsockname()[1], dual.getsockname()[1]
        refused = one(Path("/"), "listening", port=port6, address="127.0.0.1", protocol=protocol)
        assert refused["status"] == "fail"
        assert refused["evidence"]["on_port"] == [f"[::]:{port6} (v6only)"]
        assert refused["evidence"]["v6only_source"] == "sock_diag (the socket's own IPV6_V6ONLY)"
        assert status(Path("/"), "listening", port=port6, address="::1", protocol=protocol) == "pass"
        assert status(Path("/"), "listening", port=port6, protocol=protocol) == "fail"  # not on all addresses
        assert status(Path("/"), "listening", port=port_dual, address="127.0.0.1", protocol=protocol) == "pass"
        assert status(Path("/"), "listening", port=port_dual, protocol=protocol) == "pass"


@needs_ipv6
def test_port_with_a_host_needs_a_socket_that_serves_it() -> None:
    with listener(True) as only6, socket.socket() as loopback:
        loopback.bind(("127.0.0.1", 0))
        loopback.listen()
        port6, port4 = only6.getsockname()[1], loopback.getsockname()[1]
        assert status(Path("/"), "port", port=port6) == "pass"  # any address
        refused = one(Path("/"), "port", port=port6, host="127.0.0.1")
        assert refused["status"] == "fail"
        assert refused["evidence"]["method"] == "/proc/net/tcp, a socket covering 127.0.0.1"
        assert status(Path("/"), "port", port=port6, host="::1") == "pass"
        assert status(Path("/"), "port", port=port4, host="::1") == "fail"
        by_name = one(Path("/"), "port", port=port4, host="localhost")
        assert (by_name["status"], by_name["evidence"]["method"]) == ("pass", "connect")


@needs_ipv6
def test_without_sock_diag_a_connect_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "v6only_flags", lambda protocol: None)
    with listener(True) as only6, listener(False) as dual:
        refused = one(Path("/"), "listening", port=only6.getsockname()[1], address="127.0.0.1")
        assert refused["status"] == "fail"
        assert refused["evidence"]["v6only_source"] == f"connect() to 127.0.0.1:{only6.getsockname()[1]}"
        assert status(Path("/"), "listening", port=dual.getsockname()[1], address="127.0.0.1") == "pass"


def test_without_sock_diag_or_connect_the_system_default_decides(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "sys" / "net" / "ipv6").mkdir(parents=True)
    (proc / "sys" / "net" / "ipv6" / "bindv6only").write_text("1\n")
    (proc / "net" / "udp").write_text("  sl  local_address\n")
    (proc / "net" / "udp6").write_text(
        "  sl  local_address\n"
        "   0: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 "
        "00:00000000 00000000     0        0 777 2 0000000000000000 0\n")
    monkeypatch.setattr(runner, "PROC", str(proc))
    monkeypatch.setattr(runner, "v6only_flags", lambda protocol: None)
    result = one(tmp_path, "listening", port=5353, protocol="udp", address="127.0.0.1")
    assert result["status"] == "fail"
    assert result["evidence"]["v6only_source"].startswith("/proc/sys/net/ipv6/bindv6only")
    (proc / "sys" / "net" / "ipv6" / "bindv6only").write_text("0\n")
    assert status(tmp_path, "listening", port=5353, protocol="udp", address="127.0.0.1") == "pass"


# --- process and mount: what ps and mountpoint(1) see ---------------------------------------------

def test_a_kernel_threads_command_line_is_its_bracketed_comm() -> None:
    """pgrep -f and ps -o args show a process without arguments (a kernel thread) as [comm]."""
    assert runner.command_line({"argv": [], "comm": b"kthreadd"}) == "[kthreadd]"
    assert runner.command_line({"argv": ["sleep", "60"], "comm": b"sleep"}) == "sleep 60"


def test_a_mount_point_reached_through_a_symlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "link").symlink_to("/data")  # absolute: inside the sandbox root
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mounts").write_text(f"tmpfs {root}/data tmpfs rw,size=1024k 0 0\n")
    monkeypatch.setattr(runner, "PROC", str(proc))
    result = one(root, "mount", path="/link", fstype="tmpfs")
    assert result["status"] == "pass", result["message"]
    assert status(root, "mount", path="/data/", options=["size=1024k"]) == "pass"
