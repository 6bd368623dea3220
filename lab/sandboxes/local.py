"""Provider ``local``: a sandbox is a directory on this machine holding a root file tree.

No root privileges needed. Each sandbox gets its own loopback port (``lab_port``) for the
services its baseline starts, so several sandboxes run side by side on one machine.
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
from lab.sandboxes.base import SandboxHandle, SandboxProvider
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


class LocalProvider(SandboxProvider):
    """Sandboxes as directories under ``<state_dir>/sandboxes/<name>/root``."""

    name = "local"

    def home(self, spec: SandboxSpec) -> Path:
        return self.state_dir / "sandboxes" / spec.name

    def reset(self, spec: SandboxSpec) -> SandboxHandle:
        home = self.home(spec)
        root = home / "root"
        stop_processes(root)
        if root.exists():
            shutil.rmtree(root)
        for sub in SKELETON:
            (root / sub).mkdir(parents=True, exist_ok=True)
        facts = {"lab_port": free_loopback_port(), "reset_at": time.time()}
        write_text(home / "facts.json", json.dumps(facts))
        return self.handle(spec, root, facts)

    def handle(self, spec: SandboxSpec, root: Path, facts: dict[str, Any]) -> SandboxHandle:
        return SandboxHandle(
            spec.name,
            str(root),
            {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "sandbox_root": str(root),
                "sandbox_name": spec.name,
                "lab_port": facts["lab_port"],
            },
        )

    def destroy(self, spec: SandboxSpec) -> None:
        home = self.home(spec)
        stop_processes(home / "root")
        if home.exists():
            shutil.rmtree(home)

    def describe(self, spec: SandboxSpec) -> dict[str, Any]:
        home = self.home(spec)
        facts_path = home / "facts.json"
        if not facts_path.exists():
            return {"state": "absent", "where": str(home)}
        facts = json.loads(facts_path.read_text())
        return {"state": "ready", "where": str(home / "root"), "port": facts.get("lab_port"),
                "since": facts.get("reset_at")}
