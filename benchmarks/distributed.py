"""What the distributed benchmarks (``orchestration``, ``rollout_workers``) share: a copy of the
default lab with N production hosts, the celery executor (a loopback redis-server, a share and a
signing key beside lab.yml, as ``tests/support/celery`` sets it up for the tests), a store on
SQLite or on a database of a PostgreSQL cluster, and zone workers started and stopped around a
block."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.checkouts import AFTER, copy_lab
from tests.support.celery import start_worker, stop_workers, use_celery
from tests.support.postgres import Cluster

ZONE = "production"
OPEN_WINDOW = datetime(2026, 12, 2, 19, tzinfo=UTC)  # a Wednesday evening: the production window is open


def open_window() -> datetime:
    return OPEN_WINDOW


def host_names(count: int) -> list[str]:
    return [f"prod-ts-{i:04d}" for i in range(1, count + 1)]


def production_lab(target: Path, hosts: int, provider: str = "local") -> Path:
    """A copy of this checkout's default lab at ``target`` with ``hosts`` production hosts of
    ``provider`` (``local``: directories lab provisions; ``static``: hosts outside the lab, taken
    as they are); its lab.yml."""
    lab_yml = copy_lab(AFTER, target, ZONE, host_names(hosts))
    if provider != "local":
        inventory = target / "inventory" / "hosts.yml"
        lines = inventory.read_text().splitlines()
        group = lines.index(f"    {ZONE}:")
        at = next(i for i in range(group, len(lines)) if lines[i].strip() == "lab_provider: local")
        lines[at] = lines[at].replace("local", provider)
        inventory.write_text("\n".join(lines) + "\n")
    return lab_yml


def celery_and_store(lab_yml: Path, broker: str, cluster: Cluster | None) -> str:
    """Put the celery executor (``broker``) in ``lab_yml``, and a new database of ``cluster`` as its
    store when given (else the default SQLite file); the store's backend name."""
    use_celery(lab_yml, broker)
    if cluster is None:
        return "sqlite"
    with lab_yml.open("a") as handle:
        handle.write(f"store: {cluster.create_database()}\n")
    return "postgresql"


@contextmanager
def workers(lab_yml: Path, count: int, command: list[str] | None = None,
            preexec: Callable[[], None] | None = None) -> Iterator[Path]:
    """``count`` zone workers of ``lab_yml`` (``lab worker --queue production``, or ``command``)
    running for the block; the directory of their logs."""
    logs = Path(tempfile.mkdtemp(prefix="lab-bench-workers-"))
    started = []
    try:
        for index in range(count):
            started.append(start_worker(lab_yml, ZONE, logs / f"worker-{index}.log", {"PYTHONPATH": str(AFTER)},
                                        command=command, preexec=preexec))
        yield logs
    finally:
        stop_workers(started)
