"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    write_chunks(path, (data,), mode)


def write_chunks(path: Path, chunks: Iterable[bytes], mode: int = 0o644) -> None:
    """Write ``chunks`` one after another to ``path`` as ``write_bytes`` does: when producing them
    raises, the temporary file goes and ``path`` stays as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write UTF-8 text atomically (see ``write_bytes``)."""
    write_bytes(path, text.encode("utf-8"), mode)


def copy_hashed(source: Path, directory: Path, name_for: Callable[[str], str], mode: int = 0o644) -> tuple[Path, str]:
    """Copy ``source`` into ``directory`` atomically under the name ``name_for(sha256)``, reading it once.

    Returns the copy's path and its hex sha256: the digest of exactly the bytes copied, so a source
    changing meanwhile cannot give a copy and a digest that disagree.
    """
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{source.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle, source.open("rb") as reading:
            for chunk in iter(lambda: reading.read(1 << 20), b""):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        path = directory / name_for(digest.hexdigest())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, digest.hexdigest()
