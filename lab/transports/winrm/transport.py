"""The WinRM transport: one WinRS shell per sandbox per campaign, the runner delivered through stdin.

``open()`` creates the shell (UTF-8, code page 65001), waiting with bounded backoff while a
booting or rebooting host refuses connections; every suite runs as one command in that shell;
``close()`` deletes it. The runner and its manifest go to the command's stdin in Send chunks
that fit an envelope, behind a short bootstrap command line, so their size is not bound by
cmd.exe's 8,191-character command line:

- ``lab_runner: powershell`` (Windows): ``powershell.exe ... -EncodedCommand <POWERSHELL_BOOTSTRAP>``
  reads runner.ps1 + manifest from stdin (``lab.checks.powershell``: ``POWERSHELL_ARGV``,
  ``powershell_payload``).
- ``lab_runner: python`` (a WinRM host whose shell is POSIX): ``python3 -c <PYTHON_BOOTSTRAP>``
  with runner.py + manifest on stdin, as over ssh.

``runner()`` says which of the two the host runs; ``lab.checks.delivery`` builds that command and stdin.

A shell quota fault when creating the shell, or a shell that vanishes mid-run (or its
connection), gets one retry on a fresh shell; after that the transport raises
InfrastructureError, which the campaign records as ``error`` results. Settings: see
:mod:`lab.transports.winrm.settings`.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import requests
import winrm.transport
from winrm.exceptions import InvalidCredentialsError, WinRMError, WinRMTransportError, WSManFaultError
from winrm.protocol import Protocol

from lab.errors import ConfigError, InfrastructureError
from lab.transports.base import CommandResult, RunnerKind, Transport
from lab.transports.winrm.command import (
    NETWORK_ERRORS,
    SHELL_QUOTA,
    ShellLost,
    describe_fault,
    redact,
    run_in_shell,
)
from lab.transports.winrm.settings import UTF8_CODEPAGE, WinRMSettings, settings_from_variables

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.25
MAX_BACKOFF = 2.0  # a refused connection costs nothing; notice a host that is back soon
NOT_READY_HTTP = (503,)  # HTTP.sys answers 503 until the WinRM service has registered its URL


class WinRMTransport(Transport):
    """Reaches a sandbox over WinRM (WS-Management) with pywinrm's low-level protocol API."""

    name = "winrm"
    precompiled_runner = False  # stdin travels in Send round trips: the larger stdin costs more than the compile

    def __init__(self, host: str, variables: Mapping[str, Any]) -> None:
        """Read and validate the settings now, so a bad inventory fails before any connection."""
        super().__init__(host, variables)
        self.settings: WinRMSettings = settings_from_variables(host, self.variables)
        if self.settings.transport == "kerberos" and not winrm.transport.HAVE_KERBEROS:
            raise ConfigError(f"host {host}: ansible_winrm_transport kerberos needs pywinrm's kerberos support; "
                              "install it with `pip install 'pywinrm[kerberos]'`")
        if self.settings.transport == "credssp" and not winrm.transport.HAVE_CREDSSP:
            raise ConfigError(f"host {host}: ansible_winrm_transport credssp needs requests-credssp; "
                              "install it with `pip install 'pywinrm[credssp]'`")
        self.shells_opened = 0
        self._protocol: Protocol | None = None
        self._shell_id: str | None = None

    # --- the transport contract -------------------------------------------------------------------

    def open(self) -> None:
        """Create the campaign's shell on the host; InfrastructureError if the host cannot give one."""
        if self._shell_id is None:
            self._open_shell()

    def execute(self, argv: list[str], stdin: bytes, timeout: float) -> CommandResult:
        """Run ``argv`` in the shell with ``stdin``; terminate it after ``timeout`` seconds.

        A shell that is lost during the command gets one retry on a fresh shell (the runner only
        reads the host, so running it again is safe); a second loss raises InfrastructureError.
        """
        deadline = time.monotonic() + timeout
        command_line = self.command_line(argv)
        if self._shell_id is None:
            self._open_shell()
        try:
            return self._run(command_line, stdin, deadline)
        except ShellLost as first:
            log.info("host %s: %s; retrying once on a fresh shell", self.host, first)
            self._discard_shell()
            self._open_shell()
            try:
                return self._run(command_line, stdin, deadline)
            except ShellLost as second:
                self._discard_shell()
                raise InfrastructureError(self._safe(
                    f"host {self.host}: the WinRM shell at {self.settings.url} was lost twice during one "
                    f"command ({first}; then, on a fresh shell, {second}); is the host rebooting or "
                    "closing shells?")) from second

    def runner(self) -> RunnerKind:
        """The host's ``lab_runner`` (``powershell`` by default) and, for Python, its interpreter."""
        return RunnerKind(self.settings.runner, self.settings.interpreter)

    def close(self) -> None:
        """Delete the shell and drop the connection. Safe to call twice; errors are only logged."""
        protocol, shell_id = self._protocol, self._shell_id
        self._protocol = self._shell_id = None
        if protocol is None:
            return
        try:
            if shell_id is not None:
                protocol.close_shell(shell_id, close_session=False)
        except (WinRMError, WinRMTransportError, *NETWORK_ERRORS, AssertionError) as exc:
            log.info("host %s: could not delete shell %s: %s", self.host, shell_id, type(exc).__name__)
        finally:
            protocol.transport.close_session()

    # --- commands ---------------------------------------------------------------------------------

    def command_line(self, argv: list[str]) -> str:
        """``argv`` quoted for the host's shell: POSIX sh for the Python runner, cmd.exe otherwise."""
        return shlex.join(argv) if self.settings.posix_shell else subprocess.list2cmdline(argv)

    def _run(self, command_line: str, stdin: bytes, deadline: float) -> CommandResult:
        assert self._protocol is not None and self._shell_id is not None
        try:
            return run_in_shell(self._protocol, self._shell_id, command_line, stdin, deadline,
                                self.settings.operation_timeout)
        except InfrastructureError as exc:
            raise InfrastructureError(self._safe(f"host {self.host}: {exc}")) from exc.__cause__

    # --- the shell --------------------------------------------------------------------------------

    def _protocol_for(self) -> Protocol:
        """A new pywinrm Protocol: every TLS and proxy choice explicit, nothing taken from the environment."""
        s = self.settings
        try:
            return Protocol(
                s.url,
                transport=s.transport,
                username=s.user,
                password=s.password,
                ca_trust_path=s.ca_trust_path,  # type: ignore[arg-type]  # None: no extra trust, no environment
                server_cert_validation="validate" if s.validate_cert else "ignore",
                kerberos_delegation=s.kerberos_delegation,
                read_timeout_sec=s.read_timeout,
                operation_timeout_sec=s.operation_timeout,
                kerberos_hostname_override=s.kerberos_hostname_override,
                message_encryption=s.message_encryption,
                send_cbt=s.send_cbt,
                proxy=s.proxy,
            )
        except WinRMError as exc:  # settings_from_variables() validated what pywinrm checks here
            raise InfrastructureError(self._safe(f"host {self.host}: pywinrm refused the settings: {exc}")) from exc

    def _open_shell(self) -> None:
        """Create a shell, waiting for a host that refuses connections; one retry after a quota fault."""
        started = time.monotonic()
        backoff = FIRST_BACKOFF
        quota_retried = False
        while True:
            protocol = self._protocol_for()
            try:
                shell_id = protocol.open_shell(codepage=UTF8_CODEPAGE)
            except Exception as exc:
                protocol.transport.close_session()
                if isinstance(exc, WSManFaultError) and exc.wsman_fault_code == SHELL_QUOTA and not quota_retried:
                    quota_retried = True
                    log.info("host %s: shell quota reached; one retry in %.1fs", self.host, self.settings.retry_delay)
                    time.sleep(self.settings.retry_delay)
                    continue
                if not self._not_ready(exc):
                    raise self._open_error(exc, quota_retried) from exc
                waited = time.monotonic() - started
                if waited >= self.settings.ready_timeout:
                    raise InfrastructureError(self._safe(
                        f"host {self.host}: {self.settings.url} did not accept WinRM connections within "
                        f"{self.settings.ready_timeout:g}s (last: {self._network_reason(exc)}); is the host up, "
                        "and are ansible_host/ansible_port right? (lab_winrm_ready_timeout sets the wait)")) from exc
                pause = min(backoff, self.settings.ready_timeout - waited)
                log.info("host %s: not ready (%s); next try in %.2fs", self.host, self._network_reason(exc), pause)
                time.sleep(pause)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self._protocol, self._shell_id = protocol, shell_id
            self.shells_opened += 1
            return

    def _not_ready(self, exc: BaseException) -> bool:
        """True for what a booting host looks like: refused or timed-out connections, HTTP 503."""
        if isinstance(exc, requests.exceptions.SSLError):
            return False
        if isinstance(exc, NETWORK_ERRORS):
            return True
        return isinstance(exc, WinRMTransportError) and exc.code in NOT_READY_HTTP

    def _open_error(self, exc: Exception, quota_retried: bool) -> InfrastructureError:
        """The LabError for a failure to create the shell that waiting will not cure."""
        s, where = self.settings, f"host {self.host}: {self.settings.url}"
        if isinstance(exc, requests.exceptions.SSLError):
            trust = f"the CAs in {s.ca_trust_path}" if s.ca_trust_path else "the system's default CA bundle"
            message = (f"{where}: TLS certificate validation failed against {trust}; set "
                       "ansible_winrm_ca_trust_path to the CA that signed the host's certificate "
                       "(ansible_winrm_server_cert_validation: ignore turns validation off, and reports say so)")
        elif isinstance(exc, InvalidCredentialsError):
            message = f"{where}: the credentials of {s.user} were rejected ({s.transport} authentication)"
        elif isinstance(exc, WSManFaultError) and exc.wsman_fault_code == SHELL_QUOTA:
            again = f", also on the retry {s.retry_delay:g}s later" if quota_retried else ""
            message = (f"{where}: no shell available: {s.user} is at the host's MaxShellsPerUser quota{again}; "
                       "close idle sessions or raise the quota (winrm set winrm/config/winrs @{MaxShellsPerUser=...})")
        elif isinstance(exc, WSManFaultError):
            message = f"{where}: creating a shell failed: {describe_fault(exc)}"
        else:
            message = f"{where}: creating a shell failed: {type(exc).__name__}: {exc}"
        return InfrastructureError(self._safe(message))

    def _network_reason(self, exc: BaseException) -> str:
        if isinstance(exc, WinRMTransportError):
            return f"HTTP {exc.code}"
        if isinstance(exc, requests.ConnectTimeout | requests.ReadTimeout):
            return "timed out"
        if isinstance(exc, requests.ConnectionError):
            return "connection refused or reset"
        return type(exc).__name__

    def _discard_shell(self) -> None:
        """Forget a lost shell: try to delete it (it may still exist), never raise."""
        self.close()

    def _safe(self, message: str) -> str:
        return redact(message, self.settings.password)

