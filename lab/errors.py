"""One error tree for the whole library.

Library code raises these; only ``lab.cli`` turns them into messages and exit codes.
Every message names the bad value and where it came from (file:line where there is one),
and says what to do about it.
"""

from __future__ import annotations


class LabError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 2


class ConfigError(LabError):
    """Bad input: a configuration file, a suite, a build or a command-line value is wrong."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(f"{where}{message}")
        self.source = source
        self.line = line


class NotFoundError(ConfigError):
    """A campaign, build or sandbox the user named does not exist."""


class InfrastructureError(LabError):
    """The lab could not do its work: a sandbox is unreachable, Ansible could not run."""

    exit_code = 3


class GateBlocked(LabError):
    """The gate said no: a promotion was refused. The message carries the verdict's reasons."""

    exit_code = 1
