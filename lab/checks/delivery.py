"""How the check runner reaches a sandbox: one command and one stdin, through any transport.

A transport runs a command with stdin (``Transport.execute``) and says which runner its sandbox
runs (``Transport.runner``); what to send is decided here, beside the runners themselves:

- ``python`` (ssh, local, a WinRM host with a POSIX shell): ``<interpreter> -c PYTHON_BOOTSTRAP``
  with ``<n> <m> <magic>\\n<runner.py, n bytes><runner.py compiled, m bytes of base64><manifest JSON>`` on
  stdin (see PYTHON_BOOTSTRAP);
- ``powershell`` (Windows): ``POWERSHELL_ARGV`` with runner.ps1 and the manifest on stdin
  (``lab.checks.powershell``).
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import marshal
from importlib import resources
from typing import Any

from lab.checks.powershell import POWERSHELL_ARGV, powershell_payload
from lab.transports.base import CommandResult, Transport

# Reads "<n> <m> <magic>\n<runner source, n bytes><runner code, m bytes><manifest JSON>" from stdin
# and runs the runner on the manifest: one process, one round trip, nothing written to the
# sandbox's disk. The runner code is runner.py compiled and marshalled by the controller, in
# base64: stdin may pass through a text channel (a WinRM shell re-encodes it from its code page),
# which raw bytes would not survive. The sandbox's interpreter loads that code when its bytecode
# magic is the controller's (it then skips compiling ~100 KB of source, about a quarter of a
# verify's time on the node) and compiles the source otherwise (another Python version, or an
# interpreter without CPython's importlib).
PYTHON_BOOTSTRAP = (
    "import sys,marshal,binascii;d=sys.stdin.buffer.read();h,_,r=d.partition(b'\\n');n,m,t=h.split();"
    "n=int(n);m=int(m);f=getattr(sys.modules.get('_frozen_importlib_external'),'MAGIC_NUMBER',b'');"
    "c=marshal.loads(binascii.a2b_base64(r[n:n+m])) if m and f.hex().encode()==t "
    "else compile(r[:n],'lab-runner.py','exec');"
    "g={'__name__':'lab_runner'};exec(c,g);"
    "sys.exit(g['main'](r[n+m:]))"
)


@functools.cache
def python_runner_source() -> bytes:
    """The bytes of ``lab/checks/runner.py`` as shipped in the package (read once per process)."""
    return resources.files("lab.checks").joinpath("runner.py").read_bytes()


@functools.lru_cache(maxsize=4)
def compiled_runner(source: bytes) -> bytes:
    """``source`` compiled as PYTHON_BOOTSTRAP would compile it on the sandbox (no inherited
    ``__future__`` flags, asserts kept), marshalled for this interpreter's bytecode, in base64."""
    code = compile(source, "lab-runner.py", "exec", dont_inherit=True, optimize=0)
    return base64.b64encode(marshal.dumps(code))


def runner_frame(source: bytes, body: bytes, precompiled: bool = True) -> bytes:
    """The stdin PYTHON_BOOTSTRAP expects: runner ``source``, its code marshalled for this
    interpreter in base64 (omitted when not ``precompiled``; the sandbox then compiles the source) and the
    manifest's JSON ``body``."""
    code = compiled_runner(source) if precompiled else b""
    magic = importlib.util.MAGIC_NUMBER.hex() if precompiled else "-"
    return f"{len(source)} {len(code)} {magic}\n".encode("ascii") + source + code + body


def python_runner_payload(manifest: dict[str, Any], precompiled: bool = True) -> bytes:
    """The stdin that PYTHON_BOOTSTRAP expects for ``manifest`` (with the runner's code when ``precompiled``)."""
    return runner_frame(python_runner_source(), json.dumps(manifest, sort_keys=True).encode("utf-8"), precompiled)


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
    payload = python_runner_payload(manifest, transport.precompiled_runner)
    return transport.execute([kind.interpreter, "-c", PYTHON_BOOTSTRAP], payload, timeout)
