"""Provider ``local``: a host is a directory on this machine holding a root file tree.

No root privileges needed. Each host gets its own loopback port (``lab_port``) for the services
its baseline starts, so several hosts run side by side on one machine. Sandboxes live under
``<state_dir>/sandboxes/<name>``, production hosts under ``<state_dir>/production/<name>``; a
host's ``facts.json`` (its port and when it was reset) says it is up, unless it records that the
host was halted (its processes stopped, its tree kept for reading).

Golden baselines: ``capture`` packs a freshly baselined tree (without the contents of ``run/``
and ``tmp/``, which a boot starts empty) into ``<state_dir>/golden/local/<key>.tar``;
``reset_from`` unpacks it into the fresh tree and *boots* the host: it runs each script of
``<root>/etc/lab/boot.d/`` in name order with ``/bin/sh`` (environment ``SANDBOX_ROOT``,
``LAB_PORT``, ``LAB_PYTHON``), as a server's init starts its services, so the services the
baseline started run again on the host's new port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from lab.errors import InfrastructureError
from lab.model import SandboxSpec
from lab.sandboxes.base import Golden, HostHandle, Provider
from lab.sandboxes.lease import locked
from lab.util.atomic import write_text
from lab.util.processes import stop

SKELETON = ("etc", "opt", "run", "tmp", "usr/local/bin", "var/lib/lab/installed", "var/log")
RUNTIME = ("run", "tmp")  # started empty at every boot: never part of a golden image
BOOT_DIR = "etc/lab/boot.d"
BOOT_TIMEOUT = 30.0


def pack_golden(root: Path, target: Path) -> None:
    """Pack ``root`` (without the contents of its runtime directories) into the tar ``target``, atomically."""
    def runtime_left_out(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(member.name).parts
        return None if len(parts) > 1 and parts[0] in RUNTIME else member

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(root, arcname=".", filter=runtime_left_out)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unpack_golden(pack: Path, root: Path) -> None:
    """Unpack the golden ``pack`` into ``root``: every member stays inside it, modes as packed."""
    def inside(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        checked = tarfile.tar_filter(member, dest)  # refuses absolute paths and links out of the tree
        return checked.replace(mode=member.mode, deep=False)

    with tarfile.open(pack) as tar:
        tar.extractall(root, filter=inside)  # noqa: S202 - the filter keeps every member inside root


def boot(root: Path, port: int) -> None:
    """Run the host's boot scripts (``etc/lab/boot.d/*``, name order); InfrastructureError naming a failing one."""
    scripts = sorted(p for p in (root / BOOT_DIR).glob("*") if p.is_file()) if (root / BOOT_DIR).is_dir() else []
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SANDBOX_ROOT": str(root), "LAB_PORT": str(port),
           "LAB_PYTHON": sys.executable}
    for script in scripts:
        try:
            done = subprocess.run(["/bin/sh", str(script)], env=env, cwd=root, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=BOOT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise InfrastructureError(f"boot script {script} did not end within {BOOT_TIMEOUT:.0f}s") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).decode(errors="replace").strip()[-500:]
            raise InfrastructureError(f"boot script {script} failed (exit {done.returncode}): {why or 'no output'}")


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def owned_pid(root: Path, pid_file: Path) -> int | None:
    """The live process ``pid_file`` names, if its command line is in the sandbox ``root``; else None
    (no such process, or the pid was reused by a process that is not the sandbox's)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(root).encode() in cmdline else None


def services(root: Path) -> dict[str, int]:
    """The sandbox's running services: each pid file of ``run/`` (by name, in order) whose live
    process is the sandbox's (``owned_pid``)."""
    found = {f.name: owned_pid(root, f) for f in sorted((root / "run").glob("*.pid"))}
    return {name: pid for name, pid in found.items() if pid is not None}


def stop_processes(root: Path) -> dict[int, str]:
    """Stop every process of the sandbox: its ``services``, with their process groups
    (lab.util.processes.stop: no polling, a zombie counts as stopped).
    Returns how each ended (pid -> "SIGTERM", "SIGKILL" or "still running")."""
    return stop(services(root).values())


class LocalProvider(Provider):
    """Hosts as directories under ``<state_dir>/<pool>/<name>/root`` (``sandboxes/`` or ``production/``)."""

    name = "local"

    def home(self, spec: SandboxSpec) -> Path:
        """``<state_dir>/<pool>/<name>``: the host's root tree and its ``facts.json``."""
        return self.state_dir / self.pool / spec.name

    def golden_pack(self, golden: Golden) -> Path:
        """Where ``golden``'s image lives: ``<state_dir>/golden/local/<key>.tar``."""
        return self.state_dir / "golden" / self.name / f"{golden.key}.tar"

    def reset_from(self, spec: SandboxSpec, golden: Golden) -> HostHandle:
        """A fresh tree with ``golden``'s image unpacked into it and booted, when that image exists;
        else a plain ``reset`` (the handle's ``golden`` is None)."""
        handle = self.reset(spec)
        pack = self.golden_pack(golden)
        if not pack.is_file():
            return handle
        root = Path(handle.root)
        try:
            unpack_golden(pack, root)
        except (OSError, tarfile.TarError) as exc:
            raise InfrastructureError(f"golden image {pack} cannot be unpacked ({exc}); "
                                      "`lab sandbox rebaseline` makes it again") from exc
        boot(root, int(handle.facts["lab_port"]))
        return HostHandle(handle.name, handle.root, handle.facts, f"reset to golden image {golden.label}", golden.key)

    def capture(self, spec: SandboxSpec, golden: Golden) -> bool:
        """Pack the host's tree as ``golden``'s image (replacing an older one of that key).

        An image keeps files, not processes: a tree that runs services (live pids in ``run/*.pid``)
        but has no boot script to start them again is refused (InfrastructureError), so a reset
        never returns a sandbox whose baseline services are silently missing.
        """
        root = self.home(spec) / "root"
        running = list(services(root))
        if running and not any((root / BOOT_DIR).glob("*")):
            raise InfrastructureError(f"the baseline left services running ({', '.join(running)}) but installs no "
                                      f"boot script in {BOOT_DIR}/ to start them again; add one (see "
                                      "playbooks/files/baseline/etc/lab/boot.d/journal)")
        pack_golden(root, self.golden_pack(golden))
        return True

    def forget_golden(self, spec: SandboxSpec, golden: Golden) -> None:
        """Delete ``golden``'s image."""
        self.golden_pack(golden).unlink(missing_ok=True)

    def reset(self, spec: SandboxSpec) -> HostHandle:
        """Stop the host's processes and give it a fresh skeleton tree and a loopback port of its own."""
        home = self.home(spec)
        root = home / "root"
        stop_processes(root)
        if root.exists():
            shutil.rmtree(root)
        for sub in SKELETON:
            (root / sub).mkdir(parents=True, exist_ok=True)
        with locked(self.state_dir / self.pool / ".ports.lock"):
            taken = self.claimed_ports(spec)
            port = free_loopback_port()
            while port in taken:
                port = free_loopback_port()
            facts = {"lab_port": port, "reset_at": time.time()}
            write_text(home / "facts.json", json.dumps(facts))  # claims the port before the lock is released
        return self.handle(spec, root, port)

    def claimed_ports(self, spec: SandboxSpec) -> set[int]:
        """The ports the other hosts of the pool hold, so two hosts never get the same one while one is down."""
        taken: set[int] = set()
        for path in (self.state_dir / self.pool).glob("*/facts.json"):
            if path.parent.name != spec.name:
                try:
                    taken.add(int(json.loads(path.read_text())["lab_port"]))
                except (OSError, ValueError, KeyError, TypeError):
                    continue
        return taken

    def current(self, spec: SandboxSpec) -> HostHandle | None:
        """The host's handle from its ``facts.json``; None when it was never reset, was halted or destroyed."""
        facts = self.saved(spec)
        if facts is None or "halted_at" in facts:
            return None
        return self.handle(spec, self.home(spec) / "root", int(facts.get("lab_port", 0)))

    def saved(self, spec: SandboxSpec) -> dict[str, Any] | None:
        """What the last reset recorded (port, when), or None when there is no record."""
        try:
            facts = json.loads((self.home(spec) / "facts.json").read_text())
        except (OSError, ValueError):
            return None
        return facts if isinstance(facts, dict) else None

    def handle(self, spec: SandboxSpec, root: Path, port: int) -> HostHandle:
        """How Ansible and the local transport reach the host: this machine, this interpreter, its tree."""
        return HostHandle(
            spec.name,
            str(root),
            {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "sandbox_root": str(root),
                "sandbox_name": spec.name,
                "lab_port": port,
            },
        )

    def destroy(self, spec: SandboxSpec) -> None:
        """Stop the host's processes and delete its directory. Safe to repeat."""
        home = self.home(spec)
        stop_processes(home / "root")
        if home.exists():
            shutil.rmtree(home)

    def halt(self, spec: SandboxSpec) -> None:
        """Stop the host's processes and record it as halted; its tree stays until the next reset."""
        facts = self.saved(spec)
        stop_processes(self.home(spec) / "root")
        if facts is not None and "halted_at" not in facts:
            write_text(self.home(spec) / "facts.json", json.dumps({**facts, "halted_at": time.time()}))

    def describe(self, spec: SandboxSpec) -> dict[str, Any]:
        """``ready`` (or ``stopped`` once halted) with its tree, port and last reset, or ``absent``."""
        home = self.home(spec)
        facts = self.saved(spec)
        if facts is None:
            return {"state": "absent", "where": str(home)}
        return {"state": "stopped" if "halted_at" in facts else "ready", "where": str(home / "root"),
                "port": facts.get("lab_port"), "since": facts.get("reset_at")}

    def tree(self, spec: SandboxSpec) -> Path | None:
        """The host's root tree, once it has been reset."""
        return self.home(spec) / "root" if self.saved(spec) is not None else None
