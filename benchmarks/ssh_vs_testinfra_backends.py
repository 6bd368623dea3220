"""How ``benchmarks.ssh_vs_testinfra`` runs each side: the lab, the floor, testinfra under pytest.

Each side is one whole process, timed from its spawn to its exit (the same way for every side):
each function or method does one run over all sandboxes and returns that time and the verdict
of every check (``<sandbox>/<check id>`` -> passed). ``sampled`` runs a command while
sampling the memory of its whole process tree.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.ssh_vs_testinfra_checks import harness_module, module_for_testinfra
from lab.checks.delivery import PYTHON_BOOTSTRAP, python_runner_payload
from lab.checks.manifest import compile_suite
from lab.model import Suite

ROOT = Path(__file__).resolve().parents[1]
PARALLEL = 4  # sandboxes at a time, on every side
BUDGET_S = 120.0
PF_FORKNOEXEC = 0x40  # /proc/<pid>/stat flags: forked, not exec'd yet
PYTHON_BINARY = os.path.realpath(sys.executable)


@dataclass(frozen=True)
class Target:
    """One sandbox as the benchmark reaches it: its name and the facts its handle carries."""

    name: str
    facts: dict[str, Any]

    @property
    def port(self) -> int:
        return int(self.facts["ansible_port"])

    def ssh_options(self) -> dict[str, str]:
        """The ``-o Key=Value`` options of ``ansible_ssh_common_args``."""
        words = shlex.split(str(self.facts.get("ansible_ssh_common_args", "")))
        return dict(w.split("=", 1) for w in words if w != "-o")


@dataclass
class Run:
    """One run of one backend over all sandboxes."""

    seconds: float
    passed: dict[str, bool]  # "<sandbox>/<check id>" -> passed
    connections: list[int] = field(default_factory=list)  # per sandbox
    sessions: list[int] = field(default_factory=list)
    memory: tuple[int, int] | None = None  # peak RSS in KiB: (largest process, all processes)


# --- the two tools and the floor, each one whole process ---------------------------------------

# The lab's verify step as a process of its own: load the suite, then per sandbox one SSHTransport
# (ControlMaster) and one runner round trip, 4 sandboxes in parallel, as a campaign verifies. It
# imports only lab, so its time is the interpreter's start, lab's imports and the work.
LAB_VERIFY = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from lab.checks.delivery import run_runner
from lab.checks.manifest import compile_suite, parse_results, suite_budget
from lab.config.labfile import load_suite
from lab.model import Status
from lab.transports.ssh import SSHTransport

plan = json.loads(Path(sys.argv[1]).read_text())
suite = load_suite(Path(plan["suite"]))

def verify(target):
    manifest = compile_suite(suite, "/", target["facts"])
    with SSHTransport(target["name"], target["facts"]) as transport:
        output = run_runner(transport, manifest, suite_budget(suite, float(plan["budget"])))
    return {f"{target['name']}/{r.check_id}": r.status is Status.PASS for r in parse_results(suite, output)}

with ThreadPoolExecutor(max_workers=len(plan["targets"])) as pool:
    print(json.dumps({k: v for part in pool.map(verify, plan["targets"]) for k, v in part.items()}))
"""


def write_plan(path: Path, targets: list[Target], suite: Suite) -> Path:
    """What the lab's process reads: the suite file, the sandboxes' names and facts, the time budget."""
    path.write_text(json.dumps({"suite": str(suite.path), "budget": BUDGET_S,
                                "targets": [{"name": t.name, "facts": t.facts} for t in targets]}))
    return path


def run_lab(plan: Path, work: Path, sample: bool) -> Run:
    """One run of the lab's verify step as a whole process (``LAB_VERIFY``): spawn to exit.

    Its ControlMasters daemonize out of the process tree; their command lines hold the private
    TMPDIR given here, which is how the memory sampler finds them."""
    tmp = work / "tmp-lab"
    tmp.mkdir(exist_ok=True)
    command = [sys.executable, "-c", LAB_VERIFY, str(plan)]
    started = time.perf_counter()
    done = sampled(command, str(tmp), sample=sample, cwd=work, env={**os.environ, "TMPDIR": str(tmp)},
                   timeout=BUDGET_S)
    seconds = time.perf_counter() - started
    try:
        passed = json.loads(done.output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        passed = None
    if done.exit_code != 0 or not isinstance(passed, dict):
        raise RuntimeError(f"the lab's process failed (exit {done.exit_code}): {done.output[-2000:]}")
    return Run(seconds, passed, memory=done.memory)


def floor_command(target: Target) -> list[str]:
    """Plain ``ssh`` with the handle's options, running the bootstrap (no ControlMaster, no lab code)."""
    f = target.facts
    remote = shlex.join([str(f["ansible_python_interpreter"]), "-c", PYTHON_BOOTSTRAP])
    return ["ssh", "-o", "BatchMode=yes", "-p", str(f["ansible_port"]), "-l", str(f["ansible_user"]),
            "-i", str(f["ansible_ssh_private_key_file"]), *shlex.split(str(f["ansible_ssh_common_args"])),
            "--", str(f["ansible_host"]), remote]


class Floor:
    """The least work any tool must do to judge the checks: per sandbox, open one SSH connection, run
    one session with the runner and its manifest on stdin, close. One ``/bin/sh`` process starts a
    plain ``ssh`` per sandbox, 4 at once, and waits for them; the payloads (runner + compiled
    manifest) are written beforehand, so no tool's own start-up or compiling is in its time."""

    def __init__(self, work: Path, targets: list[Target], suite: Suite) -> None:
        self.work = work / "floor"
        self.work.mkdir(parents=True, exist_ok=True)
        self.targets = targets
        jobs = []
        for target in targets:
            payload = self.work / f"{target.name}.in"
            payload.write_bytes(python_runner_payload(compile_suite(suite, "/", target.facts)))
            jobs.append(f"{shlex.join(floor_command(target))} <{shlex.quote(str(payload))} "
                        f">{shlex.quote(str(self.output(target)))} 2>/dev/null &")
        self.script = "\n".join([*jobs, "wait"])

    def output(self, target: Target) -> Path:
        return self.work / f"{target.name}.out"

    def run(self, sample: bool) -> Run:
        """One timed run: the shell's whole life, spawn to exit; the verdicts from the runners' lines."""
        for target in self.targets:
            self.output(target).unlink(missing_ok=True)
        started = time.perf_counter()
        done = sampled(["/bin/sh", "-c", self.script], None, sample=sample, cwd=self.work, timeout=BUDGET_S)
        seconds = time.perf_counter() - started
        if done.exit_code != 0:
            raise RuntimeError(f"the floor's shell exited {done.exit_code}: {done.output[-2000:]}")
        passed = {}
        for target in self.targets:
            text = self.output(target).read_bytes() if self.output(target).exists() else b""
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            passed.update({f"{target.name}/{line['id']}": line["status"] == "pass" for line in lines if "id" in line})
        return Run(seconds, passed, memory=done.memory)


class Testinfra:
    """pytest-testinfra over generated modules (one per sandbox), run by ``pytest -n 4 --dist loadfile``."""

    def __init__(self, work: Path, targets: list[Target]) -> None:
        self.work = work
        self.targets = targets
        self.modules = {f"test_sbx{i}": t.name for i, t in enumerate(targets, 1)}
        self.tests, self.harness = work / "testinfra", work / "harness"
        for directory in (self.tests, self.harness):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "pytest.ini").write_text("[pytest]\n")
        for module, target in zip(self.modules, targets, strict=True):
            hostspec = f"{target.facts['ansible_user']}@{target.facts['ansible_host']}:{target.port}"
            (self.tests / f"{module}.py").write_text(module_for_testinfra(target.name, hostspec, target.facts))
            (self.harness / f"{module}.py").write_text(harness_module(target.name))
        self.control_dir = work / "cm"
        self.plain_config = self.ssh_config(work / "ssh_config", control_path=False)
        self.control_config = self.ssh_config(work / "ssh_config_cp", control_path=True)

    def ssh_config(self, path: Path, control_path: bool) -> Path:
        """An ssh config that reaches the sandboxes as the lab does: its key, its pinned known_hosts."""
        facts = self.targets[0].facts
        options = self.targets[0].ssh_options()
        lines = [f"Host {facts['ansible_host']}", f"    User {facts['ansible_user']}",
                 f"    IdentityFile {facts['ansible_ssh_private_key_file']}", "    IdentitiesOnly yes",
                 f"    UserKnownHostsFile {options['UserKnownHostsFile']}", "    StrictHostKeyChecking yes",
                 "    BatchMode yes"]
        if control_path:
            lines.append(f"    ControlPath {self.control_dir}/%C")
        path.write_text("\n".join(lines) + "\n")
        return path

    def command(self, variant: str, junit: Path) -> list[str]:
        """The pytest command line of a variant: ssh, controlpath, paramiko or harness."""
        directory = self.harness if variant == "harness" else self.tests
        command = [sys.executable, "-m", "pytest", str(directory), "-q", "-p", "no:cacheprovider",
                   "-p", "xdist.plugin", "-p", "testinfra.plugin",  # autoload is off: see run()
                   "-c", str(directory / "pytest.ini"), "--rootdir", str(directory),
                   "-n", str(PARALLEL), "--dist", "loadfile", "--junitxml", str(junit)]
        if variant != "harness":
            config = self.control_config if variant == "controlpath" else self.plain_config
            command += ["--connection", "paramiko" if variant == "paramiko" else "ssh", "--ssh-config", str(config)]
        return command

    def run(self, variant: str, sample: bool = False) -> Run:
        """One timed pytest run; the verdicts from its JUnit XML (and its peak memory if ``sample``)."""
        junit = self.work / f"junit-{variant}.xml"
        junit.unlink(missing_ok=True)
        self.control_dir.mkdir(exist_ok=True)
        marker = str(self.control_config) if variant == "controlpath" else None  # its daemonized masters
        started = time.perf_counter()
        # Plugin autoload off, xdist and testinfra named on the command line: this venv also holds
        # hypothesis's plugin (about a second per interpreter), which a testinfra user would not have.
        done = sampled(self.command(variant, junit), marker if sample else None, sample=sample, cwd=self.work,
                       env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
        seconds = time.perf_counter() - started
        if variant == "controlpath":
            self.stop_masters()
        if done.exit_code not in (0, 1) or not junit.exists():
            raise RuntimeError(f"pytest ({variant}) exited {done.exit_code}:\n{done.output[-3000:]}")
        return Run(seconds, self.verdicts(junit, variant), memory=done.memory)

    def verdicts(self, junit: Path, variant: str) -> dict[str, bool]:
        passed = {}
        for case in ET.parse(junit).iter("testcase"):
            module = case.get("classname", "").rsplit(".", 1)[-1]
            check_id = case.get("name", "").split("[", 1)[0].removeprefix("test_")
            ok = not any(child.tag in ("failure", "error", "skipped") for child in case)
            passed[f"{self.modules.get(module, module)}/{check_id}"] = ok
        return passed if variant != "harness" else {}

    def stop_masters(self) -> None:
        """``ssh -O exit`` the ControlMasters testinfra's ssh processes left behind (they persist 60 s)."""
        for target in self.targets:
            subprocess.run(["ssh", "-F", str(self.control_config), "-p", str(target.port), "-O", "exit",
                            str(target.facts["ansible_host"])], capture_output=True, timeout=30, check=False)
        for leftover in self.control_dir.glob("*"):
            leftover.unlink(missing_ok=True)


# --- peak memory of a process tree ----------------------------------------------------------------

class TreeSampler(threading.Thread):
    """Peak memory of a process tree, sampled every 20 ms: the largest process's peak (its VmHWM,
    which the kernel keeps, so only a process's last 20 ms can escape) and the peak of the summed
    RSS. The tree is walked through ``/proc/<pid>/task/<tid>/children``; processes whose command
    line holds ``marker`` count too, with their descendants (ssh ControlMasters daemonize out of
    the tree), found by a scan of ``/proc`` every 200 ms."""

    def __init__(self, root: int, marker: str | None, include_root: bool) -> None:
        super().__init__(daemon=True)
        self.root, self.marker, self.include_root = root, marker.encode() if marker else None, include_root
        self.largest_kb = self.total_kb = 0
        self.marked: set[int] = set()
        self.stopped = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self.stopped.wait(0.02):
            if self.marker is not None and tick % 10 == 0:
                self.marked |= self.scan()
            tick += 1
            members = self.tree({self.root, *self.marked})
            if not self.include_root:
                members.discard(self.root)
            total = 0
            for pid in members:
                if python_not_yet_exec(pid):
                    continue  # a child between fork and exec still shows its Python parent's memory
                rss, hwm = status_kb(pid)
                total += rss
                self.largest_kb = max(self.largest_kb, hwm)
            self.total_kb = max(self.total_kb, total)

    def scan(self) -> set[int]:
        """Processes whose command line holds the marker."""
        found = set()
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/cmdline", "rb") as handle:
                        if self.marker in handle.read():  # type: ignore[operator]
                            found.add(int(name))
                except OSError:
                    continue
        return found

    @staticmethod
    def tree(roots: set[int]) -> set[int]:
        """``roots`` and all their descendants that are still alive."""
        members: set[int] = set()
        todo = list(roots)
        while todo:
            pid = todo.pop()
            if pid in members:
                continue
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            members.add(pid)
            for tid in tasks:
                try:
                    with open(f"/proc/{pid}/task/{tid}/children") as handle:
                        todo += [int(word) for word in handle.read().split()]
                except OSError:
                    continue
        return members


def python_not_yet_exec(pid: int) -> bool:
    """True for a process forked from a Python (this interpreter's binary) that has not exec'd yet."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            flags = int(handle.read().rpartition(")")[2].split()[6])
        return bool(flags & PF_FORKNOEXEC) and os.readlink(f"/proc/{pid}/exe") == PYTHON_BINARY
    except (OSError, ValueError, IndexError):
        return False


def status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB; zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


@dataclass(frozen=True)
class Done:
    """A finished command: exit code, stdout + stderr, and (largest process, summed) peak RSS in KiB."""

    exit_code: int
    output: str
    memory: tuple[int, int] | None


def sampled(command: list[str], marker: str | None, *, sample: bool = True, include_root: bool = True,
            cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 600) -> Done:
    """Run ``command`` to its end, sampling its process tree's memory if ``sample``.

    (``wait4``'s ru_maxrss would not do: a child forked from this process inherits its peak RSS.)
    """
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        sampler = TreeSampler(proc.pid, marker, include_root)
        if sample:
            sampler.start()
        try:
            proc.wait(timeout)
        finally:
            if proc.returncode is None:
                proc.kill()
                proc.wait()
            sampler.stopped.set()
            if sample:
                sampler.join()
        out.seek(0)
        memory = (sampler.largest_kb, sampler.total_kb) if sample else None
        return Done(proc.returncode, out.read().decode(errors="replace"), memory)
