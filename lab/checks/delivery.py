"""How the check runner reaches a sandbox: one command and one stdin, through any transport.

A transport runs a command with stdin (``Transport.execute``) and says which runner its sandbox
runs (``Transport.runner``); what to send is decided here, beside the runners themselves:

- ``python`` (ssh, local, a WinRM host with a POSIX shell): ``<interpreter> -c PYTHON_BOOTSTRAP``
  with ``<n>\\n<runner.py, n bytes><manifest JSON>`` on stdin;
- ``powershell`` (Windows): ``POWERSHELL_ARGV`` with runner.ps1 and the manifest on stdin
  (``lab.checks.powershell``).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from lab.checks.powershell import POWERSHELL_ARGV, powershell_payload
from lab.transports.base import CommandResult, Transport

# Reads "<n>\n<runner source, n bytes><manifest JSON>" from stdin and runs the runner on the
# manifest: one process, one round trip, and nothing written to the sandbox's disk.
PYTHON_BOOTSTRAP = (
    "import sys;d=sys.stdin.buffer.read();h,_,r=d.partition(b'\\n');n=int(h);"
    "g={'__name__':'lab_runner'};exec(compile(r[:n],'lab-runner.py','exec'),g);"
    "sys.exit(g['main'](r[n:]))"
)


def python_runner_source() -> bytes:
    """The bytes of ``lab/checks/runner.py`` as shipped in the package."""
    return resources.files("lab.checks").joinpath("runner.py").read_bytes()


def python_runner_payload(manifest: dict[str, Any]) -> bytes:
    """The stdin that PYTHON_BOOTSTRAP expects for ``manifest``."""
    source = python_runner_source()
    body = json.dumps(manifest, sort_keys=True).encode("utf-8")
    return str(len(source)).encode("ascii") + b"\n" + source + body


RUNNER_GRACE = 2.0  # seconds the runner outlives the transport's timeout before it stops itself


def run_runner(transport: Transport, manifest: dict[str, Any], timeout: float) -> CommandResult:
    """Run the check runner of ``transport``'s sandbox on ``manifest`` in one round trip, killed
    after ``timeout`` seconds; its JSON-lines output as the command's result.

    The manifest carries the runner's own ``deadline``, ``RUNNER_GRACE`` seconds after the
    transport's: the transport gives up first (and says the suite timed out); then, if nothing
    the transport did reached it, the runner on the sandbox kills every process its checks
    started and exits, so nothing of the suite keeps running there."""
    manifest = dict(manifest, deadline=timeout + RUNNER_GRACE)
    kind = transport.runner()
    if kind.language == "powershell":
        return transport.execute(list(POWERSHELL_ARGV), powershell_payload(manifest), timeout)
    return transport.execute([kind.interpreter, "-c", PYTHON_BOOTSTRAP], python_runner_payload(manifest), timeout)
