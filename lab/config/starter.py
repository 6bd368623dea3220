"""The starter lab ``lab init`` writes: a small lab that works as it is (one local sandbox, one
product, one suite, one agreement), shipped inside the package (``starter_lab/``) so a ``pip
install`` has it too."""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from lab.errors import ConfigError
from lab.util.atomic import write_bytes

# Files whose packaged name differs from the written one (a dotfile is not package data).
RENAMED = {"gitignore": ".gitignore"}


def starter_files() -> dict[str, bytes]:
    """The starter lab: its relative paths (as written) and their contents."""
    files: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                if child.name != "__pycache__":
                    walk(child, f"{name}/")
            else:
                files[RENAMED.get(name, name)] = child.read_bytes()

    walk(resources.files("lab.config") / "starter_lab", "")
    return dict(sorted(files.items()))


def write_starter(directory: Path) -> list[Path]:
    """Write the starter lab into ``directory`` (created if need be), named after it; return the files
    written. ConfigError, and nothing written, when any of its files already exists there."""
    files = starter_files()
    clashes = [name for name in files if (directory / name).exists()]
    if clashes:
        raise ConfigError(f"{directory / clashes[0]} already exists; `lab init` writes a new lab only into a "
                          "directory without one: give another directory, or move the existing files away")
    name = directory.resolve().name or "lab"
    written = []
    for relative, data in files.items():
        if relative == "lab.yml":
            data = data.replace(b"\nname: starter-lab\n", f"\nname: {json.dumps(name)}\n".encode())
        path = directory / relative
        write_bytes(path, data, 0o755 if data.startswith(b"#!") else 0o644)
        written.append(path)
    return written
