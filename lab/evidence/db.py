"""The connection seam: what lab's record modules may ask of a store connection, on SQLite or PostgreSQL.

Record modules write their SQL once, in the dialect both backends accept: ``?`` placeholders,
``INSERT ... ON CONFLICT ... DO NOTHING`` / ``DO UPDATE``, ``RETURNING``, ``CASE`` rather than
booleans summed. ``Connection`` is the part of a DB-API connection they use: ``sqlite3.Connection``
is one as it is; ``lab.evidence.postgres`` wraps a psycopg connection into one (``?`` becomes
``%s``, rows are read by name or by position as ``sqlite3.Row`` allows). What differs beyond that
(DDL, transactions, the store's marker) is the backend's: ``lab.evidence.backends``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class Row(Protocol):
    """One row: by column name (``row["id"]``), by position (``row[0]``), unpacked, or as ``dict(row)``."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> list[str]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...  # a Row, or None after the last one
    def fetchall(self) -> list[Any]: ...  # Rows
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A store connection as record modules use it, inside ``Store.transaction()`` or ``Store.reading()``."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...
    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


def postgres_placeholders(sql: str) -> str:
    """``sql`` with each ``?`` placeholder as psycopg's ``%s`` and each literal ``%`` doubled; text
    inside quotes ('...', "...") and ``$$`` bodies is left as it is but for the doubling."""
    out: list[str] = []
    quote: str | None = None
    index = 0
    while index < len(sql):
        char = sql[index]
        if quote is None and sql.startswith("$$", index):
            end = sql.find("$$", index + 2)
            end = len(sql) if end < 0 else end + 2
            out.append(sql[index:end].replace("%", "%%"))
            index = end
            continue
        if char == "%":
            out.append("%%")
        elif quote is not None:
            out.append(char)
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append(char)
        index += 1
    return "".join(out)
