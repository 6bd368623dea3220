"""Paths a lab names stay inside the lab.

Every path lab.yml, a suite, the agreement or the inventory names (sources, artifacts, playbooks,
the baseline, the suites, state and reports directories, allowed_signers, testinfra files) is
resolved, symlinks followed, and must lie inside the lab's directory or one of the roots lab.yml
lists under ``allowed_roots:`` (a build share, say). Anything else is a ConfigError naming the
file:line, the value and where it resolved to: a build whose ``source`` climbs to ``/etc/ssh``
must never be packed and deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lab.errors import ConfigError

Kind = Literal["file", "directory", "any"]


@dataclass(frozen=True)
class Confinement:
    """The directories a lab's paths may resolve into: the lab's own (``root``) and ``extra`` roots."""

    root: Path
    extra: tuple[Path, ...] = ()

    def allows(self, path: Path) -> bool:
        """Whether the resolved ``path`` is inside the lab or an allowed root."""
        return any(path == base or path.is_relative_to(base) for base in (self.root, *self.extra))

    def resolve(self, raw: str, what: str, *, source: Path, line: int | None, base: Path | None = None,
                must_exist: Kind | None = "any") -> Path:
        """``raw`` (relative to ``base``, default the lab's root) resolved with symlinks followed.

        ConfigError naming ``source``:``line`` when it resolves outside the lab and its allowed
        roots, or (with ``must_exist``) when it is missing or not that kind of thing.
        """
        if "\0" in raw:
            raise ConfigError(f"{what} {raw!r} contains a NUL byte; write a plain path", source=str(source), line=line)
        try:
            path = ((base or self.root) / raw).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ConfigError(f"{what} {raw!r} cannot be resolved ({exc}); fix the path or the symlinks",
                              source=str(source), line=line) from None
        if not self.allows(path):
            roots = ", ".join(str(r) for r in (self.root, *self.extra))
            raise ConfigError(f"{what} {raw!r} resolves to {path}, outside the lab ({roots}); keep it inside the "
                              "lab directory, or list the directory it belongs to under allowed_roots in lab.yml",
                              source=str(source), line=line)
        if must_exist is not None:
            if not path.exists():
                raise ConfigError(f"{what} {raw!r} not found (looked for {path}); create it or fix the path",
                                  source=str(source), line=line)
            if must_exist == "file" and not path.is_file():
                raise ConfigError(f"{what} {raw!r} is not a regular file ({path}); name a file",
                                  source=str(source), line=line)
            if must_exist == "directory" and not path.is_dir():
                raise ConfigError(f"{what} {raw!r} is not a directory ({path}); name a directory",
                                  source=str(source), line=line)
        return path
