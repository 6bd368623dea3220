"""Shells and commands: real processes behind the Windows Remote Shell resource.

A :class:`ShellRegistry` owns the shells of one endpoint and enforces its quotas; a
:class:`Command` owns one process, buffers its stdout/stderr in arrival order and
answers Receive calls with the blocking semantics of a Windows host.

As on Windows, a command line goes through the shell's command processor (here
``/bin/sh -c``, standing in for ``cmd.exe /c``) unless the Command request sets
``WINRS_SKIP_CMD_SHELL``: then the Command is started directly, found only as a path
(absolute or relative to the working directory), never on PATH, as CreateProcess does
with an application name. Output is re-encoded from the processes' UTF-8 into the
shell's code page (``WINRS_CODEPAGE`` at Create, else the host's OEM code page), and
stdin from that code page into UTF-8, as a Windows console does; characters the code
page lacks become ``?``.
"""

from __future__ import annotations

import codecs
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from . import faults
from .soap import new_id


class ShellGone(Exception):
    """The shell was deleted or dropped while a request was waiting on it."""


class CommandGone(Exception):
    """The command (not its shell) vanished while a request was waiting on it."""


DEFAULT_OEM_CODEPAGE = 437  # what an en-US Windows console uses without WINRS_CODEPAGE
UTF8_CODEPAGE = 65001


def python_codec(codepage: int) -> str:
    """The Python codec of a Windows code page; LookupError when Python has none."""
    name = "utf-8" if codepage == UTF8_CODEPAGE else f"cp{codepage}"
    return codecs.lookup(name).name


def split_windows_arguments(line: str) -> list[str]:
    """``line`` split the way CommandLineToArgvW does (backslashes count only before a quote)."""
    words: list[str] = []
    current: list[str] = []
    pending = quoted = False
    backslashes = 0
    for ch in line:
        if ch == "\\":
            backslashes += 1
            continue
        if ch == '"':
            current.append("\\" * (backslashes // 2))
            if backslashes % 2:
                current.append('"')
            else:
                quoted = not quoted
            backslashes, pending = 0, True
            continue
        current.append("\\" * backslashes)
        backslashes = 0
        if ch in " \t" and not quoted:
            if pending:
                words.append("".join(current))
                current, pending = [], False
            continue
        current.append(ch)
        pending = True
    current.append("\\" * backslashes)
    if pending or backslashes:
        words.append("".join(current))
    return words


@dataclass
class ShellSpec:
    """What a Create request asked for (``rsp:Shell`` children and the OptionSet)."""

    input_streams: str = "stdin"
    output_streams: str = "stdout stderr"
    environment: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    idle_timeout: float | None = None
    shell_id: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    codepage: int = DEFAULT_OEM_CODEPAGE


@dataclass
class Received:
    """One Receive's worth of output: data chunks, streams now at End, final state."""

    chunks: list[tuple[str, bytes]]
    ended: list[str]
    done: bool
    exit_code: int | None


class Command:
    """One process started by a Command request.

    stdout/stderr are read by background threads; stdin is fed from Send requests
    through a queue so an HTTP thread never blocks on a full pipe.
    """

    def __init__(
        self, command_id: str, argv: Sequence[str], env: Mapping[str, str], cwd: str, codepage: int = UTF8_CODEPAGE
    ) -> None:
        self.id = command_id
        self.argv = list(argv)
        self.exit_code: int | None = None
        self._cond = threading.Condition()
        self._chunks: deque[tuple[str, bytes]] = deque()
        self._ended: set[str] = set()
        self._done = False
        self._dropped: type[Exception] | None = None
        self._stdin: queue.Queue[bytes | None] = queue.Queue()
        self._codec = python_codec(codepage)
        self._stdin_decoder = codecs.getincrementaldecoder(self._codec)(errors="replace")
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        readers = [
            threading.Thread(target=self._read, args=("stdout", self._proc.stdout.fileno()), daemon=True),
            threading.Thread(target=self._read, args=("stderr", self._proc.stderr.fileno()), daemon=True),
        ]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._wait, args=(readers,), daemon=True).start()
        threading.Thread(target=self._write_stdin, daemon=True).start()

    @property
    def pid(self) -> int:
        """Process id of the ``/bin/sh`` running the command (also its process group id)."""
        return self._proc.pid

    @property
    def done(self) -> bool:
        """True once the process has exited and its output pipes are drained."""
        with self._cond:
            return self._done

    def _read(self, name: str, fd: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while data := os.read(fd, 65536):
                self._append(name, self._to_codepage(decoder.decode(data)))
        except OSError:
            pass
        self._append(name, self._to_codepage(decoder.decode(b"", final=True)))

    def _to_codepage(self, text: str) -> bytes:
        return text.encode(self._codec, errors="replace")

    def _append(self, name: str, data: bytes) -> None:
        if data:
            with self._cond:
                self._chunks.append((name, data))
                self._cond.notify_all()

    def _wait(self, readers: Sequence[threading.Thread]) -> None:
        code = self._proc.wait()
        for reader in readers:
            reader.join(timeout=1.0)  # a detached grandchild may keep a pipe open
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
        with self._cond:
            self.exit_code = code if code >= 0 else 128 - code
            self._done = True
            self._cond.notify_all()

    def _write_stdin(self) -> None:
        pipe = self._proc.stdin
        assert pipe is not None
        try:
            while True:
                try:
                    item = self._stdin.get(timeout=0.5)
                except queue.Empty:
                    if self.done:
                        return
                    continue
                if item is None:
                    return
                pipe.write(item)
                pipe.flush()
        except (OSError, ValueError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def send(self, data: bytes, end: bool) -> None:
        """Queue ``data`` (in the shell's code page) for the process's stdin; ``end`` closes stdin afterwards."""
        text = self._stdin_decoder.decode(data, final=end)
        if text:
            self._stdin.put(text.encode("utf-8"))
        if end:
            self._stdin.put(None)

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """Kill the whole process group and close stdin."""
        self._killpg(signal.SIGKILL)
        self._stdin.put(None)

    def signal(self, code: str) -> None:
        """Apply a WinRS signal: ``terminate`` kills; ``ctrl_c``/``ctrl_break`` interrupt, then kill."""
        name = code.rsplit("/", 1)[-1].lower()
        if name == "terminate":
            self.kill()
        elif name in ("ctrl_c", "ctrl_break") and not self.done:
            self._killpg(signal.SIGINT if name == "ctrl_c" else signal.SIGTERM)
            timer = threading.Timer(1.0, lambda: None if self.done else self.kill())
            timer.daemon = True
            timer.start()

    def drop(self, why: type[Exception] = ShellGone) -> None:
        """Simulate the host losing the command: kill it and fail pending Receives with ``why``."""
        with self._cond:
            self._dropped = why
            self._cond.notify_all()
        self.kill()

    def _has_output(self, streams: Sequence[str]) -> bool:
        return any(name in streams for name, _ in self._chunks)

    def receive(self, streams: Sequence[str], timeout: float, max_bytes: int, linger: float) -> Received | None:
        """Wait up to ``timeout`` seconds for output or completion.

        Returns None when nothing arrived in time (the caller sends ``w:TimedOut``).
        Once something is available it waits a further ``linger`` seconds for the
        process to finish, so short commands answer in one response like on Windows.
        At most ``max_bytes`` of output are returned; the command is reported Done
        (with End markers and the exit code) only once all its output was delivered.
        Raises :class:`ShellGone` or :class:`CommandGone` if the command was dropped.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._dropped or self._done or self._has_output(streams)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            linger_end = min(deadline, time.monotonic() + linger)
            while not (self._dropped or self._done) and (remaining := linger_end - time.monotonic()) > 0:
                self._cond.wait(remaining)
            if self._dropped is not None:
                raise self._dropped(self.id)
            taken: list[tuple[str, bytes]] = []
            kept: deque[tuple[str, bytes]] = deque()
            budget = max_bytes
            for name, data in self._chunks:
                if name not in streams or budget <= 0:
                    kept.append((name, data))
                elif len(data) > budget:
                    taken.append((name, data[:budget]))
                    kept.append((name, data[budget:]))
                    budget = 0
                else:
                    taken.append((name, data))
                    budget -= len(data)
            self._chunks = kept
            done = self._done and not self._has_output(streams)
            ended = [name for name in streams if name not in self._ended] if done else []
            self._ended.update(ended)
            return Received(taken, ended, done, self.exit_code if done else None)


class Shell:
    """One WinRS shell: its settings as created and the commands started in it."""

    def __init__(self, shell_id: str, owner: str, client_ip: str, spec: ShellSpec, cwd: str) -> None:
        self.id = shell_id
        self.owner = owner
        self.client_ip = client_ip
        self.spec = spec
        self.cwd = cwd
        self.commands: dict[str, Command] = {}
        self.operations = 0
        self.created = time.monotonic()
        self.last_activity = self.created
        self.lock = threading.Lock()

    def touch(self) -> None:
        """Record activity (for ShellInactivity)."""
        self.last_activity = time.monotonic()

    def command(self, command_id: str | None) -> Command:
        """The command with ``command_id``: no id is InvalidParameter (87), an unknown one InvalidSelectors."""
        if not command_id:
            raise faults.invalid_parameter()
        with self.lock:
            found = self.commands.get(command_id.upper())
        if found is None:
            raise faults.command_not_found()
        return found

    def forget(self, command_id: str) -> Command | None:
        """Remove a command from the shell (the host cleaned it up); its process is left to the caller."""
        with self.lock:
            return self.commands.pop(command_id.upper(), None)


class ShellRegistry:
    """All shells of one endpoint, with MaxShellsPerUser and operation quotas.

    ``max_operations_per_shell`` models MaxConcurrentOperationsPerUser the way hosts
    apply it to WinRS: every Command counts and nothing is given back until the shell
    is deleted. ``on_event`` is called with a counter name for each shell created or
    deleted and each command started.
    """

    def __init__(
        self,
        *,
        base_env: Mapping[str, str],
        default_cwd: str,
        max_shells_per_user: int,
        max_operations_per_shell: int,
        on_event: Callable[[str], None],
    ) -> None:
        self._base_env = dict(base_env)
        self._default_cwd = default_cwd
        self.max_shells_per_user = max_shells_per_user
        self.max_operations_per_shell = max_operations_per_shell
        self._on_event = on_event
        self._lock = threading.Lock()
        self._shells: dict[str, Shell] = {}

    def create(self, owner: str, client_ip: str, spec: ShellSpec) -> Shell:
        """Create a shell for ``owner``; raises the QuotaLimit fault past MaxShellsPerUser."""
        with self._lock:
            held = sum(1 for shell in self._shells.values() if shell.owner.upper() == owner.upper())
            if held >= self.max_shells_per_user:
                raise faults.shell_quota(self.max_shells_per_user)
            shell_id = spec.shell_id or new_id()
            try:
                python_codec(spec.codepage)
            except LookupError:
                raise faults.invalid_codepage(str(spec.codepage)) from None
            shell = Shell(shell_id, owner, client_ip, spec, spec.working_directory or self._default_cwd)
            self._shells[shell_id.upper()] = shell
        self._on_event("shells_created")
        return shell

    def get(self, shell_id: str | None) -> Shell:
        """The live shell with ``shell_id``; raises InvalidSelectors (2150858843) otherwise."""
        with self._lock:
            shell = self._shells.get((shell_id or "").upper())
        if shell is None:
            raise faults.shell_not_found(shell_id or "")
        shell.touch()
        return shell

    def delete(self, shell_id: str | None) -> None:
        """Delete a shell and kill its processes; raises InvalidSelectors if unknown."""
        with self._lock:
            shell = self._shells.pop((shell_id or "").upper(), None)
        if shell is None:
            raise faults.shell_not_found(shell_id or "")
        with shell.lock:
            commands = list(shell.commands.values())
        for command in commands:
            command.kill()
        self._on_event("shells_deleted")

    def start_command(
        self, shell: Shell, command: str, arguments: Sequence[str], command_id: str | None, skip_cmd_shell: bool
    ) -> Command:
        """Start ``command`` with ``arguments`` in ``shell``'s directory, environment and code page.

        Through ``/bin/sh -c`` (the command processor), or with ``skip_cmd_shell`` directly:
        then ``command`` must name a file by path, else the cmd plugin's file-not-found fault.
        """
        if not os.path.isdir(shell.cwd):
            raise faults.invalid_directory(shell.cwd)
        line = " ".join(word for word in (command, *arguments) if word)
        if not line:
            raise faults.invalid_parameter()
        if skip_cmd_shell:
            program = os.path.join(shell.cwd, command)  # an absolute command stays as it is
            if not command or not os.path.isfile(program):
                raise faults.file_not_found()
            argv = [program, *split_windows_arguments(" ".join(arguments))]
        else:
            argv = ["/bin/sh", "-c", line]
        with shell.lock:
            if shell.operations >= self.max_operations_per_shell:
                raise faults.operation_quota(self.max_operations_per_shell)
            shell.operations += 1
        env = {**self._base_env, **shell.spec.environment}
        try:
            started = Command(command_id or new_id(), argv, env, shell.cwd, shell.spec.codepage)
        except PermissionError as err:
            raise faults.file_not_found() from err
        except (OSError, ValueError) as err:
            raise faults.invalid_parameter() from err
        with shell.lock:
            shell.commands[started.id.upper()] = started
        self._on_event("commands_run")
        return started

    def drop(self, shell_id: str | None = None) -> int:
        """Make shells vanish as if the host lost them; returns how many were dropped."""
        with self._lock:
            keys = [k for k in self._shells if shell_id is None or k == shell_id.upper()]
            dropped = [self._shells.pop(k) for k in keys]
        for shell in dropped:
            with shell.lock:
                commands = list(shell.commands.values())
            for command in commands:
                command.drop()
        return len(dropped)

    def drop_command(self, shell_id: str, command_id: str) -> bool:
        """Make one command vanish from a live shell (its Receives fail as for an unknown CommandId)."""
        with self._lock:
            shell = self._shells.get(shell_id.upper())
        gone = shell.forget(command_id) if shell is not None else None
        if gone is not None:
            gone.drop(CommandGone)
        return gone is not None

    def command_ids(self) -> list[tuple[str, str]]:
        """(ShellId, CommandId) of every command the live shells know."""
        with self._lock:
            shells = list(self._shells.values())
        found = []
        for shell in shells:
            with shell.lock:
                found += [(shell.id, command.id) for command in shell.commands.values()]
        return found

    def ids(self) -> list[str]:
        """ShellIds of the live shells."""
        with self._lock:
            return [shell.id for shell in self._shells.values()]
