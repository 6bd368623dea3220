"""CPU-seconds of a whole process tree: a command run in a cpuacct cgroup of its own when this
machine allows it (root, cgroup v1 cpuacct or v2), so processes that leave their parent (Mitogen's
helpers, daemons a playbook starts) are counted too; else the waited-for children's rusage."""

from __future__ import annotations

import os
import resource
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpuacct")
V2 = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Measured:
    """A finished command: wall seconds, CPU-seconds, how they were counted, exit code and output."""

    wall: float
    cpu: float
    method: str
    returncode: int
    stdout: str
    stderr: str


def cgroup_root() -> tuple[Path, str, str] | None:
    """(parent directory, usage file, method) of a cgroup this process may create, or None."""
    if os.geteuid() != 0:
        return None
    if (V1 / "cpuacct.usage").exists():
        return V1, "cpuacct.usage", "cgroup cpuacct"
    if (V2 / "cgroup.controllers").exists():
        return V2, "cpu.stat", "cgroup v2 cpu.stat"
    return None


def usage(group: Path, name: str) -> float:
    text = (group / name).read_text()
    if name == "cpuacct.usage":
        return int(text) / 1e9
    fields = dict(line.split() for line in text.splitlines())
    return int(fields["usage_usec"]) / 1e6


class Group:
    """A cgroup of its own while the ``with`` lasts (``None`` as ``path`` where this machine allows
    none): processes started with ``enter`` as their ``preexec_fn`` are counted by ``used``."""

    def __init__(self) -> None:
        self.found = cgroup_root()
        self.path = self.found[0] / f"lab-bench-{uuid.uuid4().hex[:8]}" if self.found is not None else None
        self.method = self.found[2] if self.found is not None else "rusage of waited-for children"

    def __enter__(self) -> Group:
        if self.path is not None:
            self.path.mkdir()
        return self

    def enter(self) -> None:
        """Put the calling process (a child between fork and exec) into the group."""
        if self.path is not None:
            with open(self.path / "cgroup.procs", "w") as handle:
                handle.write(str(os.getpid()))

    def used(self) -> float | None:
        """CPU-seconds every process of the group used so far (None without a cgroup)."""
        if self.path is None or self.found is None:
            return None
        return usage(self.path, self.found[1])

    def __exit__(self, *exc: object) -> None:
        if self.path is None or self.found is None:
            return
        for pid in (self.path / "cgroup.procs").read_text().split():  # daemons left behind go back to the root group
            (self.found[0] / "cgroup.procs").write_text(pid)
        self.path.rmdir()


def run(command: Sequence[str], env: Mapping[str, str], cwd: Path) -> Measured:
    """Run ``command`` in ``cwd`` to its end and count the CPU its whole tree used while it ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Group() as group:
        started = time.perf_counter()
        done = subprocess.run(list(command), env=dict(env), cwd=cwd, capture_output=True, text=True, check=False,
                              preexec_fn=group.enter)
        wall = time.perf_counter() - started
        cpu = group.used()
    if cpu is None:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(wall, cpu, group.method, done.returncode, done.stdout, done.stderr)
