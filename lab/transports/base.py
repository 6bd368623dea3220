"""What every transport offers: run a command with stdin on a sandbox, and say which check runner
the sandbox runs (what to send it is ``lab.checks.delivery``'s business).

A transport is looked up by the inventory's ``ansible_connection`` and imported lazily, so a
missing optional package becomes a clear "install lab[winrm]" instead of an ImportError.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lab.errors import ConfigError


@dataclass(frozen=True)
class CommandResult:
    """What a command on a sandbox gave back."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_s: float


@dataclass(frozen=True)
class RunnerKind:
    """Which check runner a sandbox runs: ``python`` (runner.py, with ``interpreter``) or
    ``powershell`` (runner.ps1; ``interpreter`` is not used)."""

    language: Literal["python", "powershell"]
    interpreter: str


class Transport(ABC):
    """One session to one sandbox, opened once per campaign and reused for every suite."""

    name: str = ""
    # Whether the Python runner is worth sending precompiled as well as in source (lab.checks.delivery):
    # it saves the sandbox compiling it, at the cost of a larger stdin.
    precompiled_runner: bool = True

    def __init__(self, host: str, variables: Mapping[str, Any]) -> None:
        """``variables`` are the host's inventory variables plus the provider's own facts."""
        self.host = host
        self.variables = dict(variables)

    @abstractmethod
    def open(self) -> None:
        """Connect (or check that the sandbox can be reached); raise InfrastructureError if not."""

    @abstractmethod
    def execute(self, argv: list[str], stdin: bytes, timeout: float) -> CommandResult:
        """Run ``argv`` on the sandbox with ``stdin``; kill it after ``timeout`` seconds."""

    def runner(self) -> RunnerKind:
        """The check runner this sandbox runs: Python with ``ansible_python_interpreter`` (``python3``)."""
        return RunnerKind("python", str(self.variables.get("ansible_python_interpreter") or "python3"))

    def close(self) -> None:  # noqa: B027 - most transports hold nothing to close
        """Release the session. Safe to call twice."""

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


TRANSPORTS = {
    "local": ("lab.transports.local", "LocalTransport", None),
    "ssh": ("lab.transports.ssh", "SSHTransport", None),
    "winrm": ("lab.transports.winrm.transport", "WinRMTransport", "winrm"),
}


def transport_class(connection: str, *, host: str) -> type[Transport]:
    """The transport class for an inventory ``ansible_connection`` value."""
    entry = TRANSPORTS.get(connection)
    if entry is None:
        known = ", ".join(sorted(TRANSPORTS))
        raise ConfigError(
            f"host {host}: ansible_connection {connection!r} has no lab transport; use one of: {known}"
        )
    module_name, class_name, extra = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise ConfigError(f"host {host}: transport {connection!r} is not available: {exc}") from exc
        raise ConfigError(
            f"host {host}: transport {connection!r} needs an optional package ({exc.name}): "
            f"install it with `pip install 'lab[{extra}]'`"
        ) from exc
    cls: type[Transport] = getattr(module, class_name)
    return cls


def transport_for(host: str, variables: dict[str, Any]) -> Transport:
    """A (not yet opened) transport to ``host``, chosen by its ``ansible_connection`` (default ssh)."""
    return transport_class(str(variables.get("ansible_connection", "ssh")), host=host)(host, variables)
