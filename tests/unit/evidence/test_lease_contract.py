"""Leases on both backends: a file lock beside SQLite, a session advisory lock in PostgreSQL.

Two controllers racing for one sandbox: one wins, the other is told who holds it and gets it once
it is let go; a holder that dies (its process killed, its PostgreSQL session terminated) lets go at once.
A holder is described in full (campaign, command, host, pid: longer than PostgreSQL's 63-byte
session name), to whoever waits (once, when the wait begins) and to whoever is refused.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from lab.config.store_location import StoreLocation
from lab.errors import InfrastructureError
from lab.evidence.leases import advisory_holder, advisory_lease, taken
from lab.evidence.postgres import connect, lock_key
from lab.sandboxes import lease as file_lease
from lab.sandboxes.lease import Waiting
from tests.support.postgres import Backend, Cluster, postgres_cluster, store_backend

__all__ = ["postgres_cluster", "store_backend"]


def hold(backend: Backend, name: str, holder: str, timeout: float,
         waiting: Waiting | None = None) -> AbstractContextManager[None]:
    """The lease as ``lab.evidence.leases.lease`` takes it on ``backend``."""
    if backend.name == "postgresql":
        return advisory_lease(backend.location, name, holder, timeout, waiting)
    assert backend.location.path is not None
    return file_lease.lease(backend.location.path.parent, name, holder, timeout, waiting)


def holder(backend: Backend, name: str) -> str | None:
    if backend.name == "postgresql":
        db = connect(backend.location)
        try:
            return advisory_holder(db, name)
        finally:
            db.close()
    assert backend.location.path is not None
    return file_lease.current_holder(backend.location.path.parent / "leases" / f"{name}.lock")


def test_two_controllers_race_for_one_sandbox_and_exactly_one_wins(store_backend: Backend) -> None:
    start, release = threading.Barrier(2), threading.Event()
    won: list[str] = []
    refused: dict[str, str] = {}

    def controller(name: str) -> None:
        start.wait()
        try:
            with hold(store_backend, "ts-sbx-01", f"campaign {name}", timeout=1.0):
                won.append(name)
                release.wait(10)
        except InfrastructureError as exc:
            refused[name] = str(exc)

    threads = [threading.Thread(target=controller, args=(n,)) for n in ("one", "two")]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(won) + len(refused) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(won) == 1 and len(refused) == 1, (won, refused)
    assert holder(store_backend, "ts-sbx-01") == f"campaign {won[0]}"
    (loser, message), = refused.items()
    assert f"sandbox ts-sbx-01 is held by campaign {won[0]}; waited 1s" in message and loser != won[0]
    release.set()
    for thread in threads:
        thread.join()
    assert holder(store_backend, "ts-sbx-01") is None
    with hold(store_backend, "ts-sbx-01", f"campaign {loser}", timeout=1.0):  # free again: the loser gets it
        assert holder(store_backend, "ts-sbx-01") == f"campaign {loser}"


def test_a_waiting_controller_gets_the_sandbox_when_the_holder_lets_go(store_backend: Backend) -> None:
    got, done = threading.Event(), threading.Event()

    def second() -> None:
        with hold(store_backend, "ts-sbx-02", "campaign second", 20):
            got.set()
            done.wait(20)

    waiter = threading.Thread(target=second)
    with hold(store_backend, "ts-sbx-02", "campaign first", timeout=1.0):
        waiter.start()
        time.sleep(0.6)
        assert not got.is_set()  # it waits while the first holds the sandbox
    assert got.wait(20)
    assert holder(store_backend, "ts-sbx-02") == "campaign second"
    done.set()
    waiter.join(20)


def test_other_sandboxes_are_not_held(store_backend: Backend) -> None:
    with hold(store_backend, "ts-sbx-01", "campaign a", 1.0), hold(store_backend, "ts-sbx-03", "campaign b", 1.0):
        assert holder(store_backend, "ts-sbx-01") == "campaign a" and holder(store_backend, "ts-sbx-03") == "campaign b"


LONG = "campaign 20261204-191502-a1f3 (lab run care-planner@2.0.0 on host lab-ci-2.care.example.org, pid 4711)"


def test_a_waiting_controller_is_told_once_who_holds_the_sandbox_in_full(store_backend: Backend) -> None:
    store_backend.open()  # the store's tables (on PostgreSQL, lease_holders: where holders are described in full)
    told: list[str | None] = []
    got = threading.Event()

    def second() -> None:
        with hold(store_backend, "ts-sbx-01", "campaign second", 20, told.append):
            got.set()

    waiter = threading.Thread(target=second)
    with hold(store_backend, "ts-sbx-01", LONG, 1.0, told.append):  # free: nothing to say
        assert told == [] and holder(store_backend, "ts-sbx-01") == LONG
        waiter.start()
        time.sleep(1.0)  # it polls five times meanwhile
        assert not got.is_set()
        with pytest.raises(InfrastructureError, match=rf"is held by {re.escape(LONG)}; waited 0s"), \
                hold(store_backend, "ts-sbx-01", "campaign third", 0.0):
            pass
    waiter.join(20)
    assert got.is_set() and told == [LONG]


@contextmanager
def holder_process(backend: Backend, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding the lease on ``name`` until it is killed."""
    if backend.name == "postgresql":
        code = ("import sys, time; from lab.config.store_location import StoreLocation; "
                "from lab.evidence.leases import advisory_lease\n"
                f"with advisory_lease(StoreLocation(dsn={backend.location.dsn!r}), {name!r}, 'campaign doomed', 5):\n"
                "    print('held', flush=True); time.sleep(600)")
    else:
        assert backend.location.path is not None
        code = ("import time; from pathlib import Path; from lab.sandboxes.lease import lease\n"
                f"with lease(Path({str(backend.location.path.parent)!r}), {name!r}, 'campaign doomed', 5):\n"
                "    print('held', flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"held\n"
        yield process
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_lease_is_freed_when_its_holder_is_killed(store_backend: Backend) -> None:
    with holder_process(store_backend, "ts-sbx-01") as process:
        assert holder(store_backend, "ts-sbx-01") == "campaign doomed"
        with pytest.raises(InfrastructureError, match="held by campaign doomed"), \
                hold(store_backend, "ts-sbx-01", "campaign next", 0.3):
            pass
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        with hold(store_backend, "ts-sbx-01", "campaign next", 10.0):
            assert holder(store_backend, "ts-sbx-01") == "campaign next"


def test_a_lease_is_freed_when_its_postgresql_session_is_terminated(postgres_cluster: Cluster) -> None:
    """PostgreSQL only (the SQLite twin is the killed holder above): the session dies, the process lives on."""
    store_backend = Backend("postgresql", StoreLocation(dsn=postgres_cluster.create_database()), postgres_cluster)
    with holder_process(store_backend, "ts-sbx-01") as process:
        admin = connect(store_backend.location)
        try:
            row = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'lab: campaign doomed'"
                                ).fetchone()
            assert row is not None
            admin.execute("SELECT pg_terminate_backend(?)", (row[0],))
        finally:
            admin.close()
        with hold(store_backend, "ts-sbx-01", "campaign next", 10.0):  # the process lives on, its lease does not
            assert process.poll() is None
            assert holder(store_backend, "ts-sbx-01") == "campaign next"


def described(backend: Backend) -> list[str]:
    """The holders lease_holders describes now (PostgreSQL)."""
    db = connect(backend.location)
    try:
        return sorted(str(r[0]) for r in db.execute("SELECT holder FROM lease_holders"))
    finally:
        db.close()


def test_a_description_is_shown_only_for_the_session_holding_the_lock(postgres_cluster: Cluster) -> None:
    """PostgreSQL only: lease_holders rows of waiting or dead sessions are never shown as the holder,
    and go; a store lab has not opened (no lease_holders) shows the session's name, cut at 63 bytes."""
    unopened = Backend("postgresql", StoreLocation(dsn=postgres_cluster.create_database()), postgres_cluster)
    with hold(unopened, "ts-sbx-01", LONG, 1.0):
        assert holder(unopened, "ts-sbx-01") == ("lab: " + LONG)[:63].removeprefix("lab: ")
    backend = Backend("postgresql", StoreLocation(dsn=postgres_cluster.create_database()), postgres_cluster)
    backend.open().close()
    with holder_process(backend, "ts-sbx-01"):  # killed (SIGKILL) on leaving: its row stays behind
        assert described(backend) == ["campaign doomed"]
    bare = connect(backend.location, "lab: campaign bare")  # will hold the lock without describing itself
    try:
        deadline = time.monotonic() + 10
        while bare.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lab: campaign doomed'"
                           ).fetchone() != (0,):  # the dead session's backend is gone
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert taken(bare, lock_key("ts-sbx-01"))
        assert holder(backend, "ts-sbx-01") == "campaign bare"  # not the dead session's row
        with pytest.raises(InfrastructureError, match="held by campaign bare; waited 0s"), \
                hold(backend, "ts-sbx-01", LONG, 0.0):  # its own row is not the holder's either
            pass
    finally:
        bare.close()
    assert described(backend) == []  # the dead row went when LONG described itself; LONG's own when it gave up
