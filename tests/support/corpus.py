"""Bad-input cases as data (``tests/corpus/bad_input/NNN-name.yml``): the change to a copy of the
default lab, the command, the exit code and a fragment of the message it must print.

A case file holds ``about`` (what it tries), ``edits`` (applied in order, each naming a ``file``
relative to the lab and one of: ``replace``/``with`` (the text must be there), ``write`` (text),
``append`` (text), ``bytes`` (hex), ``pad`` (that many bytes of YAML comment appended), ``symlink``
(target), ``fifo``, ``sql`` (statements run on an SQLite file), ``truncate`` (bytes kept),
``chmod`` (mode)), optional ``before`` (lab commands run first, each must exit 0), ``command``
(``{lab}`` in it is the lab's directory), ``exit`` and ``message``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bad_input"


def load_case(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return data


def apply_edit(root: Path, edit: dict[str, Any]) -> None:
    """Apply one edit of a case to the lab at ``root``."""
    target = root / edit["file"]
    target.parent.mkdir(parents=True, exist_ok=True)
    if "replace" in edit:
        text = target.read_text(encoding="utf-8")
        assert edit["replace"] in text, f"{edit['file']} does not hold {edit['replace']!r}: the case is stale"
        target.write_text(text.replace(edit["replace"], edit["with"], 1), encoding="utf-8")
    elif "write" in edit:
        target.write_text(edit["write"], encoding="utf-8")
    elif "append" in edit:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(edit["append"])
    elif "bytes" in edit:
        target.write_bytes(bytes.fromhex(edit["bytes"]))
    elif "pad" in edit:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write("# " + "x" * int(edit["pad"]) + "\n")
    elif "symlink" in edit:
        if target.exists() or target.is_symlink():
            target.unlink() if not target.is_dir() or target.is_symlink() else os.rename(target, f"{target}.moved")
        target.symlink_to(edit["symlink"])
    elif "fifo" in edit:
        if target.exists():
            target.unlink()
        os.mkfifo(target)
    elif "sql" in edit:
        with closing(sqlite3.connect(target, isolation_level=None)) as db:
            for statement in edit["sql"]:
                db.execute(statement)
    elif "truncate" in edit:
        with closing(sqlite3.connect(target, isolation_level=None)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.truncate(target, int(edit["truncate"]))
    elif "chmod" in edit:
        target.chmod(int(edit["chmod"]))
    else:
        raise AssertionError(f"unknown edit {edit}")


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with what it is: a file's sha256, a link's target, or a directory."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[key] = "dir"
            elif path.is_file():
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[key] = "special"
    return found


Runner = Callable[..., Any]
