"""The store recognises itself before lab touches it.

A lab store carries SQLite's ``application_id`` (``APPLICATION_ID``) and its format in
``user_version``. ``inspect_store`` reads only the file's 100-byte header and, for stores made
before the marker, the table names (read-only), and refuses with ConfigError (exit 2, saying what
to do) a directory, garbage, a truncated file, another application's SQLite file, a store of a
newer lab, or a location lab cannot write. It never modifies what it refuses.

A PostgreSQL store is recognised by its marker table ``lab_store`` (the same application id and
store format, one row) in the schema lab works in: ``inspect_postgres`` refuses, reading only, a
database whose tables are another application's, another marker, or a newer lab's store.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from lab.errors import ConfigError
from lab.evidence.db import POSTGRESQL, Connection
from lab.evidence.migrations import applied, registered, tables

APPLICATION_ID = 0x4C616231  # "Lab1"
STORE_FORMAT = 1  # PRAGMA user_version of a store this lab writes
HEADER = b"SQLite format 3\x00"
LAB_TABLES = frozenset({"schema_steps", "builds", "campaigns"})  # what a pre-marker lab store always has
MOVE_ASIDE = "move it aside (or set state_dir in lab.yml to another directory) and lab starts a new store"


def inspect_store(path: Path) -> bool:
    """Whether ``path`` holds a lab store (True) or nothing yet (False: absent or empty);
    ConfigError for anything lab must not open."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        writable_parent(path)
        return False
    except OSError as exc:
        raise ConfigError(f"cannot open the store: {exc.strerror}; check the state directory",
                          source=str(path)) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"the store is a directory, not a file; {MOVE_ASIDE}", source=str(path))
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"the store is not a regular file (a device, pipe or socket); {MOVE_ASIDE}", source=str(path))
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError("the store (or its directory) is read-only for this user; run lab as the lab's owner or "
                          "make the state directory writable", source=str(path))
    if info.st_size == 0:
        return False
    with open(path, "rb") as handle:
        header = handle.read(100)
    if not header.startswith(HEADER) or len(header) < 100:
        raise ConfigError(f"not a lab store: the file is not an SQLite database (damaged or something else); "
                          f"restore it from a backup, or {MOVE_ASIDE}", source=str(path))
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid_count = header[24:28] == header[92:96]  # the in-header size is valid when these counters agree
    if valid_count and pages and info.st_size < pages * page_size:
        raise ConfigError(f"the store is truncated ({info.st_size:,} bytes of {pages * page_size:,}); restore it "
                          f"from a backup, or {MOVE_ASIDE}", source=str(path))
    application = int.from_bytes(header[68:72], "big")
    user_version = int.from_bytes(header[60:64], "big")
    if application not in (0, APPLICATION_ID):
        raise ConfigError(f"not a lab store: this SQLite file belongs to another application (application_id "
                          f"0x{application:08x}); lab never changes it. Point state_dir elsewhere", source=str(path))
    if application == APPLICATION_ID and user_version > STORE_FORMAT:
        raise ConfigError(f"the store was written by a newer lab (store format {user_version}, this lab reads up to "
                          f"{STORE_FORMAT}); upgrade lab to open it", source=str(path))
    names, steps = contents(path)
    if application == 0 and not LAB_TABLES & names:
        raise ConfigError("not a lab store: an SQLite database of another application (none of lab's tables); lab "
                          "never changes it. Point state_dir elsewhere, or move the file aside", source=str(path))
    newer = newer_features(steps, {s.feature: len(s.steps) for s in registered()})
    if newer is not None:
        raise ConfigError(f"the store was written by a newer lab ({newer}); upgrade lab to open it", source=str(path))
    return True


def contents(path: Path) -> tuple[set[str], dict[str, int]]:
    """The table names of the SQLite file at ``path`` and its migration steps per feature, read
    without writing anything (immutable when no WAL file is beside it, so no -wal/-shm is made)."""
    mode = "ro" if Path(f"{path}-wal").exists() else "ro&immutable=1"
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode={mode}", uri=True, timeout=30)
        try:
            names = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return names, applied(db)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"the store cannot be read ({exc}); restore it from a backup, or {MOVE_ASIDE}",
                          source=str(path)) from None


def writable_parent(path: Path) -> None:
    """The nearest existing directory above ``path`` must be writable, so the store can be made there."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"cannot make the store: {parent} is not a directory; fix state_dir in lab.yml",
                                  source=str(path))
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"cannot make the store: {parent} is read-only for this user; make it writable or "
                                  "set state_dir in lab.yml to a writable directory", source=str(path))
            return


def newer_features(held: dict[str, int], known: dict[str, int]) -> str | None:
    """A feature the store holds more migration steps of than this lab knows, in words; None if none."""
    for feature, steps in sorted(held.items()):
        if feature in known and steps > known[feature]:
            return f"{feature} at step {steps} (this lab knows {known[feature]})"
    return None


PG_MARKER = "lab_store"  # the PostgreSQL store's marker table: (application_id, format), one row


def inspect_postgres(db: Connection, shown: str) -> bool:
    """Whether the PostgreSQL schema ``db`` works in holds a lab store (True) or nothing yet (False:
    no tables); ConfigError, reading only, for another application's tables, another marker, or a
    store of a newer lab. ``shown`` names the store (its DSN redacted)."""
    names = tables(db, POSTGRESQL)
    if not names:
        return False
    elsewhere = "point store (or $LAB_STORE) at an empty database or schema, and lab starts a new store there"
    if PG_MARKER not in names:
        listed = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        raise ConfigError(f"not a lab store: the database holds tables of another application ({listed}) and no "
                          f"{PG_MARKER} marker; lab never changes it. {elsewhere.capitalize()}", source=shown)
    row = db.execute(f"SELECT application_id, format FROM {PG_MARKER}").fetchone()  # noqa: S608 - a constant name
    if row is None or int(row[0]) != APPLICATION_ID:
        found = "no row" if row is None else f"application_id 0x{int(row[0]):08x}"
        raise ConfigError(f"not a lab store: its {PG_MARKER} marker holds {found}; lab never changes it. {elsewhere}",
                          source=shown)
    if int(row[1]) > STORE_FORMAT:
        raise ConfigError(f"the store was written by a newer lab (store format {int(row[1])}, this lab reads up to "
                          f"{STORE_FORMAT}); upgrade lab to open it", source=shown)
    newer = newer_features(applied(db, POSTGRESQL), {s.feature: len(s.steps) for s in registered()})
    if newer is not None:
        raise ConfigError(f"the store was written by a newer lab ({newer}); upgrade lab to open it", source=shown)
    return True
