"""Stopping a local host's processes: through pidfds, with their process groups, zombies counted as
stopped, strangers left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.sandboxes.local import stop_processes
from lab.util.processes import group_of

# A daemon in its own session (as setsid makes one) with a worker in its group that ignores
# SIGTERM; both print their pids when they are ready.
DAEMON = r"""
import os, signal, sys, time
root = sys.argv[1]
worker = os.fork()
if worker == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.write(1, b"%d\n" % os.getpid())  # one write each: the two share the pipe
    time.sleep(300)
    os._exit(0)
os.write(1, b"%d\n" % os.getpid())
time.sleep(300)
"""


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie or a vanished pid is not alive)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "run").mkdir()
    return tmp_path


def start_daemon(root: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(root)], stdout=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None
    pids = {int(proc.stdout.readline()), int(proc.stdout.readline())}
    worker = (pids - {proc.pid}).pop()
    (root / "run" / "app.pid").write_text(f"{proc.pid}\n")
    return proc, proc.pid, worker


def test_a_daemon_and_its_group_are_stopped_and_the_zombie_is_not_waited_out(root: Path) -> None:
    proc, daemon, worker = start_daemon(root)
    try:
        assert group_of(worker) == daemon
        outcome = stop_processes(root)
        # The daemon is this test's child: after SIGTERM it is a zombie until reaped, which polling
        # /proc took for a live process (and sent SIGKILL); the pidfd says it exited on SIGTERM.
        assert outcome == {daemon: "SIGTERM", worker: "SIGKILL"}
        assert not alive(daemon)
        assert not alive(worker)
        assert not Path(f"/proc/{daemon}").exists()  # ours, so reaped: no zombie left behind
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_pid_file_naming_a_stranger_or_a_dead_process_stops_nothing(root: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        (root / "run" / "stranger.pid").write_text(f"{stranger.pid}\n")
        (root / "run" / "gone.pid").write_text("999999999\n")
        (root / "run" / "junk.pid").write_text("not a pid\n")
        assert stop_processes(root) == {}
        assert alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_the_group_lab_runs_in_is_never_signalled(root: Path) -> None:
    """A sandbox process that did not leave lab's own process group is stopped alone."""
    proc = subprocess.Popen([sys.executable, "-c", "import os, time; os.write(1, b'up'); time.sleep(30)", str(root)],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.read(2) == b"up"  # exec'd: its command line names the sandbox
        assert group_of(proc.pid) == os.getpgrp()
        (root / "run" / "plain.pid").write_text(f"{proc.pid}\n")
        assert stop_processes(root) == {proc.pid: "SIGTERM"}
        assert alive(os.getpid())
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
