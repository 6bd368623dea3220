"""Every Linux check type, judged by the host's own tools, over the local transport and over SSH.

Each case is a lab check and a shell oracle run on the same host (``stat``, ``readlink``, ``pgrep``,
``pidof``, ``sysctl -n``, ``dpkg-query`` and ``dpkg --compare-versions``, ``systemctl is-enabled``,
``service ... status``, ``id``, ``getent``, ``findmnt``, ``df``, ``mountpoint``, ``ss`` and a real
``connect()``): the lab must agree with the oracle in every case. pytest-testinfra's answer to the
same question is recorded beside it; where it differs from the host, the case says why (the
README's check-type table lists these), and any other disagreement fails the test.

Targets: ``local`` is this machine (the local transport, root ``/``); ``ssh`` is a namespace
sandbox reached over SSH as root (needs root and sshd, as test_namespace.py). Cases that need
root to set up (devices, mounts, packages, services, owners) skip without it; cases that change
the system's account files or dpkg architectures run in the sandbox only, whose writes are thrown
away; on this machine, packages go into a local sandbox root (``dpkg --root``, read by the lab as it
reads a local sandbox's), and as root the service and sysctl cases add and remove SysV scripts and a
veth pair. ``pytest -s`` prints every verdict; the JSON record is written to the test's tmp directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra  # a declared test dependency (pyproject's test extra)

from lab.checks.testinfra_suite import connection_for
from lab.model import SandboxSpec
from lab.sandboxes.namespace.provider import NamespaceProvider
from lab.transports.local import LocalTransport
from lab.transports.ssh import SSHTransport
from tests.integration.linux_differential import Case, Target, Verdict, build_deb, problems, report, table
from tests.support.labfiles import require_root_and_sshd

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux checks need a Linux host"),
]

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="sets up devices, mounts, packages or services as root: run as "
                                "root, e.g. sudo .venv/bin/pytest tests/integration/test_linux_checks_differential.py")
KIND_TEXT = {"file": "regular file|regular empty file", "directory": "directory", "symlink": "symbolic link",
             "socket": "socket", "fifo": "fifo", "char": "character special file", "block": "block special file"}
KIND_TESTINFRA = {"file": "is_file", "directory": "is_directory", "symlink": "is_symlink", "socket": "is_socket",
                  "fifo": "is_pipe"}  # testinfra has no question for char and block devices
q = shlex.quote


# --- targets ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["local", "ssh"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """This machine through the local transport, or a namespace sandbox over SSH."""
    if request.param == "local":
        with LocalTransport("localhost", {}) as transport:
            made = Target("local", transport, testinfra.get_host("local://"), can_edit_system=False)
            yield made
        finish(made, tmp_path_factory)
        return
    require_root_and_sshd()  # the ssh target is a namespace sandbox
    state = tmp_path_factory.mktemp("differential-ns")
    provider = NamespaceProvider(state)
    spec = SandboxSpec("diff-sbx", "debian-12", "namespace", {})
    handle = provider.reset(spec)
    control = Path(tempfile.mkdtemp(prefix="lab-cm-"))  # a unix socket path has at most 107 bytes
    config = state / "ssh_config"
    connection = connection_for("ssh", spec.name, handle.facts, "/")
    assert connection.ssh_config is not None
    config.write_text(connection.ssh_config.replace("%%CONTROL%%", str(control)))
    try:
        with SSHTransport(spec.name, handle.facts) as transport:
            host = testinfra.get_host(connection.hosts, ssh_config=str(config))
            made = Target("ssh", transport, host, can_edit_system=True)
            yield made
        finish(made, tmp_path_factory)
    finally:
        subprocess.run(["ssh", "-F", str(config), "-O", "exit", spec.name], capture_output=True, check=False)
        provider.destroy(spec)
        shutil.rmtree(control, ignore_errors=True)


def finish(target: Target, tmp_path_factory: pytest.TempPathFactory) -> None:
    print("\n" + table(target.name, target.verdicts))
    report(tmp_path_factory.mktemp("differential") / f"{target.name}.json", [target])


@pytest.fixture
def work(target: Target) -> Iterator[str]:
    """A scratch directory on the target, with a tag for unique names; processes whose pids the
    setup wrote to ``<work>/pids`` are killed afterwards."""
    tag = f"{target.name[0]}{secrets.token_hex(2)}"
    path = f"/var/tmp/lab-diff-{tag}"
    target.must(f"mkdir -p {path} && : > {path}/pids")
    yield path
    target.sh(f"for p in $(cat {path}/pids); do kill -9 $p 2>/dev/null; done; "
              f"for m in $(grep -o ' {path}[^ ]*' /proc/mounts | sort -r); do umount \"$(printf '%b' $m)\"; done; "
              f"rm -rf {path}")


def tag_of(work: str) -> str:
    return work.rsplit("-", 1)[1]


def judge(target: Target, cases: list[Case], root: str = "/") -> list[Verdict]:
    verdicts = target.judge(cases, root)
    found = problems(verdicts)
    assert not found, "\n".join(found)
    return verdicts


# --- file -----------------------------------------------------------------------------------------

FILE_SETUP = """
set -e
cd {w}
mkdir d && printf 'hello lab\\n' > f && chmod 640 f && : > e
ln -s f l && ln -s {w}/f al && ln -s {w}/none dl && ln -s d ld && mkfifo p && ln -s p lp && ln -s loop loop
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' s
"""
FILE_ROOT_SETUP = "cd {w} && mknod c c 1 3 && mknod b b 7 200 && : > o && chown 4242:4343 o"


def kind_case(w: str, name: str, kind: str, follow: bool | None) -> Case:
    path = f"{w}/{name}"
    params: dict[str, Any] = {"path": path, "kind": kind}
    if follow is not None:
        params["follow"] = follow
    follows = follow if follow is not None else kind != "symlink"
    pattern = "|".join(q(text) for text in KIND_TEXT[kind].split("|"))
    oracle = f'case "$(stat {"-L " if follows else ""}-c %F {q(path)})" in {pattern}) exit 0;; esac; exit 1'
    asked = KIND_TESTINFRA.get(kind) if follow is None else None
    return Case(f"file {name} kind={kind}{'' if follow is None else f' follow={follow}'}", "file", params, oracle,
                None if asked is None else (lambda h, p=path, a=asked: getattr(h.file(p), a)))


def file_cases(w: str, names: list[str]) -> list[Case]:
    cases = [kind_case(w, name, kind, None) for name in names for kind in KIND_TEXT]
    cases += [kind_case(w, name, kind, False) for name in ("l", "dl", "ld", "lp", "loop")
              for kind in ("file", "directory", "fifo", "symlink")]
    for name in names:
        path = f"{w}/{name}"
        cases += [
            Case(f"file {name} exists", "file", {"path": path}, f"test -e {q(path)}",
                 lambda h, p=path: h.file(p).exists),
            Case(f"file {name} absent", "file", {"path": path, "exists": False}, f"! test -e {q(path)}",
                 lambda h, p=path: not h.file(p).exists),
            Case(f"file {name} exists follow=false", "file", {"path": path, "follow": False},
                 f"test -e {q(path)} || test -L {q(path)}"),
            Case(f"file {name} absent follow=false", "file", {"path": path, "exists": False, "follow": False},
                 f"! test -e {q(path)} && ! test -L {q(path)}"),
        ]
    f, link = f"{w}/f", f"{w}/l"
    digest = hashlib.sha256(b"hello lab\n").hexdigest()
    cases += [
        Case("file f mode 0640", "file", {"path": f, "mode": "0640"}, f'[ "$(stat -L -c %a {f})" = 640 ]',
             lambda h: h.file(f).mode == 0o640),
        Case("file f mode 0644", "file", {"path": f, "mode": "0644"}, f'[ "$(stat -L -c %a {f})" = 644 ]',
             lambda h: h.file(f).mode == 0o644),
        Case("file l mode 0640 (followed)", "file", {"path": link, "mode": "0640"},
             f'[ "$(stat -L -c %a {link})" = 640 ]', lambda h: h.file(link).mode == 0o640),
        Case("file l mode 0777 follow=false", "file", {"path": link, "mode": "0777", "follow": False},
             f'[ "$(stat -c %a {link})" = 777 ]'),
        Case("file f owner root", "file", {"path": f, "owner": "root"}, f'[ "$(stat -L -c %U {f})" = root ]',
             lambda h: h.file(f).user == "root"),
        Case("file f owner 0", "file", {"path": f, "owner": 0}, f'[ "$(stat -L -c %u {f})" = 0 ]',
             lambda h: h.file(f).uid == 0),
        Case("file f owner nobody", "file", {"path": f, "owner": "nobody"}, f'[ "$(stat -L -c %U {f})" = nobody ]',
             lambda h: h.file(f).user == "nobody"),
        Case("file f group root", "file", {"path": f, "group": "root"}, f'[ "$(stat -L -c %G {f})" = root ]',
             lambda h: h.file(f).group == "root"),
        Case("file f group 0", "file", {"path": f, "group": 0}, f'[ "$(stat -L -c %g {f})" = 0 ]',
             lambda h: h.file(f).gid == 0),
        Case("file f group nogroup", "file", {"path": f, "group": "nogroup"},
             f'[ "$(stat -L -c %G {f})" = nogroup ]', lambda h: h.file(f).group == "nogroup"),
        Case("file l target f", "file", {"path": link, "target": "f"}, f'[ "$(readlink {link})" = f ]',
             lambda h: h.file(link).linked_to == "f",
             differs="File.linked_to is `readlink -f` (the final absolute path), not the link's own text"),
        Case("file l target absolute", "file", {"path": link, "target": f}, f'[ "$(readlink {link})" = {f} ]',
             lambda h: h.file(link).linked_to == f,
             differs="File.linked_to is `readlink -f` (the final absolute path), not the link's own text"),
        Case("file al target absolute", "file", {"path": f"{w}/al", "target": f}, f'[ "$(readlink {w}/al)" = {f} ]',
             lambda h: h.file(f"{w}/al").linked_to == f),
        Case("file dl target", "file", {"path": f"{w}/dl", "target": f"{w}/none"},
             f'[ "$(readlink {w}/dl)" = {w}/none ]', lambda h: h.file(f"{w}/dl").linked_to == f"{w}/none"),
        Case("file f not a link, target", "file", {"path": f, "target": f}, f"test -L {f}"),
        Case("file f contains", "file", {"path": f, "contains": "hello"}, f"grep -qF hello {f}",
             lambda h: h.file(f).contains("hello")),
        Case("file l contains (followed)", "file", {"path": link, "contains": "hello"}, f"grep -qF hello {link}",
             lambda h: h.file(link).contains("hello")),
        Case("file f contains absent text", "file", {"path": f, "contains": "bye"}, f"grep -qF bye {f}",
             lambda h: h.file(f).contains("bye")),
        Case("file f sha256", "file", {"path": f, "sha256": digest},
             f'[ "$(sha256sum < {f} | cut -d" " -f1)" = {digest} ]', lambda h: h.file(f).sha256sum == digest),
    ]
    return cases


def test_file(target: Target, work: str) -> None:
    target.must(FILE_SETUP.format(w=work))
    names = ["f", "e", "d", "l", "al", "dl", "ld", "p", "lp", "s", "loop"]
    cases = file_cases(work, names)
    if ROOT:
        target.must(FILE_ROOT_SETUP.format(w=work))
        cases += [kind_case(work, name, kind, None) for name in ("c", "b") for kind in KIND_TEXT]
        o = f"{work}/o"
        cases += [
            Case("file c exists", "file", {"path": f"{work}/c"}, f"test -e {work}/c"),
            Case("file orphan owner 4242", "file", {"path": o, "owner": 4242}, f'[ "$(stat -c %u {o})" = 4242 ]',
                 lambda h: h.file(o).uid == 4242),
            Case("file orphan owner '4242' (no such name: an id)", "file", {"path": o, "owner": "4242"},
                 f'[ "$(stat -c %u {o})" = 4242 ]', lambda h: h.file(o).uid == 4242),
            Case("file orphan group 4343", "file", {"path": o, "group": 4343}, f'[ "$(stat -c %g {o})" = 4343 ]',
                 lambda h: h.file(o).gid == 4343),
            Case("file orphan group root", "file", {"path": o, "group": "root"}, f'[ "$(stat -c %G {o})" = root ]',
                 lambda h: h.file(o).group == "root"),
        ]
    verdicts = judge(target, cases)
    by_id = {v.case.id: v for v in verdicts}
    # the classes an earlier runner got wrong
    assert by_id["file p kind=file"].lab.message == f"{work}/p is a fifo, expected a file"
    assert by_id["file dl exists"].lab.status.value == "fail"  # a fail, never an error
    assert by_id["file dl absent"].lab.status.value == "pass"
    if ROOT:
        assert by_id["file c kind=file"].lab.status.value == "fail"


# --- process --------------------------------------------------------------------------------------

PROCESS_SETUP = """
set -e
cd {w}
cp "$(command -v sleep)" {long} && ln -s {w}/{long} {alias}
setsid -f {w}/{long} 600 </dev/null >/dev/null 2>&1
setsid -f {w}/{alias} 601 </dev/null >/dev/null 2>&1
mkdir locks && setsid -f flock {w}/locks/{ngx} sleep 602 </dev/null >/dev/null 2>&1
printf 'import time\\ntime.sleep(603)\\n' > {script}
setsid -f python3 {w}/{script} </dev/null >/dev/null 2>&1
cp /bin/true {zombie}
setsid -f python3 -c 'import os, sys, time
if os.fork() == 0:
    os.execv(sys.argv[1], [sys.argv[1]])
time.sleep(604)' {w}/{zombie} </dev/null >/dev/null 2>&1
ready() {{
  pgrep -x -r Z {zombie} >/dev/null && pgrep -f 'locks/{ngx} sleep 602' >/dev/null && pgrep -x {long15} >/dev/null \\
    && pgrep -x {alias} >/dev/null && pgrep -f 'python3 {w}/{script}' >/dev/null \\
    && [ -n "$(pgrep -P "$(pgrep -f 'locks/{ngx} sleep 602')")" ]
}}
for n in $(seq 300); do ready && break; sleep 0.1; done
ready || {{ echo "the processes of the differential did not start" >&2; exit 1; }}
{{ pgrep -f {w}; for p in $(pgrep -f {w}); do pgrep -P $p || true; done; }} > pids
"""


def process_cases(w: str, tag: str) -> list[Case]:
    long = f"labdiff{tag}longcommname"  # longer than the kernel's 15-byte comm
    alias, ngx, script, zombie = f"labal{tag}", f"labngx{tag}", f"labscr{tag}", f"labzmb{tag}"

    def comm(name: str) -> Any:
        return lambda h: bool(h.process.filter(comm=name))

    def args(regex: str) -> Any:
        import re
        return lambda h: any(re.search(regex, p.args) for p in h.process.filter())

    exe = ("for p in /proc/[0-9]*; do [ \"$(basename \"$(readlink $p/exe 2>/dev/null)\")\" = {} ] && exit 0; "
           "done; exit 1")
    return [
        Case("process comm, long name", "process", {"comm": long}, f"pgrep -x {long[:15]}", comm(long),
             differs="Process.filter(comm=...) compares the whole name with ps's 15-byte comm: never equal"),
        Case("process comm, first 15 bytes", "process", {"comm": long[:15]}, f"pgrep -x {long[:15]}",
             comm(long[:15])),
        Case("process name, long name", "process", {"name": long}, f"pidof {long}", comm(long),
             differs="Process.filter(comm=...) compares the whole name with ps's 15-byte comm: never equal"),
        Case("process exe, long name", "process", {"exe": long}, exe.format(long)),
        Case("process exe, full path", "process", {"exe": f"{w}/{long}"},
             f"for p in /proc/[0-9]*; do [ \"$(readlink $p/exe 2>/dev/null)\" = {w}/{long} ] && exit 0; done; exit 1"),
        Case("process comm of a symlinked program", "process", {"comm": alias}, f"pgrep -x {alias}", comm(alias)),
        Case("process exe of a symlinked program", "process", {"exe": alias}, exe.format(alias)),
        Case("process name of a symlinked program", "process", {"name": alias}, f"pidof {alias}", comm(alias)),
        Case("process argv[1] is not a name (flock ... nginx)", "process", {"name": ngx}, f"pidof {ngx}", comm(ngx)),
        Case("process comm flock and cmdline", "process", {"comm": "flock", "cmdline": f"locks/{ngx} sleep"},
             f"for p in $(pgrep -x flock); do tr '\\0' ' ' < /proc/$p/cmdline | grep -q 'locks/{ngx} sleep' "
             "&& exit 0; done; exit 1"),
        Case("process cmdline of the lock", "process", {"cmdline": f"locks/{ngx} sleep 602"},
             f"pgrep -f 'locks/{ngx} sleep 602'", args(f"locks/{ngx} sleep 602")),
        Case("process script run by its interpreter, by name", "process", {"name": script}, f"pidof {script}",
             comm(script)),
        Case("process script run by its interpreter, by cmdline", "process", {"cmdline": f"python3 {w}/{script}$"},
             f"pgrep -f 'python3 {w}/{script}$'", args(f"python3 {w}/{script}$")),
        Case("process zombie is not running", "process", {"comm": zombie},
             f"pgrep -x -r D,R,S,T,I {zombie}", comm(zombie),
             differs="Process.filter lists a zombie (ps shows it, <defunct>) as a process"),
        Case("process zombie running false", "process", {"comm": zombie, "running": False},
             f"! pgrep -x -r D,R,S,T,I {zombie}", lambda h: not h.process.filter(comm=zombie),
             differs="Process.filter lists a zombie (ps shows it, <defunct>) as a process"),
        Case("process zombie by name", "process", {"name": zombie}, f"pidof {zombie}"),
        Case("process cmdline of a kernel thread", "process", {"cmdline": r"^\[kthreadd\]$"},
             "pgrep -f '^\\[kthreadd\\]$'", args(r"^\[kthreadd\]$")),
        Case("process none by comm", "process", {"comm": f"labno{tag}"}, f"pgrep -x labno{tag}", comm(f"labno{tag}")),
        Case("process none running false", "process", {"comm": f"labno{tag}", "running": False},
             f"! pgrep -x labno{tag}", lambda h: not h.process.filter(comm=f"labno{tag}")),
    ]


def test_process(target: Target, work: str) -> None:
    tag = tag_of(work)
    names = {"long": f"labdiff{tag}longcommname", "alias": f"labal{tag}", "ngx": f"labngx{tag}",
             "script": f"labscr{tag}", "zombie": f"labzmb{tag}"}
    names["long15"] = names["long"][:15]
    target.must(PROCESS_SETUP.format(w=work, **names))
    verdicts = judge(target, process_cases(work, tag))
    by_id = {v.case.id: v for v in verdicts}
    assert by_id["process argv[1] is not a name (flock ... nginx)"].lab.status.value == "fail"
    assert by_id["process cmdline of the lock"].lab.status.value == "pass"  # the lock holder does run
    target.must(f"pgrep -x -r Z {names['zombie']}")  # and the zombie is there, as a zombie
    assert by_id["process comm, long name"].lab.status.value == "pass"
    assert by_id["process zombie is not running"].lab.status.value == "fail"


# --- sysctl ---------------------------------------------------------------------------------------

def sysctl_cases(values: dict[str, str], interface: str | None) -> list[Case]:
    def same(key: str, value: Any) -> Any:
        return lambda h: h.sysctl(key) == value

    cases = []
    for key, raw in values.items():
        value: int | str = int(raw) if raw.lstrip("-").isdigit() else " ".join(raw.split())
        wrong: int | str = value + 1 if isinstance(value, int) else f"{value}x"
        oracle = '[ "$(echo $(sysctl -n {k}))" = {v} ]'
        differs = "Sysctl returns the raw text (a tab between numbers), compared as is" if "\t" in raw else ""
        cases += [Case(f"sysctl {key}", "sysctl", {"key": key, "value": value}, oracle.format(k=key, v=q(str(value))),
                       same(key, value), differs=differs),
                  Case(f"sysctl {key} other value", "sysctl", {"key": key, "value": wrong},
                       oracle.format(k=key, v=q(str(wrong))), same(key, wrong))]
    cases += [
        Case("sysctl net/ipv4/ip_forward (slashes)", "sysctl", {"key": "net/ipv4/ip_forward",
                                                               "value": int(values["net.ipv4.ip_forward"])},
             f'[ "$(sysctl -n net/ipv4/ip_forward)" = {values["net.ipv4.ip_forward"]} ]',
             same("net/ipv4/ip_forward", int(values["net.ipv4.ip_forward"]))),
        Case("sysctl missing key", "sysctl", {"key": "lab.no_such_key", "value": 1}, "sysctl -n lab.no_such_key",
             same("lab.no_such_key", 1), differs="Sysctl raises (sysctl -n fails) instead of answering no"),
    ]
    if interface is not None:
        slash = f"net/ipv4/conf/{interface}/forwarding"
        dots = f"net.ipv4.conf.{interface.replace('.', '/')}.forwarding"
        plain = f"net.ipv4.conf.{interface}.forwarding"
        for key in (slash, dots, f"net.ipv6.conf.{interface.replace('.', '/')}.disable_ipv6"):
            cases += [Case(f"sysctl {key}", "sysctl", {"key": key, "value": 0}, f'[ "$(sysctl -n {key})" = 0 ]',
                           same(key, 0)),
                      Case(f"sysctl {key} is 1", "sysctl", {"key": key, "value": 1}, f'[ "$(sysctl -n {key})" = 1 ]',
                           same(key, 1))]
        cases.append(Case(f"sysctl {plain} (dots in a name need the other form)", "sysctl",
                          {"key": plain, "value": 0}, f'[ "$(sysctl -n {plain})" = 0 ]', same(plain, 0),
                          differs="Sysctl raises (sysctl -n fails) instead of answering no"))
    return cases


def test_sysctl(target: Target, work: str) -> None:
    keys = ["kernel.ostype", "net.ipv4.ip_forward", "net.ipv4.ip_local_port_range", "kernel.pid_max",
            "net.ipv4.tcp_rmem"]
    values = dict(zip(keys, target.must(f"sysctl -n {' '.join(keys)}").splitlines(), strict=True))
    interface = None
    if ROOT:  # an interface whose name has a dot (a VLAN's, eth0.5): its keys need the slash forms
        tag = tag_of(work)
        interface = f"lb{tag}.5"
        target.must(f"ip link add {interface} type veth peer name lc{tag}.6 && "
                    f"sysctl -qw net.ipv4.conf.{interface.replace('.', '/')}.forwarding=0")
    try:
        verdicts = judge(target, sysctl_cases(values, interface))
    finally:
        if interface is not None:
            target.sh(f"ip link del {interface}")
    if interface is not None:
        assert {v.case.id: v.lab.status.value for v in verdicts}[
            f"sysctl net.ipv4.conf.{interface.replace('.', '/')}.forwarding"] == "pass"


# --- package --------------------------------------------------------------------------------------

PACKAGES = {"epoch": "2:1.0-1", "tilde": "1.0~rc1-1", "rev": "1.0-1+b2", "native": "1.0.2"}
CONSTRAINTS = {
    "epoch": [">=1.0", "<2", ">=2:1.0", "==2:1.0-1", "==1.0-1", "<2:1.0-2", ">1:9", "<=2:1.0", ">=3, <2:2"],
    "tilde": [">=1.0", "<1.0", ">=1.0~rc1", ">1.0~", "==1.0~rc1-1", ">=1.0~rc1-1", "<1.0~rc2", "<1.0-0"],
    "rev": ["==1.0-1", ">1.0-1", "<1.0-1+b10", "==1.0", ">=1.0", "<=1.0-1+b2", "!=1.0-1+b2", ">1.0-1+b1~"],
    "native": ["==1.0.2", ">=1.0.2-0", "<1.0.10", ">1.0.2~", "==1.0.2-0", "<1.0.2+dfsg"],
}
INSTALLED = "{query} -W -f '${{db:Status-Abbrev}}\\n' {n} | grep -q '^[ih]i'"


def package_cases(tag: str, multi_arch: str | None, query: str = "dpkg-query") -> list[Case]:
    """``query`` reads the database the lab reads (``dpkg-query --admindir=...`` for a sandbox root,
    where testinfra, which asks the host's own dpkg, has no way to ask)."""
    ask = query == "dpkg-query"
    cases = []
    for kind, version in PACKAGES.items():
        name = f"labdiff-{kind}-{tag}"
        cases.append(Case(f"package {kind} {version} installed", "package", {"name": name},
                          INSTALLED.format(query=query, n=name),
                          (lambda h, n=name: h.package(n).is_installed) if ask else None))
        for constraint in CONSTRAINTS[kind]:
            clauses = " && ".join(
                f"dpkg --compare-versions \"$v\" {op} {q(ref)}"
                for op, ref in (clause_words(c) for c in constraint.split(",")))
            cases.append(Case(f"package {kind} {version} {constraint}", "package",
                              {"name": name, "version": constraint},
                              f"for v in $({query} -W -f '${{Version}}\\n' {name}); do {clauses} || exit 1; done"))
    unpacked, none = f"labdiff-unpacked-{tag}", f"labdiff-none-{tag}"
    cases += [Case("package unpacked only is not installed", "package", {"name": unpacked},
                   INSTALLED.format(query=query, n=unpacked),
                   (lambda h: h.package(unpacked).is_installed) if ask else None),
              Case("package unpacked only, installed false", "package", {"name": unpacked, "installed": False},
                   f"! {INSTALLED.format(query=query, n=unpacked)}",
                   (lambda h: not h.package(unpacked).is_installed) if ask else None),
              Case("package never heard of", "package", {"name": none}, INSTALLED.format(query=query, n=none),
                   (lambda h: h.package(none).is_installed) if ask else None)]
    if multi_arch is not None:
        name = f"labdiff-ma-{tag}"
        for qualified in (name, f"{name}:{multi_arch}", f"{name}:i386", f"{name}:armhf"):
            differs = "" if ":" in qualified else ("Package.is_installed compares dpkg-query's Status of every "
                                                   "instance run together: installed for two architectures is 'no'")
            cases.append(Case(f"package multi-arch {qualified}", "package", {"name": qualified},
                              INSTALLED.format(query=query, n=qualified),
                              lambda h, n=qualified: h.package(n).is_installed, differs=differs))
        for constraint in (">=1.0", "<1.0", "==1.0-3"):
            cases.append(Case(f"package multi-arch {name} {constraint}", "package",
                              {"name": name, "version": constraint},
                              f"for v in $(dpkg-query -W -f '${{Version}}\\n' {name}); do dpkg --compare-versions "
                              f"\"$v\" {' '.join(clause_words(constraint))} || exit 1; done"))
    return cases


def clause_words(clause: str) -> tuple[str, str]:
    """``>=1.0`` -> ("ge", "1.0"), dpkg --compare-versions's operator words."""
    clause = clause.strip()
    for op, word in ((">=", "ge"), ("<=", "le"), ("==", "eq"), ("!=", "ne"), (">", "gt"), ("<", "lt")):
        if clause.startswith(op):
            return word, clause[len(op):].strip()
    raise AssertionError(clause)


@needs_root
@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs a dpkg-based host (Debian or Ubuntu)")
def test_package(target: Target, work: str, tmp_path: Path) -> None:
    """In the sandbox, packages are installed for real; on this machine into a local sandbox root
    (``dpkg --root``), which the lab reads as it reads a local sandbox's, so that this machine's own
    dpkg database (which other tests compare) never changes."""
    tag = tag_of(work)
    root, dpkg, query = "/", "dpkg", "dpkg-query"
    if not target.can_edit_system:
        root = f"{work}/sbx"
        dpkg, query = f"dpkg --root={root}", f"dpkg-query --admindir={root}/var/lib/dpkg"
        target.must(f"mkdir -p {root}/var/lib/dpkg/updates {root}/var/lib/dpkg/info && "
                    f": > {root}/var/lib/dpkg/status")
    arch = target.must("dpkg --print-architecture").strip()
    debs = {f"labdiff-{kind}-{tag}": build_deb(tmp_path, f"labdiff-{kind}-{tag}", version, arch)
            for kind, version in PACKAGES.items()}
    debs[f"labdiff-unpacked-{tag}"] = build_deb(tmp_path, f"labdiff-unpacked-{tag}", "1.0", arch)
    multi_arch = None
    if target.can_edit_system:  # adds a foreign architecture: only where the writes are thrown away
        multi_arch = arch
        debs[f"labdiff-ma-{tag}"] = build_deb(tmp_path, f"labdiff-ma-{tag}", "1.0-3", arch, multi_arch=True)
        debs[f"labdiff-ma-{tag}.i386"] = build_deb(tmp_path / "i386", f"labdiff-ma-{tag}", "1.0-3", "i386",
                                                   multi_arch=True)
        target.must("dpkg --add-architecture i386")
    for name, data in debs.items():
        target.put(f"{work}/{name}.deb", data)
    installed = [n for n in debs if "unpacked" not in n]
    try:
        target.must(f"cd {work} && {dpkg} -i {' '.join(f'{n}.deb' for n in installed)} >/dev/null && "
                    f"{dpkg} --unpack labdiff-unpacked-{tag}.deb >/dev/null")
        verdicts = judge(target, package_cases(tag, multi_arch, query), root)
    finally:
        target.sh(f"{dpkg} -P {' '.join(sorted({n.split('.')[0] for n in debs}))} >/dev/null 2>&1")
    by_id = {v.case.id: v for v in verdicts}
    assert by_id["package epoch 2:1.0-1 <2"].lab.status.value == "fail"  # the epoch counts, as for dpkg
    assert by_id["package tilde 1.0~rc1-1 >=1.0"].lab.status.value == "fail"


# --- service --------------------------------------------------------------------------------------

INIT_SCRIPT = """#!/bin/sh
# A probe service of the lab's differential test: its LSB status is fixed.
case "$1" in
  status) exit {code} ;;
  *) echo "Usage: $0 status" >&2; exit 3 ;;
esac
"""


def service_cases(tag: str) -> list[Case]:
    cases = []
    for code in (0, 1, 2, 3):
        name = f"labsvc{code}{tag}"
        differs = "Service.is_running raises on LSB status 2 (only 0, 1, 3 and 8 are expected)" if code == 2 else ""
        cases += [Case(f"service LSB status {code} running", "service", {"name": name}, f"service {name} status",
                       lambda h, n=name: h.service(n).is_running, differs=differs),
                  Case(f"service LSB status {code} not running", "service", {"name": name, "running": False},
                       f"! service {name} status", lambda h, n=name: not h.service(n).is_running, differs=differs)]
    cases.append(Case("service LSB status 4 cannot be told", "service", {"name": f"labsvc4{tag}"},
                      f"service labsvc4{tag} status", error="LSB 4 = unknown"))
    masked = "Service.is_enabled falls back to the SysV start links when systemctl says masked"
    for name, what in ((f"labsvc0{tag}", "with start links"), (f"labsvc1{tag}", "without start links"),
                       (f"labsvcm{tag}", "masked, with start links")):
        differs = masked if name.startswith("labsvcm") else ""
        cases += [Case(f"service {what} enabled", "service", {"name": name, "enabled": True},
                       f"systemctl is-enabled {name}", lambda h, n=name: h.service(n).is_enabled, differs=differs),
                  Case(f"service {what} not enabled", "service", {"name": name, "enabled": False},
                       f"! systemctl is-enabled {name}", lambda h, n=name: not h.service(n).is_enabled,
                       differs=differs)]
    return cases


needs_sysv = pytest.mark.skipif(os.path.isdir("/run/systemd/system") or shutil.which("service") is None
                                or shutil.which("systemctl") is None,
                                reason="SysV probe services: needs service(8) and systemctl, without systemd as "
                                "PID 1 (a container, as CI's machine)")


@needs_root
@needs_sysv
def test_service(target: Target, work: str) -> None:
    tag = tag_of(work)
    names = [f"labsvc{c}{tag}" for c in (0, 1, 2, 3, 4)] + [f"labsvcm{tag}"]
    for code, name in zip((0, 1, 2, 3, 4, 0), names, strict=True):
        target.put(f"/etc/init.d/{name}", INIT_SCRIPT.format(code=code).encode(), 0o755)
    links = " ".join(f"/etc/rc{level}.d/S01{name}" for level in (2, 3, 4, 5) for name in (names[0], names[-1]))
    try:
        target.must(f"for l in {links}; do mkdir -p $(dirname $l); ln -s ../init.d/$(basename $l | cut -c4-) $l; done"
                    f" && mkdir -p /etc/systemd/system && ln -s /dev/null /etc/systemd/system/{names[-1]}.service")
        verdicts = judge(target, service_cases(tag))
    finally:
        target.sh(f"rm -f {links} /etc/systemd/system/{names[-1]}.service "
                  + " ".join(f"/etc/init.d/{n}" for n in names))
    by_id = {v.case.id: v for v in verdicts}
    assert by_id["service masked, with start links enabled"].lab.status.value == "fail"
    assert by_id["service LSB status 2 running"].lab.status.value == "fail"


# --- user and group -------------------------------------------------------------------------------

ORPHAN_GROUPS = "User.groups runs `id -Gn`, which fails for a user whose primary group has no name (an orphan gid)"


def account_cases(tag: str) -> list[Case]:
    user, group = f"labdu{tag}", f"labdg{tag}"
    in_groups = "id -nG {u} 2>/dev/null | tr ' ' '\\n' | grep -qx {g}"
    return [
        Case("user exists", "user", {"name": user}, f"getent passwd {user}", lambda h: h.user(user).exists),
        Case("user uid", "user", {"name": user, "uid": 4901}, f'[ "$(id -u {user})" = 4901 ]',
             lambda h: h.user(user).uid == 4901),
        Case("user orphan gid", "user", {"name": user, "gid": 4999}, f'[ "$(id -g {user})" = 4999 ]',
             lambda h: h.user(user).gid == 4999),
        Case("user orphan primary group by number", "user", {"name": user, "groups": ["4999"]},
             in_groups.format(u=user, g=4999), lambda h: "4999" in h.user(user).groups,
             differs=ORPHAN_GROUPS),
        Case("user supplementary group", "user", {"name": user, "groups": [group]}, in_groups.format(u=user, g=group),
             lambda h: group in h.user(user).groups,
             differs=ORPHAN_GROUPS),
        Case("user not in root", "user", {"name": user, "groups": ["root"]}, in_groups.format(u=user, g="root"),
             lambda h: "root" in h.user(user).groups,
             differs=ORPHAN_GROUPS),
        Case("user home and shell", "user", {"name": user, "home": "/home/labdu", "shell": "/bin/sh"},
             f'[ "$(getent passwd {user} | cut -d: -f6,7)" = /home/labdu:/bin/sh ]',
             lambda h: (h.user(user).home, h.user(user).shell) == ("/home/labdu", "/bin/sh")),
        Case("user numeric name exists", "user", {"name": "4902"}, "id -u -- 4902", lambda h: h.user("4902").exists),
        Case("user numeric name uid", "user", {"name": "4902", "uid": 4903}, '[ "$(id -u -- 4902)" = 4903 ]',
             lambda h: h.user("4902").uid == 4903),
        Case("user absent", "user", {"name": f"labnone{tag}", "exists": False}, f"! getent passwd labnone{tag}",
             lambda h: not h.user(f"labnone{tag}").exists),
        Case("group exists", "group", {"name": group, "gid": 4904},
             f'[ "$(getent group {group} | cut -d: -f3)" = 4904 ]',
             lambda h: h.group(group).exists and h.group(group).gid == 4904),
        Case("group members", "group", {"name": group, "members": [user]},
             f"getent group {group} | cut -d: -f4 | tr , '\\n' | grep -qx {user}",
             lambda h: user in h.group(group).members),
        Case("group member absent", "group", {"name": group, "members": ["root"]},
             f"getent group {group} | cut -d: -f4 | tr , '\\n' | grep -qx root",
             lambda h: "root" in h.group(group).members),
        Case("group absent", "group", {"name": f"labnone{tag}"}, f"getent group labnone{tag}",
             lambda h: h.group(f"labnone{tag}").exists),
    ]


def test_user_and_group(target: Target, work: str) -> None:
    if not target.can_edit_system:
        pytest.skip("adds accounts with an orphan gid and a numeric name to /etc/passwd: runs in the namespace "
                    "sandbox (the ssh target), whose writes are thrown away")
    tag = tag_of(work)
    target.must(f"echo 'labdu{tag}:x:4901:4999::/home/labdu:/bin/sh' >> /etc/passwd && "
                "echo '4902:x:4903:4903::/home/n:/bin/sh' >> /etc/passwd && "
                f"echo 'labdg{tag}:x:4904:labdu{tag}' >> /etc/group")
    judge(target, account_cases(tag))


# --- mount ----------------------------------------------------------------------------------------

UNESCAPED = "MountPoint reads /proc/mounts without undoing its octal escapes: a path with a space is not found"


def mount_cases(w: str) -> list[Case]:
    m, st, sp = f"{w}/m", f"{w}/st", f"{w}/with space"
    top = "findmnt -n -o {f} -T {p} | tail -n1"
    return [
        Case("mount tmpfs", "mount", {"path": m}, f"mountpoint -q {m}", lambda h: h.mount_point(m).exists),
        Case("mount fstype", "mount", {"path": m, "fstype": "tmpfs"}, f'[ "$(stat -f -c %T {m})" = tmpfs ]',
             lambda h: h.mount_point(m).filesystem == "tmpfs"),
        Case("mount wrong fstype", "mount", {"path": m, "fstype": "ext4"}, f'[ "$(stat -f -c %T {m})" = ext4 ]',
             lambda h: h.mount_point(m).filesystem == "ext4"),
        Case("mount options", "mount", {"path": m, "options": ["rw", "size=1024k"]},
             f"{top.format(f='OPTIONS', p=m)} | tr , '\\n' | grep -qx size=1024k",
             lambda h: {"rw", "size=1024k"} <= set(h.mount_point(m).options)),
        Case("mount device", "mount", {"path": m, "device": "labm"}, f'[ "$({top.format(f="SOURCE", p=m)})" = labm ]',
             lambda h: h.mount_point(m).device == "labm"),
        Case("mount through a symlink", "mount", {"path": f"{w}/mlink", "fstype": "tmpfs"}, f"mountpoint -q {w}/mlink",
             lambda h: h.mount_point(f"{w}/mlink").exists,
             differs="MountPoint compares the path as written: a symlink to a mount point is not one"),
        Case("mount not a mount point", "mount", {"path": f"{w}/d"}, f"mountpoint -q {w}/d",
             lambda h: h.mount_point(f"{w}/d").exists),
        Case("mount not a mount point, exists false", "mount", {"path": f"{w}/d", "exists": False},
             f"! mountpoint -q {w}/d", lambda h: not h.mount_point(f"{w}/d").exists),
        Case("mount stacked: the top one's device", "mount", {"path": st, "device": "labtop"},
             f'[ "$(df --output=source {st} | tail -n1)" = labtop ]', lambda h: h.mount_point(st).device == "labtop",
             differs="MountPoint takes the first of stacked mounts listed, not the one on top (in effect)"),
        Case("mount stacked: the top one's options", "mount", {"path": st, "options": ["size=2048k"]},
             f"{top.format(f='OPTIONS', p=st)} | tr , '\\n' | grep -qx size=2048k",
             lambda h: "size=2048k" in h.mount_point(st).options,
             differs="MountPoint takes the first of stacked mounts listed, not the one on top (in effect)"),
        Case("mount stacked: the one below", "mount", {"path": st, "device": "labbelow"},
             f'[ "$(df --output=source {st} | tail -n1)" = labbelow ]',
             lambda h: h.mount_point(st).device == "labbelow",
             differs="MountPoint takes the first of stacked mounts listed, not the one on top (in effect)"),
        Case("mount escaped path", "mount", {"path": sp, "fstype": "tmpfs"}, f"mountpoint -q {q(sp)}",
             lambda h: h.mount_point(sp).exists and h.mount_point(sp).filesystem == "tmpfs",
             differs=UNESCAPED),
        Case("mount escaped path device", "mount", {"path": sp, "device": "labsp"},
             f'[ "$(findmnt -n -o SOURCE -T {q(sp)} | tail -n1)" = labsp ]',
             lambda h: h.mount_point(sp).device == "labsp", differs=UNESCAPED),
    ]


@needs_root
def test_mount(target: Target, work: str) -> None:
    target.must(f"cd {work} && mkdir d m st 'with space' && ln -s m mlink && mount -t tmpfs -o size=1m labm m && "
                "mount -t tmpfs -o size=1m labbelow st && mount -t tmpfs -o size=2m labtop st && "
                "mount -t tmpfs -o size=3m labsp 'with space'")
    judge(target, mount_cases(work))


# --- listening, port, command, http, version, kernel_module -----------------------------------------

LISTENER = r"""
import http.server, json, socket, sys, threading, time
def bind(family, kind, address, v6only=None, port=0):
    s = socket.socket(family, kind)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((address, port))
    if kind == socket.SOCK_STREAM:
        s.listen()
    return s
S, D, A4, A6 = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.AF_INET, socket.AF_INET6
made = {"t6only": bind(A6, S, "::", 1), "t6dual": bind(A6, S, "::", 0), "t4any": bind(A4, S, "0.0.0.0"),
        "t4lo": bind(A4, S, "127.0.0.1"), "u6only": bind(A6, D, "::", 1), "u6dual": bind(A6, D, "::", 0),
        "u4lo": bind(A4, D, "127.0.0.1")}
made["tpair"] = bind(A4, S, "0.0.0.0")
made["tpair6"] = bind(A6, S, "::", 1, made["tpair"].getsockname()[1])
server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
ports = {name: s.getsockname()[1] for name, s in made.items()}
ports["http"] = server.server_address[1]
with open(sys.argv[1] + ".tmp", "w") as out:
    json.dump(ports, out)
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(900)
"""
CONNECT = ("python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()' "
           "{a} {p}")
SS = "ss -Hln{k} 'sport = :{p}' | awk '{{print $4}}' | grep -qx {alts}"


def socket_oracle(protocol: str, address: str | None, port: int) -> str:
    k = protocol[0]
    v4, v6, star = f"-e 0.0.0.0:{port}", f"-e '\\[::\\]:{port}'", f"-e '\\*:{port}'"
    if address is None:
        return (f"{SS.format(k=k, p=port, alts=star)} || ({SS.format(k=k, p=port, alts=v4)} && "
                f"{SS.format(k=k, p=port, alts=v6)})")
    if address == "0.0.0.0":
        return SS.format(k=k, p=port, alts=f"{v4} {star}")
    if address == "::":
        return SS.format(k=k, p=port, alts=f"{v6} {star}")
    if protocol == "tcp":
        return CONNECT.format(a=address, p=port)
    if address == "127.0.0.1":
        return SS.format(k=k, p=port, alts=f"-e 127.0.0.1:{port} {v4} {star}")
    return SS.format(k=k, p=port, alts=f"-e '\\[::1\\]:{port}' {v6} {star}")


# Where testinfra's Socket.is_listening differs from the host: (socket, address) -> why.
SOCKET_DIFFERENCES = {
    ("t6only", "127.0.0.1"): "Socket counts a `::` socket for IPv4 even with IPV6_V6ONLY (connect() is refused)",
    ("t6only", "0.0.0.0"): "Socket counts a `::` socket for IPv4 even with IPV6_V6ONLY (connect() is refused)",
    ("t6only", None): "Socket counts a `::` socket for IPv4 even with IPV6_V6ONLY (connect() is refused)",
    ("u6only", "127.0.0.1"): "Socket counts a `::` socket for IPv4 even with IPV6_V6ONLY",
    ("u6only", "0.0.0.0"): "Socket counts a `::` socket for IPv4 even with IPV6_V6ONLY",
    ("u6only", None): "Socket counts a `::` socket for IPv4 even with IPV6_V6ONLY",
    ("t4any", "127.0.0.1"): "Socket does not count 0.0.0.0 for a specific IPv4 address (its code tests a bool)",
}


def listening_cases(ports: dict[str, int]) -> list[Case]:
    cases = []
    for name, port in ports.items():
        if name in ("http", "tpair6"):
            continue
        protocol = "tcp" if name.startswith("t") else "udp"
        for address in ("127.0.0.1", "::1", "0.0.0.0", "::", None):
            params: dict[str, Any] = {"port": port, "protocol": protocol}
            spec = f"{protocol}://{port}"
            if address is not None:
                params["address"] = address
                spec = f"{protocol}://{address}:{port}"
            cases.append(Case(f"listening {name} {address or 'all addresses'}", "listening", params,
                              socket_oracle(protocol, address, port),
                              lambda h, s=spec: h.socket(s).is_listening,
                              differs=SOCKET_DIFFERENCES.get((name, address), "")))
    cases.append(Case("port t4lo", "port", {"port": ports["t4lo"]}, f"ss -Hltn 'sport = :{ports['t4lo']}' | grep -q ."))
    for name, host in (("t6only", "127.0.0.1"), ("t6only", "::1"), ("t4lo", "::1"), ("t4lo", "localhost"),
                       ("t6dual", "127.0.0.1"), ("t4any", "127.0.0.1")):
        cases.append(Case(f"port {name} host {host}", "port", {"port": ports[name], "host": host},
                          CONNECT.format(a=host, p=ports[name])))
    return cases


def other_cases(w: str, ports: dict[str, int]) -> list[Case]:
    script = "echo out; echo err >&2; exit 3"
    url = f"http://127.0.0.1:{ports['http']}/"
    fetch = "python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' {}"
    cases = [
        Case("command exit 3", "command", {"command": ["sh", "-c", script], "exit_code": 3, "stdout": "^out$"},
             f"sh -c {q(script)}; [ $? -eq 3 ]", lambda h: h.run(script).rc == 3),
        Case("command exit 0 expected", "command", {"command": ["sh", "-c", script]}, f"sh -c {q(script)}",
             lambda h: h.run(script).rc == 0),
        Case("command stderr", "command", {"command": ["sh", "-c", script], "exit_code": 3, "stderr": "^err$"},
             f"sh -c {q(script)} 2>&1 >/dev/null | grep -qx err", lambda h: h.run(script).stderr == "err\n"),
        Case("http 200", "http", {"url": url}, fetch.format(url)),
        Case("http 404", "http", {"url": url + "lab-none"}, fetch.format(url + "lab-none")),
        Case("version 2.10.1 >=2.9", "version", {"product": "app", "file": f"{w}/ver", "constraint": ">=2.9"},
             "dpkg --compare-versions 2.10.1 ge 2.9"),
        Case("version 2.10.1 <2.10", "version", {"product": "app", "file": f"{w}/ver", "constraint": "<2.10"},
             "dpkg --compare-versions 2.10.1 lt 2.10"),
    ]
    if Path("/proc/modules").exists():
        module = Path("/proc/modules").read_text().split(" ", 1)[0]
        cases.append(Case(f"kernel_module {module}", "kernel_module", {"name": module},
                          f"grep -q '^{module} ' /proc/modules"))
    else:
        cases.append(Case("kernel_module without /proc/modules", "kernel_module", {"name": "loop"},
                          "test -e /proc/modules", error="/proc/modules is not available"))
    return cases


def test_listening_and_the_rest(target: Target, work: str) -> None:
    target.put(f"{work}/listen.py", LISTENER.encode())
    target.put(f"{work}/ver", b"app 2.10.1\n")
    target.must(f"cd {work} && setsid -f python3 {work}/listen.py {work}/ports.json </dev/null >/dev/null 2>&1")
    deadline = time.monotonic() + 30
    while (code := target.sh(f"test -s {work}/ports.json")[0]) != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == 0, "the listener did not start"
    target.must(f"pgrep -f '{work}/listen.py' > {work}/pids")
    ports = json.loads(target.must(f"cat {work}/ports.json"))
    verdicts = judge(target, listening_cases(ports) + other_cases(work, ports))
    by_id = {v.case.id: v for v in verdicts}
    assert by_id["listening t6only 127.0.0.1"].lab.status.value == "fail"  # IPV6_V6ONLY: connect() is refused
    assert by_id["listening t6dual 127.0.0.1"].lab.status.value == "pass"
    assert by_id["listening tpair all addresses"].lab.status.value == "pass"
