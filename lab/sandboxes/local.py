"""Provider ``local``: a host is a directory on this machine holding a root file tree.

No root privileges needed. Each host gets its own loopback port (``lab_port``) for the services
its baseline starts, so several hosts run side by side on one machine. Sandboxes live under
``<state_dir>/sandboxes/<name>``, production hosts under ``<state_dir>/production/<name>``; a
host's ``facts.json`` (its port and when it was reset) says it is up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from lab.model import SandboxSpec
from lab.sandboxes.base import HostHandle, Provider
from lab.sandboxes.lease import locked
from lab.util.atomic import write_text

SKELETON = ("etc", "opt", "run", "tmp", "usr/local/bin", "var/lib/lab/installed", "var/log")


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_processes(root: Path) -> None:
    """Stop every process of the sandbox: those named in its pid files whose command line is in it."""
    run_dir = root / "run"
    if not run_dir.is_dir():
        return
    for pid_file in run_dir.glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if str(root).encode() not in cmdline:
            continue  # the pid was reused by a process that is not ours
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            for _ in range(20):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)


class LocalProvider(Provider):
    """Hosts as directories under ``<state_dir>/<pool>/<name>/root`` (``sandboxes/`` or ``production/``)."""

    name = "local"

    def home(self, spec: SandboxSpec) -> Path:
        """``<state_dir>/<pool>/<name>``: the host's root tree and its ``facts.json``."""
        return self.state_dir / self.pool / spec.name

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
        """The host's handle from its ``facts.json``; None when it was never reset or has been destroyed."""
        facts = self.saved(spec)
        if facts is None:
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

    def describe(self, spec: SandboxSpec) -> dict[str, Any]:
        """``ready`` with its tree, port and last reset, or ``absent``."""
        home = self.home(spec)
        facts = self.saved(spec)
        if facts is None:
            return {"state": "absent", "where": str(home)}
        return {"state": "ready", "where": str(home / "root"), "port": facts.get("lab_port"),
                "since": facts.get("reset_at")}

    def tree(self, spec: SandboxSpec) -> Path | None:
        """The host's root tree, once it has been reset."""
        return self.home(spec) / "root" if self.saved(spec) is not None else None
