"""Benchmark: the lab's ssh transport vs pytest-testinfra's ssh backends, same checks, same sandboxes.

What it measures. Four namespace sandboxes (``NamespaceProvider``: each a Debian server with its
own sshd on a loopback port, host key pinned, the lab's key for root) get the same 50 checks each,
200 in all (``benchmarks/ssh_vs_testinfra_checks.py``: files, modes, contents, commands with exit
code and stdout regex, packages, users, groups, sshd's listening socket, sysctl keys), judged by
each side below. Every side is one whole process, timed the same way: from its spawn to its exit,
so interpreter start-up, imports and connection set-up count wherever they happen:

- ``lab``: a Python process that loads the suite and, per sandbox, opens an ``SSHTransport``
  (ControlMaster), runs the runner on the compiled manifest in one round trip and closes, four
  sandboxes in parallel (4 threads, as a campaign's verify step); it imports only lab;
- ``floor``: the least work any tool must do to judge the checks: per sandbox, open one SSH
  connection, run one session with the runner and its manifest on stdin, close. One ``/bin/sh``
  starts a plain ``ssh`` per sandbox (4 at once) and waits; runner and manifest are compiled
  beforehand (untimed), so nothing but the connections and the checks is in its time;
- testinfra as it is run: a generated test module per sandbox (``testinfra_hosts``), ``pytest -n 4
  --dist loadfile`` (pytest-xdist: one worker per module, so one worker per sandbox, the same
  shape as the lab's 4 threads; without xdist testinfra walks the hosts one after the other),
  ``--ssh-config`` a generated file (IdentityFile, UserKnownHostsFile, StrictHostKeyChecking yes),
  with plugin autoload off and only xdist and testinfra loaded (this venv also holds hypothesis's
  plugin, ~1 s per interpreter, that a testinfra user would not have). Variants: ``--connection
  ssh`` (the default backend: one ``ssh`` per command), the same with ``ControlPath`` in the ssh
  config (testinfra itself adds ControlMaster=auto and ControlPersist=60s; its
  ``--ssh-extra-args`` option is parsed but never handed to the backend by testinfra 10.2's
  plugin, so the config file is the way), and ``--connection paramiko``. The masters the
  ControlPath variant leaves are stopped after each run (untimed), so every run pays for its own
  connections;
- ``pytest -n 4`` alone on 200 empty tests: the harness's own cost, inside every testinfra time.

Runs are paired and interleaved with equal counts: a warm-up round (every side once, untimed: it
compiles the generated modules, warms the sandboxes and samples peak memory), then ``--runs``
rounds in which every side runs once, in an order rotated each round so the machine's noise
spreads over all of them. Ratios are taken within a round (each side's time over the lab's time
in the same round) and the table gives the median and range of those per-round ratios; "without
pytest's start-up" subtracts the harness's time of the same round.

SSH connections and sessions per sandbox per run are counted from each sandbox's sshd log
(LogLevel VERBOSE: "Accepted publickey", "Starting session"). Peak memory is sampled every 20 ms
over each side's process tree (plus the ssh ControlMasters that daemonize out of it) in the
warm-up round: the largest process's VmHWM and the peak of the summed RSS (shared pages count
once per process: an upper bound). ``wait4``'s ru_maxrss is not used: a child forked from this
process inherits its peak RSS. Every side must pass all 200 checks, check by check, in every run;
the targets are lab >= 10x the default testinfra ssh backend, >= 2x its ControlPath variant, and
within 1.3x of the floor.

Reproduce (root, Debian 12 with openssh-server; from the repository root)::

    .venv/bin/pip install pytest-testinfra pytest-xdist paramiko
    sudo .venv/bin/python -m benchmarks.ssh_vs_testinfra [--runs 5] [--state-dir /tmp/lab-bench-svt]

Exit code: 0 targets met and verdicts equal, 1 a target missed or the tools disagree, 2 not root
or a missing package, 3 a sandbox could not be set up. The markdown table is printed last, between
``<!-- ssh_vs_testinfra:begin -->`` and ``<!-- ssh_vs_testinfra:end -->``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from benchmarks.ssh_vs_testinfra_backends import Floor, Run, Target, Testinfra, run_lab, write_plan
from benchmarks.ssh_vs_testinfra_checks import checks, write_lab_suite
from lab.errors import LabError
from lab.model import SandboxSpec
from lab.sandboxes.namespace.provider import NamespaceProvider

SANDBOXES = 4
ACCEPTED = re.compile(r"^Accepted publickey for root from 127\.0\.0\.1 port \d+ ssh2", re.M)
SESSION = re.compile(r"^Starting session: ", re.M)
BEGIN, END = "<!-- ssh_vs_testinfra:begin -->", "<!-- ssh_vs_testinfra:end -->"
TARGETS = {"ti-ssh": 10.0, "ti-controlpath": 2.0, "floor": 1.3}
PEERS = ("ti-ssh", "ti-controlpath", "ti-paramiko")


@dataclass
class Backend:
    """One side of the comparison, the runs it made (one per round, in round order) and its peak memory."""

    key: str
    label: str
    parallelism: str
    run: Callable[[bool], Run]  # sample: measure peak memory
    runs: list[Run] = field(default_factory=list)
    memory: tuple[int, int] | None = None  # (largest process, sum over the tree), KiB

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)


# --- sandboxes, counting ---------------------------------------------------------------------

@contextmanager
def sandboxes(state_dir: Path) -> Iterator[tuple[NamespaceProvider, list[SandboxSpec], list[Target]]]:
    """Four namespace sandboxes, fresh (whatever a crashed run left is destroyed first); destroyed after."""
    provider = NamespaceProvider(state_dir)
    specs = [SandboxSpec(f"bench-ti-{i}", "debian-12", "namespace", {}) for i in range(1, SANDBOXES + 1)]
    try:
        for spec in specs:
            provider.destroy(spec)
        targets = [Target(spec.name, provider.reset(spec).facts) for spec in specs]
        yield provider, specs, targets
    finally:
        for spec in specs:
            provider.destroy(spec)


def sshd_counts(provider: NamespaceProvider, specs: list[SandboxSpec]) -> list[tuple[int, int]]:
    """(connections, sessions) each sandbox's sshd logged since its reset."""
    counts = []
    for spec in specs:
        text = provider.sshd_log(spec).read_text(errors="replace")
        counts.append((len(ACCEPTED.findall(text)), len(SESSION.findall(text))))
    return counts


# --- paired ratios and the report ----------------------------------------------------------------

def ratios(over: Backend, under: Backend, minus: Backend | None = None) -> list[float]:
    """Per round: ``over``'s time (less ``minus``'s time of the same round) over ``under``'s time."""
    cut = [r.seconds for r in minus.runs] if minus is not None else [0.0] * len(over.runs)
    return [(o.seconds - c) / u.seconds for o, u, c in zip(over.runs, under.runs, cut, strict=True)]


def ratio_text(values: list[float], digits: int = 1) -> str:
    """``median (low-high)`` of per-round ratios."""
    return f"{statistics.median(values):.{digits}f}x ({min(values):.{digits}f}-{max(values):.{digits}f})"


def spread(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def table(backends: dict[str, Backend]) -> list[str]:
    lab = backends["lab"]
    total_checks = SANDBOXES * len(checks())
    rows = ["| side (one whole process each) | parallelism | median s (runs) | checks/s | per-round ratio, "
            "median (range) | SSH connections per sandbox per run | SSH sessions per sandbox per run | "
            "peak RSS, largest process | peak RSS, all processes |",
            "|---|---|--:|--:|---|--:|--:|--:|--:|"]
    for key, b in backends.items():
        if key == "lab":
            ratio = "1.0x"
        elif key == "floor":
            ratio = f"lab takes {ratio_text(ratios(lab, b), 2)} the floor's time"
        elif key == "harness":
            ratio = "(inside every testinfra time)"
        else:
            ratio = f"lab {ratio_text(ratios(b, lab))} faster"
        conns = spread([c for r in b.runs for c in r.connections]) if key != "harness" else "0"
        sess = spread([c for r in b.runs for c in r.sessions]) if key != "harness" else "0"
        mem = (f"{b.memory[0] / 1024:.0f} MiB", f"{b.memory[1] / 1024:.0f} MiB") if b.memory else ("-", "-")
        rate = f"{total_checks / b.median:.0f}" if key != "harness" else "-"
        rows.append(f"| {b.label} | {b.parallelism} | {b.median:.2f} ({len(b.runs)}) | {rate} | {ratio} | {conns} | "
                    f"{sess} | {mem[0]} | {mem[1]} |")
    return rows


def targets_met(backends: dict[str, Backend]) -> list[tuple[str, bool]]:
    """Each target, as text with the median per-round ratio, and whether it is met."""
    lab = backends["lab"]
    ssh = statistics.median(ratios(backends["ti-ssh"], lab))
    cp = statistics.median(ratios(backends["ti-controlpath"], lab))
    floor = statistics.median(ratios(lab, backends["floor"]))
    return [(f"lab >= {TARGETS['ti-ssh']:g}x testinfra ssh:// (default): {ssh:.1f}x", ssh >= TARGETS["ti-ssh"]),
            (f"lab >= {TARGETS['ti-controlpath']:g}x testinfra ssh:// + ControlPath: {cp:.1f}x",
             cp >= TARGETS["ti-controlpath"]),
            (f"lab within {TARGETS['floor']:g}x of the floor: {floor:.2f}x", floor <= TARGETS["floor"])]


def report(backends: dict[str, Backend], runs: int) -> list[str]:
    """The markdown block for the README: the table, the targets, how to read it, the machine."""
    lab, harness = backends["lab"], backends["harness"]
    bare = "; ".join(f"{backends[k].label.split(' (')[0]} {ratio_text(ratios(backends[k], lab, harness))}"
                     for k in PEERS)
    return [
        *table(backends), "",
        "Targets: " + "; ".join(f"{text} ({'met' if ok else 'MISSED'})" for text, ok in targets_met(backends)) + ".",
        f"Lab's speed-up without pytest's own start-up (each round's harness time subtracted from that round's "
        f"testinfra time): {bare}.", "",
        f"Every side is one whole process timed from spawn to exit; {runs} rounds after an untimed warm-up, every "
        "side once per round in a rotated order; ratios are taken within each round. The floor is one `/bin/sh` "
        "running a plain `ssh` per sandbox (one connection, one session with the runner and manifest on stdin, "
        "compiled beforehand), 4 at once. "
        f"{SANDBOXES} namespace sandboxes x {len(checks())} checks; every side passed all "
        f"{SANDBOXES * len(checks())}, check by check, in every run. Connections and sessions are counted in "
        "each sandbox's sshd log; testinfra opens a session per remote command (some checks take several, and "
        "it detects the OS and its tools once per host). Its `--ssh-extra-args` option never reaches the ssh "
        "backend (pytest-testinfra 10.2.2), so the ControlPath goes in the ssh config. Its paramiko backend "
        "ignores `UserKnownHostsFile` and `StrictHostKeyChecking` and accepts any host key (with a warning); "
        "the other rows verify the pinned key. Peak RSS is sampled every 20 ms over each side's process tree "
        "in the warm-up round: the largest process's high-water mark, and the summed RSS (shared pages counted "
        "per process).",
        f"Machine: {environment()}. Reproduce: `sudo .venv/bin/python -m benchmarks.ssh_vs_testinfra --runs {runs}`.",
    ]


def environment() -> str:
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip().split(",")[0]
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in
                         ("pytest", "pytest-testinfra", "pytest-xdist", "paramiko"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{time.strftime('%Y-%m-%d')}, {platform.system()} {platform.release()}, {os.cpu_count()} CPUs "
            f"(load {load}), Python {platform.python_version()}, {ssh}, {versions}")


# --- main ------------------------------------------------------------------------------------

def rounds(keys: list[str], runs: int) -> list[list[str]]:
    """The warm-up round (every side once), then ``runs`` rounds of every side once, each rotated by one."""
    return [list(keys), *[keys[r % len(keys):] + keys[:r % len(keys)] for r in range(runs)]]


def measure(args: argparse.Namespace, state_dir: Path) -> int:
    with sandboxes(state_dir) as (provider, specs, targets):
        work = state_dir / "bench"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        infra = Testinfra(work, targets)
        suite = write_lab_suite(work / "ssh-vs-testinfra.yml")
        plan = write_plan(work / "targets.json", targets, suite)
        floor = Floor(work, targets, suite)
        test = "pytest -n 4 --dist loadfile"
        backends = {b.key: b for b in (
            Backend("lab", "lab (`SSHTransport`, ControlMaster, 1 round trip per suite)", "4 threads",
                    lambda sample: run_lab(plan, work, sample)),
            Backend("floor", "floor: `sh` starting 1 plain `ssh` per sandbox, runner on stdin", "4 processes",
                    floor.run),
            Backend("ti-ssh", "testinfra `ssh://` (default backend)", test, lambda sample: infra.run("ssh", sample)),
            Backend("ti-controlpath", "testinfra `ssh://` + ControlPath", test,
                    lambda sample: infra.run("controlpath", sample)),
            Backend("ti-paramiko", "testinfra `paramiko://`", test, lambda sample: infra.run("paramiko", sample)),
            Backend("harness", "pytest + xdist alone: 200 empty tests, no host", test,
                    lambda sample: infra.run("harness", sample)),
        )}
        expected = {f"{t.name}/{check_id}" for t in targets for check_id, _, _ in checks()}
        for number, keys in enumerate(rounds(list(backends), args.runs)):
            for key in keys:
                backend = backends[key]
                before = sshd_counts(provider, specs)
                run = backend.run(number == 0)
                after = sshd_counts(provider, specs)
                run.connections = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
                run.sessions = [a[1] - b[1] for a, b in zip(after, before, strict=True)]
                backend.memory = backend.memory or run.memory
                memory = f", peak RSS {run.memory[0] // 1024}/{run.memory[1] // 1024} MiB" if run.memory else ""
                print(f"{'round ' + str(number) if number else 'warm-up'}: {key:<15} {run.seconds:6.2f} s, "
                      f"{sum(run.passed.values())} passed, connections {run.connections}, "
                      f"sessions {run.sessions}{memory}", flush=True)
                if key != "harness" and run.passed != dict.fromkeys(expected, True):
                    bad = sorted(k for k in expected if not run.passed.get(k))
                    print(f"{key}: {len(bad)} of {len(expected)} checks did not pass: {', '.join(bad[:10])}",
                          file=sys.stderr)
                    return 1
                if number:
                    backend.runs.append(run)
    for key, b in backends.items():
        print(f"{key:<15} runs (s): {', '.join(f'{r.seconds:.2f}' for r in b.runs)}")
    print("\n".join(["", BEGIN, *report(backends, args.runs), END]))
    return 0 if all(ok for _, ok in targets_met(backends)) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured rounds: every side runs once per round (5)")
    parser.add_argument("--state-dir", type=Path, default=Path(tempfile.gettempdir()) / "lab-bench-svt",
                        help="where the sandboxes live while it runs (removed afterwards)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("this benchmark needs root: namespace sandboxes mount overlayfs and create namespaces; "
              "run it as `sudo .venv/bin/python -m benchmarks.ssh_vs_testinfra`", file=sys.stderr)
        return 2
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for module, package in (("testinfra", "pytest-testinfra"), ("xdist", "pytest-xdist"), ("paramiko", "paramiko")):
        try:
            __import__(module)
        except ImportError:
            print(f"{package} is missing: .venv/bin/pip install {package}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the sandboxes are destroyed
    state_dir = args.state_dir.resolve()
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{state_dir}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another run holds {state_dir}.lock; wait for it or pass --state-dir", file=sys.stderr)
            return 2
        try:
            return measure(args, state_dir)
        except LabError as exc:
            print(f"cannot set up the sandboxes: {exc}", file=sys.stderr)
            return 3
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
