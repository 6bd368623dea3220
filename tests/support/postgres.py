"""A throwaway PostgreSQL cluster for the tests (and benchmarks/store_throughput.py): initdb into a
temporary directory, listening only on a unix socket there (no TCP at all), fsync off for the
tests, stopped when the session ends.

PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user Debian's
package makes (``runuser -u postgres``). Each test gets a database of its own (``fresh_dsn``), so
xdist workers, each with its own cluster, never meet. When PostgreSQL cannot be started the
fixture skips saying why and how to get it; it never passes silently.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.config.store_location import StoreLocation
from lab.evidence.store import Store

HOW = "install it with `apt-get install postgresql` (as root; .ci/run does), then run the tests again"


@dataclass
class Cluster:
    """A running cluster: its socket directory and superuser."""

    socket_dir: Path
    user: str

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}"

    def checkpoint(self) -> None:
        """Write every changed page and the WAL out to the data directory's files now."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as db:
            db.execute("CHECKPOINT")

    def files_of(self, dsn: str) -> list[Path]:
        """The server's files that can hold what the database at ``dsn`` stored: the database's own
        directory (its tables, indexes, TOAST), the write-ahead log, and the server's log."""
        import psycopg

        with psycopg.connect(dsn) as db:
            row = db.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
        assert row is not None
        root = self.socket_dir.parent
        found = [root / "log"]
        for where in (root / "data" / "base" / str(row[0]), root / "data" / "pg_wal"):
            found += sorted(path for path in where.rglob("*") if path.is_file())
        return found

    def create_database(self) -> str:
        """A new, empty database; its DSN."""
        import psycopg

        name = f"lab_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(found[0]).parent if found else None


def as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


class ClusterUnavailable(Exception):
    """PostgreSQL cannot be started here; the message says why and how to get it."""


FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"  # the tests: nothing must survive a crash
DURABLE = ""  # the server's defaults (fsync, synchronous_commit, full_page_writes on), as a real store runs


@contextmanager
def running_cluster(durable: bool = False) -> Iterator[Cluster]:
    """A new cluster in a temporary directory, listening only on a unix socket there, for the
    duration of the ``with``; stopped and removed after. ``durable`` keeps the server's commit
    durability (benchmarks); otherwise it is turned off (tests). ClusterUnavailable when
    PostgreSQL is not installed or will not start."""
    binaries = bin_dir()
    if binaries is None:
        raise ClusterUnavailable(f"PostgreSQL's server (initdb) is not installed; {HOW}")
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise ClusterUnavailable("PostgreSQL refuses to run as root and there is no postgres user; "
                                     f"{HOW}") from None
        run_as = "postgres"
    user = run_as or pwd.getpwuid(os.geteuid()).pw_name
    root = Path(tempfile.mkdtemp(prefix="lab-pg-"))
    if run_as:
        shutil.chown(root, run_as)
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if run_as:
        shutil.chown(sockets, run_as)
    try:
        subprocess.run(as_user(run_as, [str(binaries / "initdb"), "-D", str(data), "-U", user, "-A", "trust",
                                        "--no-sync", "-E", "UTF8", "--locale=C"]),
                       check=True, capture_output=True, timeout=120)
        options = f"-c listen_addresses='' -c unix_socket_directories={sockets} -c max_connections=60 " \
                  f"{DURABLE if durable else FAST}"
        subprocess.run(as_user(run_as, [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                        str(root / "log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log = (root / "log").read_text(errors="replace")[-2000:] if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise ClusterUnavailable(f"PostgreSQL could not be started here ({exc}; {log.strip()}); {HOW}") from None
    try:
        yield Cluster(sockets, user)
    finally:
        subprocess.run(as_user(run_as, [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


def table_dumps(dsn: str) -> dict[str, str]:
    """Every table of the schema the store at ``dsn`` works in, each row as PostgreSQL writes the
    row as text, one a line."""
    import psycopg

    dumps = {}
    with psycopg.connect(dsn) as db:
        names = [str(r[0]) for r in db.execute("SELECT table_name FROM information_schema.tables "
                                               "WHERE table_schema = current_schema() ORDER BY 1")]
        for name in names:
            row = db.execute(f'SELECT string_agg(t::text, chr(10)) FROM "{name}" t').fetchone()
            dumps[name] = str(row[0] or "") if row else ""
    return dumps


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One cluster per test process (per xdist worker), started on first use; the test is skipped,
    saying why and how to get PostgreSQL, when it cannot start."""
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install 'lab[postgresql]'")
    with ExitStack() as stack:
        try:
            cluster = stack.enter_context(running_cluster())
        except ClusterUnavailable as exc:
            pytest.skip(str(exc))
        yield cluster


@dataclass
class Backend:
    """Where a contract test's store lives: ``location`` to open it (``Store(backend.location)``)."""

    name: str
    location: StoreLocation
    cluster: Cluster | None = None
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        """The store, opened anew (closed at the test's end)."""
        store = Store(self.location)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each contract test twice: on an SQLite file, and on an empty database of the PostgreSQL cluster."""
    if request.param == "sqlite":
        backend = Backend("sqlite", StoreLocation(path=tmp_path / "lab.sqlite3"))
    else:
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        backend = Backend("postgresql", StoreLocation(dsn=cluster.create_database()), cluster)
    yield backend
    for store in backend.opened:
        store.close()
