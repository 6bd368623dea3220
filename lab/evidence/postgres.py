"""PostgreSQL under the connection seam: a psycopg 3 connection that speaks ``lab.evidence.db.Connection``.

psycopg is imported only when a PostgreSQL store is opened (``pip install 'lab[postgresql]'``).
Every message that could carry the DSN goes through ``StoreLocation.scrub`` first: the password
never reaches an error, a log or a report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lab.config.store_location import StoreLocation
from lab.errors import ConfigError, InfrastructureError
from lab.evidence.db import postgres_placeholders

if TYPE_CHECKING:
    import psycopg

APPLICATION_ID = 0x4C616231  # "Lab1", as SQLite's application_id of a lab store
WRITER_LOCK = (APPLICATION_ID, 1)  # pg_advisory_xact_lock(int4, int4): one writer at a time, like BEGIN IMMEDIATE
CONNECT_TIMEOUT = 10


class PgRow:
    """A row read by column name or by position, unpacked, or ``dict(row)``: what ``sqlite3.Row`` offers."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: int | str, /) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, PgRow | tuple) else other)

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))!r})"


def pg_rows(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], PgRow]:
    """psycopg's row factory for ``PgRow``: the column index is made once per result."""
    index = {column.name: position for position, column in enumerate(cursor.description or ())}
    return lambda values: PgRow(index, values)


class PgCursor:
    """The result of one statement (``lab.evidence.db.Cursor``)."""

    def __init__(self, cursor: psycopg.Cursor[PgRow]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def fetchone(self) -> PgRow | None:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[PgRow]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[PgRow]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection in autocommit mode (transactions are begun and committed explicitly, as
    on SQLite), with ``?`` placeholders and ``PgRow`` rows."""

    def __init__(self, raw: psycopg.Connection[PgRow], location: StoreLocation) -> None:
        self.raw = raw
        self.location = location
        self._translated: dict[str, str] = {}

    def _sql(self, sql: str) -> str:
        found = self._translated.get(sql)
        if found is None:
            found = self._translated[sql] = postgres_placeholders(sql)
        return found

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        with self.location_errors():
            if not parameters:  # no placeholders: sent as it is (a script of several statements allowed)
                return PgCursor(self.raw.execute(sql, prepare=False))
            return PgCursor(self.raw.execute(self._sql(sql), tuple(parameters)))

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> PgCursor:
        with self.location_errors():
            cursor = self.raw.cursor()
            cursor.executemany(self._sql(sql), [tuple(p) for p in seq_of_parameters])
            return PgCursor(cursor)

    @property
    def in_transaction(self) -> bool:
        import psycopg.pq

        return bool(self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    def close(self) -> None:
        self.raw.close()

    def location_errors(self) -> _Scrubbed:
        return _Scrubbed(self.location)


class StoreError(InfrastructureError):
    """A database error from PostgreSQL, its message scrubbed of the DSN's secrets (the driver's
    exception is not chained: its text could name them)."""


class _Scrubbed:
    """Re-raises psycopg's errors as ``StoreError`` with the DSN's secrets scrubbed from the message."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        import psycopg

        if isinstance(error, psycopg.Error):
            raise StoreError(self.location.scrub(str(error).strip())) from None


def psycopg_module() -> Any:
    """psycopg, or ConfigError saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError("a PostgreSQL store needs psycopg 3: pip install 'lab[postgresql]' (or unset LAB_STORE / "
                          "remove store: from lab.yml for the embedded SQLite store)") from None
    return psycopg


def connect(location: StoreLocation, application_name: str = "lab store") -> PgConnection:
    """A new autocommit connection to the PostgreSQL store at ``location``, the session named
    ``application_name`` (up to 63 characters); InfrastructureError (the DSN redacted) when the
    server cannot be reached or refuses us."""
    psycopg = psycopg_module()
    assert location.dsn is not None
    try:
        raw = psycopg.connect(location.dsn, autocommit=True, row_factory=pg_rows, connect_timeout=CONNECT_TIMEOUT,
                              application_name=application_name[:63])
    except psycopg.Error as exc:
        raise InfrastructureError(f"cannot connect to the PostgreSQL store {location.shown}: "
                                  f"{location.scrub(str(exc).strip())}; check that the server runs and the DSN, "
                                  "passfile or $PGPASSWORD are right") from None
    return PgConnection(raw, location)


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` (sha256, so two names collide only by chance 2**-64)."""
    return int.from_bytes(hashlib.sha256(f"lab lease {name}".encode()).digest()[:8], "big", signed=True)
