"""The local transport: the sandbox is a directory on this machine, commands are subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from lab.transports.base import CommandResult, Transport
from lab.util.processes import end_tree


class LocalTransport(Transport):
    """Runs commands on this machine. Nothing to connect to, so open() only checks the interpreter."""

    name = "local"

    def open(self) -> None:
        self.variables.setdefault("ansible_python_interpreter", sys.executable)

    def execute(self, argv: list[str], stdin: bytes, timeout: float) -> CommandResult:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            end_tree(proc)  # the runner and every check's own session, not just its group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            timed_out = True
        return CommandResult(proc.returncode, out, err, timed_out, time.monotonic() - started)
