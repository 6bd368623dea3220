"""One command in an open WinRS shell: Command, stdin in chunks (Send), Receive until done, Signal.

The WS-Management faults a host answers with are sorted here into three kinds:

- ``w:TimedOut`` (2150858793) while receiving: normal, the command is still running; receive again.
- the shell is gone (InvalidSelectors 2150858843 whose message names our ShellId: dropped,
  rebooted, idled out), the host has no operations left in it (ERROR_WSMAN_QUOTA_MAX_OPERATIONS),
  or the connection broke: :class:`ShellLost`; the transport retries once on a fresh shell.
- the command is gone but the shell is not: a real host answers a CommandId it no longer knows
  with the same code 2150858843, but its message names no ShellId (it speaks of a "command
  identifier"). That is :class:`CommandVanished`, an InfrastructureError: a rerun on a fresh
  shell would not explain it, so there is none.
- anything else: an :class:`~lab.errors.InfrastructureError`.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import requests
from winrm.exceptions import WinRMError, WinRMOperationTimeoutError, WinRMTransportError, WSManFaultError
from winrm.protocol import Protocol

from lab.errors import InfrastructureError
from lab.transports.base import CommandResult
from lab.transports.winrm.settings import STDIN_CHUNK

log = logging.getLogger(__name__)

SHELL_NOT_FOUND = 2150858843  # w:InvalidSelectors: an unknown ShellId, or an unknown CommandId in a live shell
SHELL_QUOTA = 2150859173  # w:QuotaLimit: MaxShellsPerUser reached
OPERATION_QUOTA = 0x803381A6  # MSFT_WmiError: MaxConcurrentOperationsPerUser used up in this shell
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout)
WSMAN_FAULT_MESSAGE = "{http://schemas.microsoft.com/wbem/wsman/1/wsmanfault}Message"

T = TypeVar("T")


class ShellLost(Exception):
    """The shell (or the connection to the host) is gone; a fresh shell may succeed."""


class CommandVanished(InfrastructureError):
    """The host no longer knows the command, though the shell is still there."""


def fault_message(exc: WSManFaultError) -> str:
    """The text of the fault's ``f:WSManFault/f:Message`` (provider faults included); "" if it has none."""
    try:
        # the same envelope pywinrm has just parsed with ElementTree (expat expands no external entities)
        root = ET.fromstring(exc.response or "")  # noqa: S314
    except ET.ParseError:
        return ""
    element = next(root.iter(WSMAN_FAULT_MESSAGE), None)
    return "".join(element.itertext()).strip() if element is not None else ""


def names_shell(exc: WSManFaultError, shell_id: str) -> bool:
    """True when the fault's message names ``shell_id``: how a host says that this shell is unknown."""
    return shell_id.upper() in fault_message(exc).upper()


def redact(message: str, secret: str | None) -> str:
    """``message`` with every occurrence of ``secret`` masked."""
    return message.replace(secret, "********") if secret else message


def describe_fault(exc: WSManFaultError) -> str:
    """A one-line description of a WS-Management fault: its reason and codes, not its raw XML."""
    codes = [f"{name} {value}" for name, value in (("subcode", exc.fault_subcode), ("code", exc.wsman_fault_code),
                                                    ("wmi error", exc.wmierror_code)) if value is not None]
    return f"{(exc.reason or 'WS-Management fault').strip()} ({', '.join(codes) or f'HTTP {exc.code}'})"


def call(what: str, action: Callable[[], T], shell_id: str = "", command_id: str = "") -> T:
    """Run one WS-Management request; a lost shell or connection becomes :class:`ShellLost`.

    For a request about ``command_id`` in ``shell_id``, an unknown-selector fault that does not
    name the shell means the command vanished: :class:`CommandVanished`.
    """
    try:
        return action()
    except WSManFaultError as exc:
        if exc.wsman_fault_code == SHELL_NOT_FOUND and command_id and not names_shell(exc, shell_id):
            raise CommandVanished(
                f"{what}: the host no longer knows command {command_id} (it ended or was cleaned up on the host, "
                f"while shell {shell_id} is still open): {describe_fault(exc)}") from exc
        if exc.wsman_fault_code == SHELL_NOT_FOUND or exc.wmierror_code == OPERATION_QUOTA:
            raise ShellLost(f"{what}: {describe_fault(exc)}") from exc
        raise InfrastructureError(f"{what} failed: {describe_fault(exc)}") from exc
    except NETWORK_ERRORS as exc:
        raise ShellLost(f"{what}: the connection failed ({type(exc).__name__})") from exc
    except (WinRMError, WinRMTransportError) as exc:
        raise InfrastructureError(f"{what} failed: {exc}") from exc


def run_in_shell(
    protocol: Protocol,
    shell_id: str,
    command_line: str,
    stdin: bytes,
    deadline: float,
    operation_timeout: int,
) -> CommandResult:
    """Run ``command_line`` in the shell with ``stdin``, and wait for it until ``deadline`` (monotonic).

    Past the deadline the command is terminated (WinRS ``terminate`` signal) and the result says
    ``timed_out`` with whatever output had arrived. Raises ShellLost or InfrastructureError.
    """
    started = time.monotonic()
    command_id = call("Command", lambda: protocol.run_command(shell_id, command_line, console_mode_stdin=False))
    stdout: list[bytes] = []
    stderr: list[bytes] = []
    try:
        send_stdin(protocol, shell_id, command_id, stdin)
        exit_code = receive(protocol, shell_id, command_id, deadline, operation_timeout, stdout, stderr)
    except ShellLost:
        raise  # nothing left on the host to signal
    except BaseException:
        cleanup(protocol, shell_id, command_id)
        raise
    # terminates a command that timed out; releases a finished one's resources on the host
    cleanup(protocol, shell_id, command_id)
    return CommandResult(-1 if exit_code is None else exit_code, b"".join(stdout), b"".join(stderr),
                         exit_code is None, time.monotonic() - started)


def send_stdin(protocol: Protocol, shell_id: str, command_id: str, data: bytes) -> None:
    """Send ``data`` to the command's stdin in chunks that fit an envelope, then close stdin."""
    offsets = range(0, max(len(data), 1), STDIN_CHUNK)
    for offset in offsets:
        chunk = data[offset:offset + STDIN_CHUNK]
        last = offset + STDIN_CHUNK >= len(data)
        try:
            call("Send", partial(protocol.send_command_input, shell_id, command_id, chunk, last), shell_id,
                 command_id)
        except WinRMOperationTimeoutError:
            # A loaded host may time out a Send it still processes (Ansible sees the same); go on.
            log.debug("Send timed out on the host; its input is still processed, continuing")


def receive(
    protocol: Protocol,
    shell_id: str,
    command_id: str,
    deadline: float,
    operation_timeout: int,
    stdout: list[bytes],
    stderr: list[bytes],
) -> int | None:
    """Receive output until the command is done (its exit code) or the deadline passes (None)."""
    configured = protocol.operation_timeout_sec
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # Never block past the deadline by more than the one-second minimum WS-Man allows.
            protocol.operation_timeout_sec = max(1, min(operation_timeout, int(remaining)))
            try:
                out, err, code, done = call(
                    "Receive", lambda: protocol.get_command_output_raw(shell_id, command_id), shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue  # w:TimedOut: no output within the operation timeout; the command still runs
            stdout.append(out)
            stderr.append(err)
            if done:
                return code
    finally:
        protocol.operation_timeout_sec = configured


def cleanup(protocol: Protocol, shell_id: str, command_id: str) -> None:
    """Signal ``terminate`` to the command; errors are logged, not raised (the result is already known)."""
    try:
        protocol.cleanup_command(shell_id, command_id)
    except (WinRMError, WinRMTransportError, WinRMOperationTimeoutError, *NETWORK_ERRORS, AssertionError) as exc:
        log.info("could not signal terminate to command %s: %s", command_id, type(exc).__name__)
