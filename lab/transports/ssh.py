"""The ssh transport: OpenSSH's own client, one multiplexed connection per sandbox per campaign.

It reads the same inventory variables as Ansible's ssh connection (see ``SSHSettings``), so
deploy and verify always reach the same host the same way, with the same pinned host keys.

``open()`` starts a ControlMaster in a private directory (0700) and waits until it is
authenticated; each ``execute()`` is a session multiplexed over it (no new TCP connection, no new
key exchange); ``close()`` stops it with ``ssh -O exit``. The master also ends by itself after
``CONTROL_PERSIST`` idle seconds, so a crashed lab leaves no connection behind for long.
Only keys are used: BatchMode=yes, so a missing key fails at once instead of prompting.
"""

from __future__ import annotations

import os
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import ConfigError, InfrastructureError
from lab.transports.base import CommandResult, Transport

CONTROL_PERSIST = 60  # seconds a master stays without sessions (far more than the gap between suites)
SERVER_ALIVE = ("-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")
SSH_ERROR = 255  # OpenSSH's exit status for its own failures
REFUSED_OPTIONS = {"stricthostkeychecking": {"no", "off"}, "batchmode": {"no"}}


@dataclass(frozen=True)
class SSHSettings:
    """How to reach one host over ssh, from the same inventory variables Ansible reads.

    ==============================  ======================================  ==========================
    inventory variable              meaning                                 default
    ==============================  ======================================  ==========================
    ``ansible_host``                address or name to connect to           the inventory host name
    ``ansible_port``                TCP port                                ssh's own (22, ssh_config)
    ``ansible_user``                remote user                             ssh's own (ssh_config)
    ``ansible_ssh_private_key_file``  key to authenticate with (``-i``)     ssh's own identities
    ``ansible_ssh_args``            ssh options (ansible.cfg ``ssh_args``)   none
    ``ansible_ssh_common_args``     extra ssh options (shell-quoted)        none
    ``ansible_ssh_extra_args``      more ssh options (shell-quoted)         none
    ``ansible_ssh_timeout``         seconds to establish the connection     10 (as Ansible)
    ``ansible_python_interpreter``  Python that runs the check runner       ``python3``
    ``ansible_become``              run the check runner as another user    no
    ``ansible_become_user``         that user                               ``root``
    ``ansible_become_method``       only ``sudo`` (``-n``: never a prompt)  ``sudo``
    ``ansible_become_flags``        sudo's options (shell-quoted)           ``-H -S -n``
    ``ansible_become_exe``          the sudo program                        ``sudo``
    ==============================  ======================================  ==========================

    Settings that ``ansible.cfg`` gives instead of variables (``remote_user``, ``private_key_file``,
    ``[ssh_connection]`` ``ssh_args``/``ssh_common_args``/``ssh_extra_args``/``timeout``,
    ``[privilege_escalation]``) reach these same variables when the inventory is resolved (see
    ``lab.ansible.resolver``), so a jump host (``-o ProxyJump=...`` or ``ProxyCommand``) or a
    known-hosts file set there is used by verify as by deploy.

    The transport's own options (BatchMode=yes, ConnectTimeout, the ControlMaster ones) come
    first on the command line and ssh keeps the first value it sees, so inventory options can
    add to them but not override them. ``StrictHostKeyChecking=no`` and passwords are refused:
    pin host keys with ``UserKnownHostsFile`` and authenticate with keys.
    """

    host: str
    port: int | None
    user: str | None
    private_key_file: str | None
    options: tuple[str, ...]
    connect_timeout: int
    python_interpreter: str
    become: tuple[str, ...] = ()  # the command that runs the runner as another user (empty: as ansible_user)

    @classmethod
    def from_variables(cls, inventory_host: str, variables: Mapping[str, Any]) -> SSHSettings:
        """Settings for ``inventory_host`` from its variables; ConfigError naming the bad variable."""

        def fail(message: str) -> ConfigError:
            return ConfigError(f"host {inventory_host}: {message}")

        for secret in ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password"):
            if variables.get(secret):
                raise fail(f"{secret} is set, but the lab's ssh transport authenticates with keys only "
                           "(never a password on a command line); set ansible_ssh_private_key_file")
        host = str(variables.get("ansible_host") or inventory_host)
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise fail(f"ansible_host {host!r} is not a host name or address")
        port = cls.integer(variables, "ansible_port", fail, 1, 65535)
        timeout = cls.integer(variables, "ansible_ssh_timeout", fail, 1, 3600) or 10
        user = variables.get("ansible_user")
        if user is not None and (not str(user) or str(user).startswith("-")):
            raise fail(f"ansible_user {user!r} is not a user name")
        key = variables.get("ansible_ssh_private_key_file")
        options: list[str] = []
        for name in ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args"):
            raw = variables.get(name)
            if raw:
                try:
                    options += shlex.split(str(raw))
                except ValueError as exc:
                    raise fail(f"{name} is not valid shell quoting: {exc}") from None
        for key_name, value in option_values(options):
            if value.lower() in REFUSED_OPTIONS.get(key_name.lower(), set()):
                raise fail(f"ssh option {key_name}={value} is refused: the lab pins host keys and never prompts; "
                           "use UserKnownHostsFile with StrictHostKeyChecking=yes")
        interpreter = str(variables.get("ansible_python_interpreter") or "python3")
        if interpreter.startswith("auto"):
            interpreter = "python3"  # Ansible's interpreter discovery; the remote PATH decides here
        return cls(host, port, None if user is None else str(user), None if key is None else str(key),
                   tuple(options), timeout, interpreter, become_prefix(variables, fail))

    @staticmethod
    def integer(variables: Mapping[str, Any], name: str, fail: Any, low: int, high: int) -> int | None:
        """Variable ``name`` as an int in ``low..high`` (None if unset); ``fail(message)`` builds the error."""
        raw = variables.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = int(str(raw))
        except ValueError:
            raise fail(f"{name} {raw!r} is not a number") from None
        if not low <= value <= high:
            raise fail(f"{name} {value} is out of range ({low}-{high})")
        return value

    def ssh_command(self, control_path: Path, master: str) -> list[str]:
        """``ssh`` with the transport's options first, then the host's, up to (not including) the host."""
        # ssh keeps the first value of an option: these cannot be weakened by the inventory or by
        # ~/.ssh/config (no trust on first use, StrictHostKeyChecking=yes whatever else says).
        command = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                   "-o", f"ConnectTimeout={self.connect_timeout}",
                   "-o", f"ControlPath={control_path}", "-o", f"ControlMaster={master}", *SERVER_ALIVE]
        if self.port is not None:
            command += ["-p", str(self.port)]
        if self.user is not None:
            command += ["-l", self.user]
        if self.private_key_file is not None:
            command += ["-i", self.private_key_file]
        return [*command, *self.options]


def become_prefix(variables: Mapping[str, Any], fail: Any) -> tuple[str, ...]:
    """``sudo -n -u USER --`` (with the host's become flags) when ``ansible_become`` is on, else ().

    Only sudo, and only without a password (``-n``): a password would have to be typed into the
    session, and stdin carries the runner's manifest. ``fail(message)`` builds the ConfigError.
    """
    if str(variables.get("ansible_become", False)).lower() not in ("true", "yes", "1", "on"):
        return ()
    method = str(variables.get("ansible_become_method") or "sudo")
    if method != "sudo":
        raise fail(f"ansible_become_method {method!r}: the lab's ssh transport becomes another user with sudo only")
    for secret in ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass"):
        if variables.get(secret):
            raise fail(f"{secret} is set, but the lab's ssh transport uses sudo without a password (sudo -n); "
                       "allow the check runner with NOPASSWD in sudoers")
    user = str(variables.get("ansible_become_user") or "root")
    if not user or user.startswith("-"):
        raise fail(f"ansible_become_user {user!r} is not a user name")
    try:
        flags = [f for f in shlex.split(str(variables.get("ansible_become_flags") or "-H")) if f != "-S"]
    except ValueError as exc:
        raise fail(f"ansible_become_flags is not valid shell quoting: {exc}") from None
    exe = str(variables.get("ansible_become_exe") or "sudo")
    return (exe, *flags, "-n", "-u", user, "--")


def option_values(options: list[str]) -> list[tuple[str, str]]:
    """The ``-o Key=Value`` (or ``-oKey=Value``, ``Key Value``) pairs in an ssh argument list."""
    pairs = []
    for index, arg in enumerate(options):
        raw = None
        if arg == "-o" and index + 1 < len(options):
            raw = options[index + 1]
        elif arg.startswith("-o") and len(arg) > 2:
            raw = arg[2:]
        if raw is not None:
            key, sep, value = raw.partition("=")
            if not sep:
                key, _, value = raw.partition(" ")
            pairs.append((key.strip(), value.strip().strip('"')))
    return pairs


def remote_command(argv: list[str]) -> str:
    """``argv`` as one string for the remote POSIX shell, each argument quoted (ssh joins words with spaces)."""
    return shlex.join(argv)


class SSHTransport(Transport):
    """Runs commands on a sandbox over one OpenSSH ControlMaster connection."""

    name = "ssh"

    def __init__(self, host: str, variables: Mapping[str, Any]) -> None:
        super().__init__(host, variables)
        self.settings = SSHSettings.from_variables(host, variables)
        self.variables["ansible_python_interpreter"] = self.settings.python_interpreter
        self.control_dir: Path | None = None
        self.lost: str | None = None  # why the connection is gone; later sessions fail at once

    @property
    def control_path(self) -> Path:
        """The master's socket: a fixed name in this transport's private directory (one host per transport)."""
        if self.control_dir is None:
            raise InfrastructureError(f"ssh transport to {self.host} is not open; call open() first")
        return self.control_dir / "master"

    def open(self) -> None:
        """Connect and authenticate once; InfrastructureError (with ssh's own message) if that fails."""
        if self.control_dir is not None:
            return
        # A short private directory: a unix socket path must fit in 108 bytes.
        self.control_dir = Path(tempfile.mkdtemp(prefix="lab-ssh-"))
        log = self.control_dir / "master.log"
        command = [*self.settings.ssh_command(self.control_path, "yes"), "-o", f"ControlPersist={CONTROL_PERSIST}",
                   "-N", "-f", "-E", str(log), "--", self.settings.host]
        budget = self.settings.connect_timeout + 20
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=budget, check=False, start_new_session=True)
            failed = f"exit code {result.returncode}" if result.returncode != 0 else ""
        except subprocess.TimeoutExpired:
            failed = f"no answer within {budget}s"
        except FileNotFoundError:
            self.close()
            raise InfrastructureError("ssh not found; install the OpenSSH client "
                                      "(Debian: apt-get install openssh-client)") from None
        if failed or not self.master_running():
            why = last_lines(log) or failed or "the master connection did not start"
            self.close()
            raise InfrastructureError(f"cannot connect to {self.host} over ssh ({self.target()}): {why}")

    def execute(self, argv: list[str], stdin: bytes, timeout: float) -> CommandResult:
        """Run ``argv`` in a session over the master; kill the session's client after ``timeout``.

        InfrastructureError if ssh itself failed (the connection is gone); a CommandResult otherwise.
        """
        if self.lost is not None:
            raise InfrastructureError(self.lost)
        command = [*self.settings.ssh_command(self.control_path, "no"), "--", self.settings.host,
                   remote_command([*self.settings.become, *argv])]
        started = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        out, err, timed_out = exchange(proc, stdin, started + timeout)
        duration = time.monotonic() - started
        if proc.returncode == SSH_ERROR and not timed_out and not self.master_running():
            message = err.decode("utf-8", "replace").strip().splitlines()
            self.lost = (f"ssh connection to {self.host} ({self.target()}) lost: "
                         f"{message[-1] if message else 'ssh exited 255'}")
            raise InfrastructureError(self.lost)
        return CommandResult(proc.returncode, out, err, timed_out, duration)

    def master_running(self) -> bool:
        """True while the master connection answers ``ssh -O check``."""
        if self.control_dir is None or not self.control_path.exists():
            return False
        command = [*self.settings.ssh_command(self.control_path, "no"), "-O", "check", "--", self.settings.host]
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def close(self) -> None:
        """Stop the master (``ssh -O exit``) and remove the private directory. Safe to call twice."""
        if self.control_dir is None:
            return
        if self.control_path.exists():
            command = [*self.settings.ssh_command(self.control_path, "no"), "-O", "exit", "--",
                       self.settings.host]
            try:
                subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.control_dir, ignore_errors=True)
        self.control_dir = None

    def target(self) -> str:
        """``user@host:port`` as this transport reaches it, for messages."""
        s = self.settings
        return f"{s.user + '@' if s.user else ''}{s.host}{':' + str(s.port) if s.port else ''}"


def exchange(proc: subprocess.Popen[bytes], stdin: bytes, deadline: float) -> tuple[bytes, bytes, bool]:
    """Feed ``stdin`` to ``proc`` and collect its output until it ends or ``deadline`` passes.

    On expiry the local ssh client is killed and the pipes are closed at once, keeping what was
    read so far (the runner's results up to then). ``communicate()`` would wait for EOF, which a
    multiplexed session only gives when the remote command ends: the master holds the pipes.
    """
    feed, output, errors = proc.stdin, proc.stdout, proc.stderr
    if feed is None or output is None or errors is None:
        raise InfrastructureError("ssh was started without pipes")  # cannot happen: execute() asks for them
    out_fd, err_fd = output.fileno(), errors.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    pending = memoryview(stdin)
    os.set_blocking(feed.fileno(), False)
    with selectors.DefaultSelector() as selector:
        selector.register(output, selectors.EVENT_READ)
        selector.register(errors, selectors.EVENT_READ)
        if pending:
            selector.register(feed, selectors.EVENT_WRITE)
        else:
            feed.close()
        timed_out = False
        while len(selector.get_map()) > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(remaining):
                fd = key.fd
                if key.fileobj is feed:
                    try:
                        written = os.write(fd, pending[:65536])
                    except BrokenPipeError:
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        selector.unregister(feed)
                        feed.close()
                    continue
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                else:
                    selector.unregister(key.fileobj)
    if timed_out:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pipe in (feed, output, errors):
        pipe.close()
    proc.wait()
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), timed_out


def last_lines(path: Path, count: int = 2) -> str:
    """The last ``count`` non-blank lines of ``path`` joined with "; " (empty if unreadable)."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return "; ".join(lines[-count:])
