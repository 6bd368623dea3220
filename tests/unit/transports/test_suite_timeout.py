"""A suite that outlives its budget leaves nothing running: the runner and every check's own
session (checks run in sessions of their own), even a daemon a check detached."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lab.checks.delivery import run_runner
from lab.transports.local import LocalTransport


def running(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def hung_manifest(marker: str) -> dict[str, object]:
    """A check that ends but leaves a child in a process group of its own (still in the check's
    session), then a hung check whose shell also has a background child."""
    regroup = (f"import os, time\nif os.fork() == 0:\n    os.setpgid(0, 0)\n    os.closerange(0, 3)\n"
               f"    time.sleep({marker}3)  # sleep {marker}")
    return {"format": 1, "suite": "hung", "root": "/", "checks": [
        {"id": "regrouped", "type": "command", "timeout": 120, "retries": 0,
         "params": {"command": [sys.executable, "-c", regroup]}},
        {"id": "background", "type": "command", "timeout": 120, "retries": 0,
         "params": {"command": ["sh", "-c", f"sleep {marker}1 & sleep {marker}2"]}},
    ]}


def test_a_suite_timeout_kills_the_runner_and_every_check_session_locally() -> None:
    marker = f"31{os.getpid() % 1000:03d}"
    transport = LocalTransport("sbx", {"ansible_python_interpreter": sys.executable})
    transport.open()
    started = time.monotonic()
    result = run_runner(transport, hung_manifest(marker), timeout=2)
    assert result.timed_out, result  # the transport gives up first: the runner's own deadline is RUNNER_GRACE later
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 5
    while running(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(f"sleep {marker}") == []


def test_the_runner_stops_its_checks_at_its_own_deadline_whoever_started_it(tmp_path: Path) -> None:
    """Over SSH the lab cannot kill what runs on the sandbox: the runner obeys the manifest's deadline."""
    import json
    import subprocess

    from lab.checks.delivery import PYTHON_BOOTSTRAP, python_runner_payload

    marker = f"32{os.getpid() % 1000:03d}"
    manifest = dict(hung_manifest(marker), deadline=1.5)
    proc = subprocess.Popen([sys.executable, "-c", PYTHON_BOOTSTRAP], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = proc.communicate(python_runner_payload(manifest), timeout=30)  # nobody kills it: it ends itself
    assert proc.returncode == 124
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["regrouped"]  # then the hung one
    deadline = time.monotonic() + 5
    while running(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(f"sleep {marker}") == []
