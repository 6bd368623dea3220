"""Ending a process together with everything it started, on this machine (Linux ``/proc``).

A check runner starts each check in a session of its own, so killing the runner's process
group leaves the checks running; ``kill_tree`` finds every descendant first (and every process
in a session one of them leads), stops them so none can fork past the search, then kills them.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

PROC = Path("/proc")


def status_of(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of ``pid``, or None when it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[3])  # state, ppid, pgrp, session


def family(root: int) -> set[int]:
    """``root``'s descendants, and every process in a session led by ``root`` or a descendant."""
    table = {int(p.name): status_of(int(p.name)) for p in PROC.iterdir() if p.name.isdigit()}
    known = {pid: row for pid, row in table.items() if row is not None}
    found = {root}
    while True:
        more = {pid for pid, (ppid, session) in known.items() if pid not in found
                and (ppid in found or session in found)}
        if not more:
            return found - {root}
        found |= more


def send(pids: set[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and everything it started, however they detached (sessions, groups).

    Found processes are stopped (SIGSTOP) while the search repeats, so a process cannot escape
    by forking between the search and the kill; then all are killed at once."""
    stopped: set[int] = set()
    send({root}, signal.SIGSTOP)
    for _ in range(20):
        members = family(root) - stopped
        if not members:
            break
        send(members, signal.SIGSTOP)
        stopped |= members
    send(stopped | {root}, signal.SIGKILL)


def end_tree(proc: subprocess.Popen[bytes], grace: float = 1.0) -> None:
    """End ``proc`` and everything it started: SIGTERM first, so a check runner can kill the
    sessions its checks started (including ones whose leader has exited, which no search from
    here can attribute to it), then, after ``grace`` seconds, SIGKILL whatever is left."""
    members = family(proc.pid)
    try:
        proc.terminate()
        proc.wait(grace)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if proc.poll() is None:
        kill_tree(proc.pid)
    send(members, signal.SIGKILL)
