"""What every transport offers: run a command on a sandbox, and run the check runner there.

A transport is looked up by the inventory's ``ansible_connection`` and imported lazily, so a
missing optional package becomes a clear "install lab[winrm]" instead of an ImportError.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lab.errors import ConfigError
from lab.transports.winrm.settings import cert_validation


@dataclass(frozen=True)
class CommandResult:
    """What a command on a sandbox gave back."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_s: float


# Reads "<n>\n<runner source, n bytes><manifest JSON>" from stdin and runs the runner on the
# manifest: one process, one round trip, and nothing written to the sandbox's disk.
PYTHON_BOOTSTRAP = (
    "import sys;d=sys.stdin.buffer.read();h,_,r=d.partition(b'\\n');n=int(h);"
    "g={'__name__':'lab_runner'};exec(compile(r[:n],'lab-runner.py','exec'),g);"
    "sys.exit(g['main'](r[n:]))"
)


def runner_source() -> bytes:
    """The bytes of ``lab/checks/runner.py`` as shipped in the package."""
    return resources.files("lab.checks").joinpath("runner.py").read_bytes()


def python_runner_payload(manifest: dict[str, Any]) -> bytes:
    """The stdin that PYTHON_BOOTSTRAP expects for ``manifest``."""
    source = runner_source()
    body = json.dumps(manifest, sort_keys=True).encode("utf-8")
    return str(len(source)).encode("ascii") + b"\n" + source + body


class Transport(ABC):
    """One session to one sandbox, opened once per campaign and reused for every suite."""

    name: str = ""

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

    def run_runner(self, manifest: dict[str, Any], timeout: float) -> CommandResult:
        """Send the runner and ``manifest`` in one round trip; return its JSON-lines output."""
        interpreter = str(self.variables.get("ansible_python_interpreter") or "python3")
        return self.execute([interpreter, "-c", PYTHON_BOOTSTRAP], python_runner_payload(manifest), timeout)

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


def security_notes(host: str, variables: Mapping[str, Any]) -> list[str]:
    """The sentences a report must show about ``host`` because its connection settings weaken
    security (today: WinRM's TLS certificate validation turned off). This is what transports
    promise the reports: they show these sentences as they are and read no transport setting."""
    if cert_validation(variables) == "ignore":
        return [f"TLS certificate validation was turned OFF for {host} (ansible_winrm_server_cert_validation: ignore)"]
    return []
