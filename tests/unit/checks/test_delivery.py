"""The check runner's delivery: the command and stdin sent through a transport for each runner."""

from __future__ import annotations

import base64
import importlib.util
import json
import marshal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lab.checks.delivery import PYTHON_BOOTSTRAP, python_runner_payload, python_runner_source, run_runner, runner_frame
from lab.checks.powershell import POWERSHELL_ARGV, powershell_payload, split_payload
from lab.transports.base import CommandResult, RunnerKind, Transport

MANIFEST: dict[str, Any] = {"format": 1, "checks": [{"id": "c1", "type": "command", "command": "true"}]}


class Recording(Transport):
    """Keeps what it was asked to run; runs nothing."""

    def __init__(self, variables: Mapping[str, Any], kind: RunnerKind | None = None) -> None:
        super().__init__("h1", variables)
        self.kind = kind
        self.sent: list[tuple[list[str], bytes, float]] = []

    def open(self) -> None:
        pass

    def execute(self, argv: list[str], stdin: bytes, timeout: float) -> CommandResult:
        self.sent.append((argv, stdin, timeout))
        return CommandResult(0, b"", b"", False, 0.0)

    def runner(self) -> RunnerKind:
        return self.kind or super().runner()


@pytest.mark.parametrize(("variables", "interpreter"), [({}, "python3"),
                                                         ({"ansible_python_interpreter": "/opt/py"}, "/opt/py")])
def test_a_python_host_gets_the_bootstrap_and_the_framed_runner(variables: dict[str, Any], interpreter: str) -> None:
    transport = Recording(variables)
    run_runner(transport, MANIFEST, 12.5)
    [(argv, stdin, timeout)] = transport.sent
    assert (argv, timeout) == ([interpreter, "-c", PYTHON_BOOTSTRAP], 12.5)
    source = python_runner_source()
    header, _, rest = stdin.partition(b"\n")
    size, code_size, magic = header.split()
    assert int(size) == len(source) and rest[:len(source)] == source
    assert magic == importlib.util.MAGIC_NUMBER.hex().encode()
    code = marshal.loads(base64.b64decode(rest[len(source):len(source) + int(code_size)], validate=True))
    assert code.co_filename == "lab-runner.py" and "run_manifest" in code.co_names
    assert json.loads(rest[len(source) + int(code_size):]) == dict(MANIFEST, deadline=14.5)  # the runner's own deadline
    assert stdin == python_runner_payload(dict(MANIFEST, deadline=14.5))


def test_a_transport_that_declines_the_precompiled_runner_sends_the_source_alone() -> None:
    transport = Recording({})
    transport.precompiled_runner = False  # as WinRM, where every byte of stdin costs round trips
    run_runner(transport, MANIFEST, 10)
    [(_, stdin, _)] = transport.sent
    source = python_runner_source()
    assert stdin.partition(b"\n")[0] == f"{len(source)} 0 -".encode()
    assert stdin == python_runner_payload(dict(MANIFEST, deadline=12.0), precompiled=False)
    assert json.loads(stdin.partition(b"\n")[2][len(source):]) == dict(MANIFEST, deadline=12.0)


def test_a_powershell_host_gets_the_powershell_bootstrap_and_runner_ps1() -> None:
    transport = Recording({}, RunnerKind("powershell", "python3"))
    run_runner(transport, MANIFEST, 30)
    [(argv, stdin, timeout)] = transport.sent
    assert (argv, timeout) == (list(POWERSHELL_ARGV), 30)
    assert stdin == powershell_payload(dict(MANIFEST, deadline=32.0))
    assert split_payload(stdin)[1] == dict(MANIFEST, deadline=32.0)


SAYS_SOURCE = b"def main(data):\n    print('source', data.decode())\n    return 3\n"
SAYS_COMPILED = b"def main(data):\n    print('compiled', data.decode())\n    return 4\n"


def bootstrap(stdin: bytes) -> tuple[int, str]:
    """Run PYTHON_BOOTSTRAP in a fresh interpreter on ``stdin``: its exit code and output."""
    done = subprocess.run([sys.executable, "-c", PYTHON_BOOTSTRAP], input=stdin, capture_output=True, check=False)
    return done.returncode, done.stdout.decode()


def test_the_bootstrap_runs_the_precompiled_runner_when_the_bytecode_magic_matches() -> None:
    frame = runner_frame(SAYS_COMPILED, b"{}")
    # the same frame with another runner's source in front: only the marshalled code may run
    size, code_size, magic = frame.partition(b"\n")[0].split()
    code = frame[frame.index(b"\n") + 1 + int(size):][:int(code_size)]
    stdin = b" ".join([str(len(SAYS_SOURCE)).encode(), code_size, magic]) + b"\n" + SAYS_SOURCE + code + b"{}"
    assert bootstrap(stdin) == (4, "compiled {}\n")


def test_the_bootstrap_compiles_the_source_when_the_magic_differs_or_no_code_came() -> None:
    code = base64.b64encode(marshal.dumps(compile(SAYS_COMPILED, "x", "exec")))
    other = (b"%d %d 00000000\n" % (len(SAYS_SOURCE), len(code))) + SAYS_SOURCE + code + b"[1]"
    assert bootstrap(other) == (3, "source [1]\n")  # another interpreter's bytecode is never loaded
    assert bootstrap(runner_frame(SAYS_SOURCE, b"[2]", precompiled=False)) == (3, "source [2]\n")


def test_a_manifest_of_file_checks_imports_no_network_process_or_hash_module(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "motd").write_text("hello\n")
    manifest = {"format": 1, "root": str(tmp_path), "checks": [
        {"id": "f1", "type": "file", "params": {"path": "/etc/motd"}},
        {"id": "f2", "type": "file", "params": {"path": "/etc/absent", "exists": False}}]}
    done = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", PYTHON_BOOTSTRAP],
                          input=python_runner_payload(manifest), capture_output=True, check=True)
    statuses = [json.loads(line).get("status") for line in done.stdout.decode().splitlines()]
    assert statuses == ["pass", "pass", None]
    imported = {line.split("|")[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line}
    assert "json" in imported  # the import log is read right
    assert imported.isdisjoint({"socket", "subprocess", "hashlib", "glob", "shlex", "shutil"})
