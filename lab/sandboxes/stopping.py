"""Stop a host's processes without polling: signal each through a pidfd and wait on the pidfds.

A pidfd (Linux 5.3+) names one process for good, so a signal can never reach a process that
reused the pid, and it becomes readable the moment the process exits, whether or not its parent
has reaped it yet: a zombie counts as stopped at once (polling ``/proc/<pid>`` could not tell a
zombie from a live process and waited out its whole grace period). A process started with
``setsid`` leads its own process group; every member of that group goes with it (a daemon's
workers), but never the group lab itself runs in.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Iterable
from pathlib import Path

GRACE_S = 1.0  # after SIGTERM, before SIGKILL; and after SIGKILL, before giving up


def group_of(pid: int) -> int | None:
    """The process group of ``pid`` from /proc (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[2])


def group_members(pgid: int) -> set[int]:
    """Every process in process group ``pgid``, read from /proc once."""
    members = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and group_of(int(entry)) == pgid:
            members.add(int(entry))
    return members


def with_their_groups(pids: Iterable[int]) -> set[int]:
    """``pids`` and, for each that leads its own process group (as ``setsid`` makes a daemon do),
    the other members of that group; never the group of the calling process."""
    ours = os.getpgrp()
    found = set(pids)
    for pid in list(found):
        pgid = group_of(pid)
        if pgid == pid and pgid != ours:
            found |= group_members(pgid)
    return found


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
