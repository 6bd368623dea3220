"""Leases: one campaign at a time holds a sandbox; and the plain lock providers serialise their state with.

A lease is an advisory ``flock`` on a file per sandbox. The kernel drops it when the holder
dies, however it dies, so a crashed campaign never blocks a sandbox forever. The file holds the
holder's own description (``this_process``: what it runs, on which host, its pid), so a process
that has to wait is told who it waits for (``Waiting``), once, when its wait begins.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.errors import InfrastructureError

Waiting = Callable[[str | None], None]
"""Told once, when a lease has to be waited for: who holds it now (None if it was let go meanwhile)."""


def this_process(command: str) -> str:
    """What ``command`` (say ``lab run care-planner@2.0.0``) is as a lease holder: the command, this
    host and this process, e.g. ``lab run care-planner@2.0.0 on host lab-ci-2, pid 4711``."""
    return f"{command} on host {socket.gethostname()}, pid {os.getpid()}"


@contextmanager
def lease(state_dir: Path, sandbox: str, holder: str, timeout: float,
          waiting: Waiting | None = None) -> Iterator[None]:
    """Hold ``sandbox`` for ``holder``; wait up to ``timeout`` seconds for another holder to let go,
    telling ``waiting`` who that is when the wait begins."""
    lock_dir = state_dir / "leases"
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{sandbox}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        wait_to_take(sandbox, take, lambda: current_holder(path), timeout, waiting)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"holder": holder, "pid": os.getpid(), "since": time.time()}).encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


POLL_S = 0.2  # how often a waiting process tries a lease again


def wait_to_take(name: str, take: Callable[[], bool], holder: Callable[[], str | None], timeout: float,
                 waiting: Waiting | None) -> None:
    """Try ``take`` every POLL_S seconds until it succeeds, telling ``waiting`` who holds the lease
    (``holder()``) once, when the wait begins; InfrastructureError naming the holder when ``take``
    still fails after ``timeout`` seconds. Shared by every kind of lease, so all wait alike."""
    deadline = time.monotonic() + timeout
    while not take():
        if time.monotonic() >= deadline:
            raise InfrastructureError(held_by(name, holder(), timeout))
        if waiting is not None:
            waiting(holder())
            waiting = None  # once
        time.sleep(POLL_S)


def held_by(sandbox: str, holder: str | None, timeout: float) -> str:
    """The message for a lease on ``sandbox`` that ``holder`` kept for all of ``timeout`` seconds."""
    return (f"sandbox {sandbox} is held by {holder or 'another campaign'}; waited {timeout:.0f}s. Wait for it to "
            "finish, or wait longer: timeouts: lease: (seconds) in lab.yml; the lab sandbox commands also take "
            "--lease-timeout")


def waiting_for(sandbox: str, holder: str | None, timeout: float) -> str:
    """What a process that has to wait for ``sandbox`` says, once: who holds it, and how long it waits."""
    return f"sandbox {sandbox} is held by {holder or 'another campaign'}; waiting (up to {timeout:.0f}s)"


def current_holder(path: Path) -> str | None:
    """Who holds the lease at ``path`` as its holder wrote it, or None if it is free."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it
        except BlockingIOError:
            pass
        raw = os.read(fd, 4096)
        try:
            return str(json.loads(raw)["holder"])
        except (ValueError, KeyError):
            return "another campaign"
    finally:
        os.close(fd)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if needed) for the duration of the block.

    Threads of one process exclude each other too: each call opens the file anew.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
