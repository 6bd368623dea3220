"""Ending processes on this machine (Linux ``/proc``), the two ways lab needs, on one reader of
``/proc/<pid>/stat``.

``end_tree``/``kill_tree``: a child and everything it started. A check runner starts each check
in a session of its own, so killing the runner's process group leaves the checks running;
``kill_tree`` finds every descendant first (and every process in a session one of them leads),
stops them so none can fork past the search, then kills them.

``stop``: processes lab did not start itself (a sandbox's daemons, named by its pid files),
without polling: each is signalled through a pidfd and waited on. A pidfd (Linux 5.3+) names one
process for good, so a signal can never reach a process that reused the pid, and it becomes
readable the moment the process exits, whether or not its parent has reaped it yet: a zombie
counts as stopped at once (polling ``/proc/<pid>`` could not tell a zombie from a live process
and waited out its whole grace period). A process started with ``setsid`` leads its own process
group; every member of that group goes with it (a daemon's workers), but never the group lab
itself runs in.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
GRACE_S = 1.0  # stop(): after SIGTERM, before SIGKILL; and after SIGKILL, before giving up


def status_of(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, process group, session id) of ``pid``, or None when it is gone."""
    try:  # the command name may hold spaces and parentheses: the fields start after the last ")"
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[2]), int(fields[3])  # state, ppid, pgrp, session


def group_of(pid: int) -> int | None:
    """The process group of ``pid`` (None when it is gone)."""
    status = status_of(pid)
    return None if status is None else status[1]


def process_table() -> dict[int, tuple[int, int, int]]:
    """Every live process's (parent pid, process group, session id), by pid, read from /proc once."""
    table = {int(p.name): status_of(int(p.name)) for p in PROC.iterdir() if p.name.isdigit()}
    return {pid: row for pid, row in table.items() if row is not None}


def family(root: int) -> set[int]:
    """``root``'s descendants, and every process in a session led by ``root`` or a descendant."""
    known = {pid: (ppid, session) for pid, (ppid, _group, session) in process_table().items()}
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


def with_their_groups(pids: Iterable[int]) -> set[int]:
    """``pids`` and, for each that leads its own process group (as ``setsid`` makes a daemon do),
    the other members of that group; never the group of the calling process. /proc is read once,
    however many groups there are."""
    ours = os.getpgrp()
    found = set(pids)
    table = process_table()
    leaders = {pid for pid in found if pid in table and table[pid][1] == pid and pid != ours}
    return found | {pid for pid, (_ppid, group, _session) in table.items() if group in leaders}


def open_pidfds(pids: Iterable[int]) -> dict[int, int]:
    """A pidfd per pid that still exists."""
    fds = {}
    for pid in pids:
        try:
            fds[pid] = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
    return fds


def wait_exited(fds: dict[int, int], seconds: float) -> set[int]:
    """Wait up to ``seconds`` (one blocking poll at a time, woken by each exit) until every pidfd in
    ``fds`` is readable; the pids that exited (zombies included)."""
    poller = select.poll()
    by_fd = {fd: pid for pid, fd in fds.items()}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    exited: set[int] = set()
    deadline = time.monotonic() + seconds
    while len(exited) < len(by_fd):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _event in poller.poll(left * 1000):
            exited.add(by_fd[fd])
            poller.unregister(fd)
    return exited


def reap_if_ours(pids: Iterable[int]) -> None:
    """Collect the exit status of those ``pids`` that are this process's children (no zombie left)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue


def stop(pids: Iterable[int], grace: float = GRACE_S) -> dict[int, str]:
    """Stop ``pids`` and their process groups (see with_their_groups): SIGTERM, then SIGKILL for
    those still running after ``grace`` seconds. Returns how each process ended: ``"SIGTERM"``,
    ``"SIGKILL"``, or ``"still running"`` when even SIGKILL did not end it within ``grace``
    (a process stuck in the kernel)."""
    fds = open_pidfds(with_their_groups(pids))
    outcome: dict[int, str] = {}
    try:
        running = dict(fds)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for fd in running.values():
                try:
                    signal.pidfd_send_signal(fd, sig)
                except ProcessLookupError:
                    continue  # exited (or a zombie) already: the wait below sees it at once
            for pid in wait_exited(running, grace):
                outcome[pid] = sig.name
                del running[pid]
            if not running:
                break
        outcome.update({pid: "still running" for pid in running})
    finally:
        for fd in fds.values():
            os.close(fd)
    reap_if_ours(outcome)
    return outcome
