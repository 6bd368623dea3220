"""Use case of a new user: a small working lab to start from (``lab init``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.config.starter import write_starter


@dataclass(frozen=True)
class Initialized:
    """A starter lab written into ``directory``: the files written, its lab file."""

    directory: Path
    files: tuple[Path, ...]

    @property
    def lab_file(self) -> Path:
        return self.directory / "lab.yml"


def init(directory: Path) -> Initialized:
    """Write a small working lab into ``directory`` (created if need be): one local sandbox, the product
    ``hello`` with build 1.0.0, a suite and an agreement; ``lab build hello@1.0.0`` then ``lab run
    hello@1.0.0`` pass on it. Needs no session (there is no lab yet). ConfigError, and nothing
    written, when a file of the starter lab already exists there."""
    return Initialized(directory, tuple(write_starter(directory)))
